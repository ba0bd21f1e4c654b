//! The event_log domain: the admin's window onto the event log kept by `core::events`.

pub mod api;
