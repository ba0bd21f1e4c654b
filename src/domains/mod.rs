//! One folder per domain of PRODUCT.md. A domain's `mod.rs` holds its functions, the only way
//! other domains reach its tables.

pub mod audit;
pub mod balance;
pub mod billing;
pub mod blocklist;
pub mod chat;
pub mod event_log;
pub mod favorites;
pub mod gift;
pub mod interaction;
pub mod mission_control;
pub mod notification;
pub mod payment;
pub mod profile;
pub mod settings;
pub mod user;
pub mod video;

use crate::core::store::TableSpec;

/// Every domain's tables, created when the store opens.
pub const TABLES: &[&[TableSpec]] = &[
    audit::TABLES,
    user::tables::TABLES,
    balance::tables::TABLES,
    billing::tables::TABLES,
    gift::tables::TABLES,
    payment::tables::TABLES,
    video::tables::TABLES,
    blocklist::tables::TABLES,
    chat::tables::TABLES,
    favorites::tables::TABLES,
    interaction::tables::TABLES,
    notification::tables::TABLES,
    profile::tables::TABLES,
    settings::tables::TABLES,
    mission_control::tables::TABLES,
];
