//! One integration-test binary (one link) with a module per area. Every test starts its own
//! real server on port 0 with its own data directory.

mod access;
mod accounts;
mod auth;
mod billing;
mod blocks;
mod calls;
mod chat;
mod cohorts;
mod coins;
mod connections;
mod crash;
mod events;
mod gallery;
mod ledger;
mod media;
mod mission;
mod ml;
mod notifications;
mod ops;
mod payments;
mod profile;
mod roulette;
mod settings;
mod social;
mod structure;
mod support;
mod ws;
