//! A document's metadata: title, owner, shares, trash state; and who may do what with it.

use serde::{Deserialize, Serialize};

use crate::auth::Identity;

/// What someone may do with a document. Ordered: a higher role can do all a lower one can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads, follows live and shows presence; cannot change the text.
    Viewer,
    /// Also edits and renames.
    Editor,
    /// Also shares, revokes, deletes and restores.
    Owner,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareKind {
    User,
    Group,
    /// Everyone who can sign in with the organisation's provider.
    Org,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub kind: ShareKind,
    /// The user's id or the group's name; absent for `org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name of a user, kept for the sharing dialog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A user's e-mail, so that the dialog can tell people with the same name apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub id: String,
    pub name: String,
}

/// Stored as JSON at `meta/docs/{id}`; updated with if-match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocMeta {
    pub v: u8,
    pub id: String,
    pub title: String,
    pub owner: UserRef,
    /// Unix milliseconds.
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(default)]
    pub deleted_at: Option<u64>,
    #[serde(default)]
    pub shares: Vec<Share>,
}

pub const MAX_TITLE_CHARS: usize = 200;

impl DocMeta {
    /// The caller's role, ignoring the trash: owner, or the highest share that names them,
    /// one of their groups, or the organisation.
    pub fn role_ignoring_trash(&self, who: &Identity) -> Option<Role> {
        if self.owner.id == who.id {
            return Some(Role::Owner);
        }
        self.shares
            .iter()
            .filter(|s| match s.kind {
                ShareKind::User => s.id.as_deref() == Some(who.id.as_str()),
                ShareKind::Group => {
                    s.id.as_deref()
                        .is_some_and(|g| who.groups.iter().any(|m| m == g))
                }
                ShareKind::Org => true,
            })
            .map(|s| s.role)
            .max()
    }

    /// The caller's role on a live (not deleted) document.
    pub fn role_of(&self, who: &Identity) -> Option<Role> {
        if self.deleted_at.is_some() {
            return None;
        }
        self.role_ignoring_trash(who)
    }

    pub fn shared_with_user_or_group(&self, who: &Identity) -> bool {
        self.owner.id != who.id
            && self.shares.iter().any(|s| match s.kind {
                ShareKind::User => s.id.as_deref() == Some(who.id.as_str()),
                ShareKind::Group => {
                    s.id.as_deref()
                        .is_some_and(|g| who.groups.iter().any(|m| m == g))
                }
                ShareKind::Org => false,
            })
    }

    pub fn org_wide(&self) -> bool {
        self.shares.iter().any(|s| s.kind == ShareKind::Org)
    }
}

/// Checks and normalises a title.
pub fn clean_title(title: &str) -> Result<String, &'static str> {
    let t = title.trim();
    if t.chars().count() > MAX_TITLE_CHARS {
        return Err("title is longer than 200 characters");
    }
    if t.chars().any(char::is_control) {
        return Err("title contains control characters");
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: &str, groups: &[&str]) -> Identity {
        Identity {
            id: id.into(),
            name: id.into(),
            email: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            admin: false,
        }
    }

    #[test]
    fn highest_matching_role_wins_and_trash_hides() {
        let mut m = DocMeta {
            v: 1,
            id: "d".into(),
            title: "t".into(),
            owner: UserRef {
                id: "alice".into(),
                name: "Alice".into(),
            },
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            shares: vec![
                Share {
                    kind: ShareKind::Org,
                    id: None,
                    name: None,
                    email: None,
                    role: Role::Viewer,
                },
                Share {
                    kind: ShareKind::Group,
                    id: Some("finance".into()),
                    name: None,
                    email: None,
                    role: Role::Editor,
                },
            ],
        };
        assert_eq!(m.role_of(&who("alice", &[])), Some(Role::Owner));
        assert_eq!(m.role_of(&who("bob", &["finance"])), Some(Role::Editor));
        assert_eq!(m.role_of(&who("carol", &["hr"])), Some(Role::Viewer));
        m.shares.retain(|s| s.kind != ShareKind::Org);
        assert_eq!(m.role_of(&who("carol", &["hr"])), None);
        m.deleted_at = Some(1);
        assert_eq!(m.role_of(&who("alice", &[])), None);
        assert_eq!(m.role_ignoring_trash(&who("alice", &[])), Some(Role::Owner));
    }

    #[test]
    fn titles_are_checked() {
        assert_eq!(clean_title("  예산 2027 "), Ok("예산 2027".to_owned()));
        assert!(clean_title(&"x".repeat(201)).is_err());
        assert!(clean_title("a\u{7}b").is_err());
    }
}
