//! Who enters a meeting how (`docs/realtime.md`, "Who enters how"), as one pure function of
//! the stored meeting, the principal, its role on the linked document and the invite it
//! brought, so that every rule is tested in a table.

use dure_collab::meet::{Admission, Refusal, Role};
use dure_collab::rt::Principal;

use super::record::{Access, Lobby, MeetingMeta};
use crate::docs::Role as DocRole;

/// What the directory answers for one principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub role: Role,
    pub admission: Admission,
    pub guest: bool,
    pub invite_id: Option<String>,
}

/// Whether `who` comes as a guest: no signed-in user, or the local user with an invite
/// (that is how other people on loopback join a local-mode meeting).
pub fn comes_as_guest(who: &Principal, has_invite: bool) -> bool {
    match who.user() {
        None => true,
        Some(u) => u.local && has_invite,
    }
}

/// The decision, ignoring whether the meeting ended (the HTTP view shows ended meetings to
/// whoever may enter them). `invite`: the id of the invite the secret opened, or why it
/// opened none (`None` when no secret came or it was not looked at).
pub fn entitle(
    meta: &MeetingMeta,
    who: &Principal,
    doc_role: Option<DocRole>,
    invite: Option<Result<String, Refusal>>,
) -> Result<Decision, Refusal> {
    let guest = comes_as_guest(who, invite.is_some());
    match who.user() {
        Some(user) if !guest => {
            let host = meta.is_host(&user.id) || doc_role == Some(DocRole::Owner);
            // A linked document's editors and viewers take part; a viewer is never host.
            let linked = doc_role.is_some();
            let invited = meta.is_invited(&user.id, &user.groups);
            let may = host
                || linked
                || match meta.access {
                    Access::Organisation | Access::Guests => true,
                    Access::Invited => invited,
                };
            if !may {
                return Err(Refusal::NotFound);
            }
            // The creator cannot be shut out of their own meeting.
            if meta.created_by != user.id && meta.user_banned(&user.id) {
                return Err(Refusal::Removed);
            }
            let admission = match meta.lobby {
                _ if host => Admission::Direct,
                Lobby::Guests => Admission::Direct,
                Lobby::EveryoneNotInvited if invited || linked => Admission::Direct,
                Lobby::EveryoneNotInvited | Lobby::Everyone => Admission::Lobby,
            };
            Ok(Decision {
                role: if host { Role::Host } else { Role::Participant },
                admission,
                guest: false,
                invite_id: None,
            })
        }
        _ => {
            // Invites only open meetings that take guests now (access may have changed since
            // the invite was made); anything else looks like no meeting at all.
            if meta.access != Access::Guests {
                return Err(Refusal::NotFound);
            }
            let id = invite.ok_or(Refusal::NotFound)??;
            if meta.invite_banned(&id) {
                return Err(Refusal::Removed);
            }
            // Every lobby mode makes invite holders wait for a host.
            Ok(Decision {
                role: Role::Participant,
                admission: Admission::Lobby,
                guest: true,
                invite_id: Some(id),
            })
        }
    }
}

/// The decision at a join: as [`entitle`], and an ended meeting refuses everyone (after the
/// access check, so that an outsider learns nothing about it).
pub fn decide(
    meta: &MeetingMeta,
    who: &Principal,
    doc_role: Option<DocRole>,
    invite: Option<Result<String, Refusal>>,
) -> Result<Decision, Refusal> {
    let d = entitle(meta, who, doc_role, invite)?;
    if meta.ended {
        return Err(Refusal::Ended);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meetings::record::{FORMAT_VERSION, META_FORMAT};
    use dure_collab::meet::Ban;
    use dure_collab::rt::RtUser;

    fn meta(access: Access, lobby: Lobby) -> MeetingMeta {
        MeetingMeta {
            format: META_FORMAT.into(),
            v: FORMAT_VERSION,
            slug: "abcd-efgh-jkmnp".into(),
            title: "t".into(),
            starts_at: None,
            access,
            lobby,
            invited_users: vec!["ivan".into()],
            invited_groups: vec!["finance".into()],
            doc_id: None,
            hosts: vec!["alice".into(), "cohost".into()],
            created_by: "alice".into(),
            created_at: 0,
            ended: false,
            bans: Vec::new(),
        }
    }

    fn user(id: &str, groups: &[&str]) -> Principal {
        Principal::User(RtUser {
            id: id.into(),
            name: id.into(),
            email: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            local: false,
        })
    }

    fn local() -> Principal {
        Principal::User(RtUser {
            id: "local".into(),
            name: "Local user".into(),
            email: None,
            groups: Vec::new(),
            local: true,
        })
    }

    use Admission::{Direct, Lobby as Wait};
    use Role::{Host, Participant};

    fn ok(role: Role, admission: Admission) -> Result<(Role, Admission, bool), Refusal> {
        Ok((role, admission, false))
    }

    fn short(r: Result<Decision, Refusal>) -> Result<(Role, Admission, bool), Refusal> {
        r.map(|d| (d.role, d.admission, d.guest))
    }

    /// Name, meeting, who, their role on the linked document, their invite, expected answer.
    type Case = (
        &'static str,
        MeetingMeta,
        Principal,
        Option<DocRole>,
        Option<Result<String, Refusal>>,
        Result<(Role, Admission, bool), Refusal>,
    );

    #[test]
    fn who_enters_how() {
        let inv = |id: &str| Some(Ok::<_, Refusal>(id.to_owned()));
        #[rustfmt::skip]
        let table: Vec<Case> = vec![
            ("creator is host", meta(Access::Invited, Lobby::Everyone), user("alice", &[]), None, None, ok(Host, Direct)),
            ("co-host is host", meta(Access::Invited, Lobby::Everyone), user("cohost", &[]), None, None, ok(Host, Direct)),
            ("doc owner is host", meta(Access::Invited, Lobby::Everyone), user("olga", &[]), Some(DocRole::Owner), None, ok(Host, Direct)),
            ("doc editor takes part", meta(Access::Invited, Lobby::EveryoneNotInvited), user("ed", &[]), Some(DocRole::Editor), None, ok(Participant, Direct)),
            ("doc viewer is never host", meta(Access::Invited, Lobby::Guests), user("vic", &[]), Some(DocRole::Viewer), None, ok(Participant, Direct)),
            ("doc viewer waits when everyone does", meta(Access::Invited, Lobby::Everyone), user("vic", &[]), Some(DocRole::Viewer), None, ok(Participant, Wait)),
            ("organisation: anyone signed in", meta(Access::Organisation, Lobby::Guests), user("bob", &[]), None, None, ok(Participant, Direct)),
            ("invited: outsider sees nothing", meta(Access::Invited, Lobby::Guests), user("bob", &[]), None, None, Err(Refusal::NotFound)),
            ("invited: invited user", meta(Access::Invited, Lobby::Guests), user("ivan", &[]), None, None, ok(Participant, Direct)),
            ("invited: invited group", meta(Access::Invited, Lobby::Guests), user("fay", &["finance"]), None, None, ok(Participant, Direct)),
            ("invited: an invite does not help a user", meta(Access::Invited, Lobby::Guests), user("bob", &[]), None, inv("i1"), Err(Refusal::NotFound)),
            ("guests: users as organisation", meta(Access::Guests, Lobby::Guests), user("bob", &[]), None, None, ok(Participant, Direct)),
            ("not-invited lobby: outsider waits", meta(Access::Organisation, Lobby::EveryoneNotInvited), user("bob", &[]), None, None, ok(Participant, Wait)),
            ("not-invited lobby: invited enters", meta(Access::Organisation, Lobby::EveryoneNotInvited), user("ivan", &[]), None, None, ok(Participant, Direct)),
            ("everyone lobby: invited waits", meta(Access::Organisation, Lobby::Everyone), user("ivan", &[]), None, None, ok(Participant, Wait)),
            ("everyone lobby: host enters", meta(Access::Organisation, Lobby::Everyone), user("alice", &[]), None, None, ok(Host, Direct)),
            ("guest with invite waits", meta(Access::Guests, Lobby::Guests), Principal::Anonymous, None, inv("i1"), Ok((Participant, Wait, true))),
            ("guest with invite waits in every lobby", meta(Access::Guests, Lobby::EveryoneNotInvited), Principal::Anonymous, None, inv("i1"), Ok((Participant, Wait, true))),
            ("guest without invite", meta(Access::Guests, Lobby::Guests), Principal::Anonymous, None, None, Err(Refusal::NotFound)),
            ("guest, unknown invite", meta(Access::Guests, Lobby::Guests), Principal::Anonymous, None, Some(Err(Refusal::NotFound)), Err(Refusal::NotFound)),
            ("guest, expired invite", meta(Access::Guests, Lobby::Guests), Principal::Anonymous, None, Some(Err(Refusal::InviteExpired)), Err(Refusal::InviteExpired)),
            ("guest, revoked invite", meta(Access::Guests, Lobby::Guests), Principal::Anonymous, None, Some(Err(Refusal::InviteRevoked)), Err(Refusal::InviteRevoked)),
            ("guest, used-up invite", meta(Access::Guests, Lobby::Guests), Principal::Anonymous, None, Some(Err(Refusal::InviteUsedUp)), Err(Refusal::InviteUsedUp)),
            ("guest when access no longer takes guests", meta(Access::Organisation, Lobby::Guests), Principal::Anonymous, None, inv("i1"), Err(Refusal::NotFound)),
            ("local user is host of its meeting", { let mut m = meta(Access::Organisation, Lobby::Everyone); m.created_by = "local".into(); m.hosts = vec!["local".into()]; m }, local(), None, None, ok(Host, Direct)),
            ("local socket with invite is a guest", { let mut m = meta(Access::Guests, Lobby::Guests); m.created_by = "local".into(); m.hosts = vec!["local".into()]; m }, local(), None, inv("i1"), Ok((Participant, Wait, true))),
        ];
        for (name, m, who, doc, invite, want) in table {
            assert_eq!(short(decide(&m, &who, doc, invite)), want, "{name}");
        }
    }

    #[test]
    fn bans_and_the_end() {
        let mut m = meta(Access::Guests, Lobby::Guests);
        m.bans.push(Ban {
            user_id: Some("bob".into()),
            invite_id: None,
        });
        m.bans.push(Ban {
            user_id: None,
            invite_id: Some("i1".into()),
        });
        m.bans.push(Ban {
            user_id: Some("alice".into()),
            invite_id: None,
        });
        let inv = |id: &str| Some(Ok::<_, Refusal>(id.to_owned()));
        assert_eq!(
            decide(&m, &user("bob", &[]), None, None),
            Err(Refusal::Removed)
        );
        assert_eq!(
            decide(&m, &Principal::Anonymous, None, inv("i1")),
            Err(Refusal::Removed)
        );
        assert!(decide(&m, &Principal::Anonymous, None, inv("i2")).is_ok());
        // The creator is never shut out.
        assert!(decide(&m, &user("alice", &[]), None, None).is_ok());
        m.ended = true;
        assert_eq!(
            decide(&m, &user("carol", &[]), None, None),
            Err(Refusal::Ended)
        );
        assert_eq!(
            decide(&m, &user("alice", &[]), None, None),
            Err(Refusal::Ended)
        );
        // The view still shows an ended meeting to who may enter it.
        assert!(entitle(&m, &user("carol", &[]), None, None).is_ok());
        // An outsider learns nothing, not even that it ended.
        m.access = Access::Invited;
        assert_eq!(
            decide(&m, &user("carol", &[]), None, None),
            Err(Refusal::NotFound)
        );
    }
}
