//! One folder per domain of PRODUCT.md. A domain's `mod.rs` holds its functions, the only way
//! other domains reach its tables.

pub mod agency;
pub mod audit;
pub mod balance;
pub mod billing;
pub mod blocklist;
pub mod chat;
pub mod event_log;
pub mod favorites;
pub mod gallery;
pub mod gift;
pub mod interaction;
pub mod media;
pub mod mission_control;
pub mod notification;
pub mod panel;
pub mod payment;
pub mod portal;
pub mod privacy;
pub mod profile;
pub mod settings;
pub mod user;
pub mod video;

use crate::core::error::{AppError, AppResult};
use crate::core::events::{Event, EventType};
use crate::core::store::TableSpec;

/// Every domain's tables, created when the store opens.
pub const TABLES: &[&[TableSpec]] = &[
    audit::TABLES,
    user::TABLES,
    balance::TABLES,
    billing::TABLES,
    gift::TABLES,
    payment::TABLES,
    video::TABLES,
    blocklist::TABLES,
    chat::TABLES,
    favorites::TABLES,
    gallery::TABLES,
    interaction::TABLES,
    media::TABLES,
    notification::TABLES,
    panel::TABLES,
    profile::TABLES,
    settings::TABLES,
    mission_control::TABLES,
    agency::TABLES,
    portal::TABLES,
];

/// Every domain's event type: the catalogue is made from this list, and [`decode_any`] checks
/// stored events against it.
pub const EVENT_TYPES: &[EventType] = &[
    EventType::of::<agency::events::AgencyEvent>(),
    EventType::of::<audit::events::AuditEvent>(),
    EventType::of::<portal::events::PortalEvent>(),
    EventType::of::<balance::events::BalanceEvent>(),
    EventType::of::<billing::events::TariffEvent>(),
    EventType::of::<blocklist::events::BlockEvent>(),
    EventType::of::<chat::events::ChatEvent>(),
    EventType::of::<favorites::events::FavoriteEvent>(),
    EventType::of::<gallery::events::GalleryEvent>(),
    EventType::of::<gift::events::GiftEvent>(),
    EventType::of::<interaction::events::InteractionEvent>(),
    EventType::of::<media::events::MediaEvent>(),
    EventType::of::<mission_control::events::PayoutEvent>(),
    EventType::of::<mission_control::events::ReportEvent>(),
    EventType::of::<mission_control::events::KycEvent>(),
    EventType::of::<notification::events::NotificationEvent>(),
    EventType::of::<panel::events::CohortEvent>(),
    EventType::of::<payment::events::PaymentEvent>(),
    EventType::of::<profile::events::ProfileEvent>(),
    EventType::of::<settings::events::SettingsEvent>(),
    EventType::of::<user::events::UserEvent>(),
    EventType::of::<video::events::CallEvent>(),
];

/// Decodes a stored event with its domain's type and encodes it again: the domain and the
/// re-encoded payload; an error when no domain declares its kind or its payload does not fit.
pub fn decode_any(e: &Event) -> AppResult<(&'static str, serde_json::Value)> {
    for t in EVENT_TYPES {
        if let Some(data) = (t.roundtrip)(e)? {
            return Ok((t.domain, data));
        }
    }
    Err(AppError::internal(format!(
        "event {} has a kind no domain declares: {}",
        e.seq, e.kind
    )))
}

/// The event catalogue, `schema/events.json`: every event kind of every domain with its
/// topic, audience, version and payload schema (JSON Schema 2020-12), generated from the
/// domains' event types. A test fails when the committed file differs.
pub fn event_catalogue() -> serde_json::Value {
    let mut defs = serde_json::Map::new();
    let mut kinds: Vec<(String, serde_json::Value)> = Vec::new();
    for t in EVENT_TYPES {
        kinds.extend((t.catalogue)(&mut defs));
    }
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    let mut one_of = Vec::new();
    for (kind, entry) in kinds {
        let name = format!("event.{kind}");
        assert!(
            !defs.contains_key(&name),
            "event kind {kind} is declared twice"
        );
        one_of.push(serde_json::json!({"$ref": format!("#/$defs/{name}")}));
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {
                "eventType": {"const": kind},
                "data": entry["data"],
            },
            "required": ["eventType", "data"],
            "x-domain": entry["domain"],
            "x-topic": entry["topic"],
            "x-audience": entry["audience"],
            "x-version": entry["version"],
        });
        if let Some(d) = entry.get("description") {
            schema["description"] = d.clone();
        }
        if entry.get("ephemeral").is_some() {
            schema["x-ephemeral"] = true.into();
        }
        defs.insert(name, schema);
    }
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Duet events",
        "description": "Every event kind: the `eventType` and `data` of a WebSocket `event` frame (and of an event in the admin query, where the kind is `type`). `x-topic` is the topic it is delivered on (null: on the log only, for consumers and admins), `x-audience` who receives it there, `x-version` the payload's version. Generated from the code (src/domains/*/events.rs); see schema/ws-protocol.md.",
        "oneOf": one_of,
        "$defs": defs,
    })
}
