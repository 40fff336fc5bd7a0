//! What the meeting engine asks of the outside world: who may enter a meeting, invites,
//! bans, chat storage, TURN credentials and the audit log. The gateway implements it over the
//! store; tests implement it in memory.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::rt::Principal;

/// Chat messages stored in one write at most.
pub const CHAT_BATCH: usize = 32;

/// A meeting as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingInfo {
    pub slug: String,
    pub title: String,
    pub doc_id: Option<String>,
    pub ended: bool,
}

/// The role a participant holds in a meeting. `Cohost` is granted in the meeting by a host;
/// the directory only ever answers `Host` or `Participant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Host,
    Cohost,
    Participant,
}

impl Role {
    /// May use host controls.
    pub fn is_host(self) -> bool {
        matches!(self, Role::Host | Role::Cohost)
    }
}

/// Whether a newcomer enters at once or waits for a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Direct,
    Lobby,
}

/// The directory's answer to "may this principal enter this meeting?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub meeting: MeetingInfo,
    pub role: Role,
    pub admission: Admission,
    /// The invite the principal came with (guests); burned at admission, banned on removal.
    pub invite_id: Option<String>,
    /// True for a holder of an invite without a signed-in user.
    pub guest: bool,
}

/// Why someone may not enter, or a directory operation failed. Each maps to one error code of
/// `docs/realtime.md`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Unknown slug, forbidden meeting or unknown invite: deliberately one answer.
    #[error("no such meeting")]
    NotFound,
    #[error("this invite has expired")]
    InviteExpired,
    #[error("this invite was revoked")]
    InviteRevoked,
    #[error("this invite has been used up")]
    InviteUsedUp,
    #[error("this meeting has ended")]
    Ended,
    #[error("you were removed from this meeting")]
    Removed,
    #[error("the meeting store is unavailable: {0}")]
    Unavailable(String),
}

impl Refusal {
    /// The stable error code sent to the client.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::InviteExpired => "invite_expired",
            Refusal::InviteRevoked => "invite_revoked",
            Refusal::InviteUsedUp => "invite_used_up",
            Refusal::Ended => "ended",
            Refusal::Removed => "removed",
            Refusal::Unavailable(_) => "unavailable",
        }
    }
}

/// Who a removal bars from coming back: the signed-in user, or the invite a guest used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub user_id: Option<String>,
    pub invite_id: Option<String>,
}

/// The author of a meeting chat line as stored before meeting chat became a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAuthor {
    pub participant: String,
    pub name: String,
    pub user_id: Option<String>,
}

/// One meeting chat line as stored before meeting chat became a conversation
/// (`meetings/{slug}/chat/`); read only to carry it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: String,
    pub seq: u64,
    /// Unix milliseconds.
    pub at: u64,
    pub author: ChatAuthor,
    pub text: String,
    pub client_ref: Option<String>,
}

/// One entry of RTCConfiguration.iceServers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// TURN/STUN servers and credentials for one participant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TurnGrant {
    pub ice_servers: Vec<IceServer>,
    /// Unix milliseconds when the credentials stop working; `None` when there are none
    /// (STUN only, or nothing configured), so no refresh is scheduled.
    pub expires_at: Option<u64>,
}

/// A meeting action for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingAudit {
    /// `meeting.admit`, `meeting.deny`, `meeting.remove`, `meeting.lock`, `meeting.unlock`,
    /// `meeting.end`, `meeting.role`, `meeting.join`, `meeting.mute_all`.
    pub action: &'static str,
    pub slug: String,
    /// The signed-in user who acted, if any.
    pub actor_user: Option<String>,
    /// The participant who acted.
    pub actor_participant: Option<String>,
    /// Whom it was done to (participant id), if anyone.
    pub target: Option<String>,
    /// Extra detail: a reason, the new role, a display name.
    pub detail: Option<String>,
}

#[async_trait]
pub trait MeetingDirectory: Send + Sync + 'static {
    /// Decides, every time, whether `who` (with `invite`, a secret from the link) may enter.
    async fn resolve(
        &self,
        slug: &str,
        who: &Principal,
        invite: Option<&str>,
    ) -> Result<Entry, Refusal>;
    /// Counts one use of an invite, atomically; refuses a revoked, expired or used-up one.
    async fn burn_invite(&self, slug: &str, invite_id: &str) -> Result<(), Refusal>;
    /// Records that a removed participant may not come back.
    async fn ban(&self, slug: &str, ban: &Ban) -> Result<(), Refusal>;
    /// The newest `limit` lines of the meeting's chat as stored before meeting chat became a
    /// conversation, oldest first; read once, when the meeting's conversation is created.
    async fn legacy_chat(&self, slug: &str, limit: usize) -> Result<Vec<ChatMessage>, String> {
        let _ = (slug, limit);
        Ok(Vec::new())
    }
    /// Marks the meeting ended, so later joins get `ended`.
    async fn mark_ended(&self, slug: &str) -> Result<(), String>;
    /// Fresh ICE servers for one admitted participant; empty when nothing is configured.
    fn turn(&self, participant_id: &str) -> TurnGrant;
    fn audit(&self, event: MeetingAudit);
}
