//! The chat domain's tables.

crate::tables! {
    /// conversation id → Conversation.
    CONVERSATIONS: &str => &[u8] = "chat_conversation";
    /// (lower user id, higher user id) → conversation id: one conversation per pair.
    CONVERSATION_BY_PAIR: (&str, &str) => &str = "chat_by_pair";
    /// (user id, conversation id) → Membership: read position and unread count.
    MEMBERSHIPS: (&str, &str) => &[u8] = "chat_membership";
    /// (user id, last activity ms, conversation id): a user's conversations, newest last.
    INBOX: (&str, i64, &str) => () = "chat_inbox";
    /// (conversation id, seq) → Message: one timeline per conversation.
    MESSAGES: (&str, u64) => &[u8] = "chat_message";
    /// (sender id, client message id) → (conversation id, seq): a retried send finds its
    /// message instead of writing a second one.
    CLIENT_MESSAGE_IDS: (&str, &str) => (&str, u64) = "chat_client_message";
    /// sender id → Throttle: messages per minute.
    SEND_THROTTLE: &str => &[u8] = "chat_send_throttle";
}
