//! What messaging asks of the rest of the server: people's names, who may see a document,
//! and the audit log. The gateway implements it over its catalog; tests in memory.

use crate::rt::RtUser;

/// A messaging action for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgAudit {
    /// `conversation.create`, `conversation.rename`, `conversation.add`,
    /// `conversation.remove`, `conversation.leave`, `conversation.role`, `message.delete`.
    pub action: &'static str,
    pub conversation: String,
    pub actor: String,
    /// The user it was done to, if anyone.
    pub target: Option<String>,
    /// A title, a role, a message sequence.
    pub detail: Option<String>,
}

pub trait MsgHooks: Send + Sync + 'static {
    /// The display name of a known user; `None` for someone the server has never seen (who
    /// cannot be added to a conversation).
    fn user_name(&self, user_id: &str) -> Option<String>;
    /// The title of a document, only if `reader` may open it.
    fn doc_title(&self, doc_id: &str, reader: &RtUser) -> Option<String>;
    fn audit(&self, event: MsgAudit);
}
