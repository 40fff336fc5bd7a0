//! Who is on the other end of a realtime socket, as the gateway authenticated it.

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtUser {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// The local user of local mode.
    pub local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(RtUser),
    /// No credentials: may only join a meeting with an invite, as a guest.
    Anonymous,
}

impl Principal {
    pub fn user(&self) -> Option<&RtUser> {
        match self {
            Principal::User(u) => Some(u),
            Principal::Anonymous => None,
        }
    }
}
