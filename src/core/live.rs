//! Who has a live WebSocket right now, as domains may ask it. The WebSocket hub (in `api`)
//! implements it; domains see only this trait, so they never reach into the API layer.

/// Live, authenticated connections.
pub trait LiveConnections: Send + Sync {
    /// Whether `user_id` has a live, authenticated connection now.
    fn is_connected(&self, user_id: &str) -> bool;
    /// Offers an ephemeral signal (never in the log) to the live connections of its audience
    /// that subscribed to its topic; a connection whose queue is full misses it.
    fn relay(&self, signal: super::events::Event);
}
