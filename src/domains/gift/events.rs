//! The gift domain's events.

use crate::core::ids::{CallId, UserId};

crate::domain_events! {
    pub enum GiftEvent in "gift" {
        Sent = "gift_sent" {
            gift_id: String,
            name: String,
            icon_media_id: Option<String>,
            price: i64,
            streamer_coins: i64,
            from_user_id: UserId,
            to_user_id: UserId,
            /// The call it was sent in, if any.
            call_id: Option<CallId>,
        }
    }
}
