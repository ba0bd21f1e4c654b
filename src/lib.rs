//! Duet: the whole backend of a paid one-to-one video-chat platform, as one Rust server.
//! See README.md and ARCHITECTURE.md.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod core;
pub mod domains;
pub mod ml;
pub mod providers;
