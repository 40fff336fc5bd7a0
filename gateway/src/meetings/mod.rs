//! Video meetings, the gateway's side: meetings stored per `docs/realtime.md` (meta, invites,
//! chat, per-person indexes), the [`StoreDirectory`] the realtime engine asks who may enter,
//! TURN credentials, and the hook through which HTTP routes reach live meeting sockets.

pub mod directory;
pub mod invites;
pub mod record;
pub mod rules;
pub mod slug;
pub mod turn;

pub use directory::{MeetError, NewMeeting, StoreDirectory, rt_user};

/// What the HTTP routes tell live meeting sockets. The realtime engine implements it (its
/// `RtHub` has both methods); until it is plugged in, [`NoMeetingEvents`] does nothing.
pub trait MeetingEvents: Send + Sync {
    /// The meeting was ended over HTTP: everyone in it gets `meet.ended`.
    fn end_meeting(&self, slug: &str);
    /// An invite was revoked: a guest waiting in the lobby on it is refused at once.
    fn invite_revoked(&self, slug: &str, invite_id: &str);
}

impl std::fmt::Debug for dyn MeetingEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeetingEvents")
    }
}

/// No live sockets to tell.
#[derive(Debug, Default)]
pub struct NoMeetingEvents;

impl MeetingEvents for NoMeetingEvents {
    fn end_meeting(&self, _slug: &str) {}
    fn invite_revoked(&self, _slug: &str, _invite_id: &str) {}
}

/// The realtime principal of an authenticated caller (`Caller::principal` of the API, or
/// what `Auth::authenticate` returned for a socket): the local user is marked `local`.
pub fn rt_principal(p: &crate::auth::Principal) -> dure_collab::rt::Principal {
    dure_collab::rt::Principal::User(rt_user(
        &p.identity,
        matches!(p.via, crate::auth::Via::Local),
    ))
}
