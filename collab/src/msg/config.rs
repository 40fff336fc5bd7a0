use std::time::Duration;

/// Limits of messaging; each is a setting of the same name in the gateway's configuration
/// (`docs/messaging.md`, "Configuration").
#[derive(Debug, Clone)]
pub struct MsgConfig {
    /// Characters of one message's text.
    pub max_message_chars: usize,
    /// Conversations one user may belong to.
    pub max_conversations_per_user: usize,
    /// Members of one group conversation.
    pub max_conversation_members: usize,
    /// Messages, edits and deletions one user may post per second (burst four times that).
    pub posts_per_second: u32,
    /// Newest bytes of each conversation's log one search reads.
    pub search_scan_bytes: usize,
    /// Log writes in flight across all conversations.
    pub store_writes: usize,
    /// How long a conversation without requests stays loaded.
    pub idle_unload: Duration,
}

impl Default for MsgConfig {
    fn default() -> Self {
        MsgConfig {
            max_message_chars: 8000,
            max_conversations_per_user: 1000,
            max_conversation_members: 2000,
            posts_per_second: 5,
            search_scan_bytes: 4 * 1024 * 1024,
            store_writes: 2,
            idle_unload: Duration::from_secs(600),
        }
    }
}
