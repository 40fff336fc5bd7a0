//! [`StoreDirectory`]: meetings over the store, for the HTTP API and, through
//! [`MeetingDirectory`], for the realtime engine.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use dure_collab::meet::{
    Ban, ChatMessage, Entry, MeetingAudit, MeetingDirectory, MeetingInfo, Refusal, TurnGrant,
};
use dure_collab::rt::{Principal, RtUser};
use dure_storage::{DocId, Key, PutCondition, Store, StoreError};
use futures_util::StreamExt;
use serde_json::json;
use tracing::warn;

use super::invites;
use super::record::{
    self, Access, Change, INDEX_MAX_BYTES, INDEX_MAX_ENTRIES, INVITES_MAX_BYTES, IndexEntry,
    InviteRecord, InviteSet, Lobby, MAX_BANS, META_MAX_BYTES, MeetingIndex, MeetingMeta,
};
use super::rules::{self, Decision};
use super::slug;
use super::turn::TurnConfig;
use crate::audit::AuditLog;
use crate::auth::Identity;
use crate::config::Config;
use crate::docs::Catalog;
use crate::docs::catalog::now_ms;

/// Why an HTTP meeting operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MeetError {
    /// Unknown, or not for this caller: one answer.
    #[error("no such meeting")]
    NotFound,
    /// The caller may see the meeting but not do this (not a host).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Quota(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A meeting to create, as checked by the API.
#[derive(Debug, Clone)]
pub struct NewMeeting {
    pub title: String,
    pub starts_at: Option<u64>,
    pub access: Access,
    pub lobby: Lobby,
    pub invited_users: Vec<String>,
    pub invited_groups: Vec<String>,
    pub doc_id: Option<String>,
}

/// An invite as made: the secret is only ever in this answer.
#[derive(Debug, Clone)]
pub struct MadeInvite {
    pub record: InviteRecord,
    pub secret: String,
}

/// Meetings over the store.
pub struct StoreDirectory {
    store: Store,
    catalog: Arc<Catalog>,
    audit: AuditLog,
    turn: TurnConfig,
    max_meetings_per_user: usize,
    max_invites_per_meeting: usize,
}

impl std::fmt::Debug for StoreDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDirectory").finish_non_exhaustive()
    }
}

/// The identity a realtime user stands for (for document roles and the audit log).
pub fn identity_of(user: &RtUser) -> Identity {
    Identity {
        id: user.id.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        groups: user.groups.clone(),
        admin: false,
    }
}

/// The realtime principal of an authenticated HTTP or socket caller.
pub fn rt_user(identity: &Identity, local: bool) -> RtUser {
    RtUser {
        id: identity.id.clone(),
        name: identity.name.clone(),
        email: identity.email.clone(),
        groups: identity.groups.clone(),
        local,
    }
}

fn unavailable(e: StoreError) -> Refusal {
    // The detail (a key, a bucket) goes to the log; the client gets the code.
    dure_collab::warn_limited!(error = %e, "meeting store failed");
    Refusal::Unavailable("the meeting store failed".into())
}

impl StoreDirectory {
    /// The newest `limit` lines of a meeting's chat as stored before meeting chat became a
    /// conversation (`meetings/{slug}/chat/`), below `before_seq`, oldest first.
    async fn recent_chat(
        &self,
        slug: &str,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, String> {
        if !slug::is_slug(slug) {
            return Err("not a meeting slug".into());
        }
        let listed = self
            .store
            .list(&record::chat_prefix(slug))
            .await
            .map_err(|e| e.to_string())?;
        // Keys are batches named by their first sequence (zero-padded, so they sort); a
        // batch starting below `before_seq` may hold messages at or past it.
        let mut keys: Vec<(u64, Key)> = listed
            .into_iter()
            .filter_map(|e| {
                let first = e.key.as_str().rsplit('/').next()?.parse::<u64>().ok()?;
                before_seq
                    .is_none_or(|b| first < b)
                    .then_some((first, e.key))
            })
            .collect();
        keys.sort_by_key(|(first, _)| *first);
        let limit = limit.min(10_000);
        // Newest batch first, until `limit` messages are in hand.
        let mut fetched = futures_util::stream::iter(keys.into_iter().rev().map(|(first, k)| {
            let store = self.store.clone();
            async move {
                let got =
                    record::read_json::<record::ChatBatch>(&store, &k, record::CHAT_MAX_BYTES)
                        .await?;
                if let Some((b, _)) = &got {
                    b.check(&k, first)?;
                }
                Ok::<_, StoreError>(got.map(|(b, _)| b.messages))
            }
        }))
        .buffered(4);
        let mut newest_first: Vec<ChatMessage> = Vec::new();
        while newest_first.len() < limit {
            let Some(got) = fetched.next().await else {
                break;
            };
            let Some(messages) = got.map_err(|e| e.to_string())? else {
                continue;
            };
            newest_first.extend(
                messages
                    .into_iter()
                    .rev()
                    .filter(|m| before_seq.is_none_or(|b| m.seq < b)),
            );
        }
        newest_first.truncate(limit);
        newest_first.reverse();
        Ok(newest_first)
    }

    /// Writes chat lines the way meetings stored them before their chat became a
    /// conversation: what the carrying-over is tested against.
    #[cfg(test)]
    async fn append_chat(&self, slug: &str, msgs: &[ChatMessage]) -> Result<(), String> {
        if !slug::is_slug(slug) {
            return Err("not a meeting slug".into());
        }
        let first = msgs.first().ok_or("no chat messages to store")?.seq;
        let batch = record::ChatBatch::new(msgs.to_vec());
        let key = record::chat_key(slug, first).map_err(|e| e.to_string())?;
        // What could not be read back is never written.
        batch.check(&key, first).map_err(|e| e.to_string())?;
        let body = record::encode(&batch).map_err(|e| e.to_string())?;
        if body.len() > record::CHAT_MAX_BYTES {
            return Err(format!("chat batch of {} bytes is too large", body.len()));
        }
        self.store
            .put(&key, body, PutCondition::IfAbsent)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub fn new(store: Store, catalog: Arc<Catalog>, audit: AuditLog, config: &Config) -> Self {
        StoreDirectory {
            store,
            catalog,
            audit,
            turn: config.meet.turn.clone(),
            max_meetings_per_user: config.meet.max_meetings_per_user,
            max_invites_per_meeting: config.meet.max_invites_per_meeting,
        }
    }

    /// The stored meeting, `None` for an unknown slug or one that is not slug-shaped.
    pub async fn meta(&self, slug: &str) -> Result<Option<MeetingMeta>, StoreError> {
        if !slug::is_slug(slug) {
            return Ok(None);
        }
        Ok(record::read_meta(&self.store, slug).await?.map(|(m, _)| m))
    }

    /// The caller's role on a linked document, if any.
    fn doc_role(&self, meta: &MeetingMeta, who: &Identity) -> Option<crate::docs::Role> {
        let id: DocId = meta.doc_id.as_deref()?.parse().ok()?;
        self.catalog.get(&id)?.role_of(who)
    }

    /// What a signed-in caller may do in `meta` (ended or not), or `None`: not theirs to see.
    pub fn entitlement(&self, meta: &MeetingMeta, who: &Identity, local: bool) -> Option<Decision> {
        let principal = Principal::User(rt_user(who, local));
        rules::entitle(meta, &principal, self.doc_role(meta, who), None).ok()
    }

    /// The meeting and the caller's entitlement, or `NotFound` for unknown and forbidden.
    pub async fn visible(
        &self,
        slug: &str,
        who: &Identity,
        local: bool,
    ) -> Result<(MeetingMeta, Decision), MeetError> {
        let meta = self.meta(slug).await?.ok_or(MeetError::NotFound)?;
        let d = self
            .entitlement(&meta, who, local)
            .ok_or(MeetError::NotFound)?;
        Ok((meta, d))
    }

    /// As [`Self::visible`], for host-only operations.
    pub async fn hosted(
        &self,
        slug: &str,
        who: &Identity,
        local: bool,
    ) -> Result<MeetingMeta, MeetError> {
        let (meta, d) = self.visible(slug, who, local).await?;
        if !d.role.is_host() {
            return Err(MeetError::Forbidden("only the meeting's hosts may do this"));
        }
        Ok(meta)
    }

    /// Creates a meeting with a fresh slug, refusing past `max_meetings_per_user` (counted
    /// in the creator's index by compare-and-swap, so concurrent creates cannot overshoot).
    pub async fn create(&self, who: &Identity, new: NewMeeting) -> Result<MeetingMeta, MeetError> {
        let now = now_ms();
        for _ in 0..3 {
            let slug = slug::new_slug();
            let entry = IndexEntry {
                slug: slug.clone(),
                created_at: now,
                created: true,
                ended: false,
            };
            let limit = self.max_meetings_per_user;
            let key = record::user_index_key(&who.id)?;
            record::update_json::<MeetingIndex, MeetError>(
                &self.store,
                &key,
                INDEX_MAX_BYTES,
                |idx| {
                    let mut idx = idx.unwrap_or_default();
                    let live = idx.entries.iter().filter(|e| e.created && !e.ended).count();
                    if live >= limit {
                        return Err(MeetError::Quota(format!(
                            "you have {limit} meetings that have not ended, the most allowed; end some first"
                        )));
                    }
                    insert_entry(&mut idx, entry.clone());
                    Ok(Change::Write(idx))
                },
            )
            .await??;
            let meta = MeetingMeta {
                format: record::META_FORMAT.into(),
                v: record::FORMAT_VERSION,
                slug: slug.clone(),
                title: new.title.clone(),
                starts_at: new.starts_at,
                access: new.access,
                lobby: new.lobby,
                invited_users: new.invited_users.clone(),
                invited_groups: new.invited_groups.clone(),
                doc_id: new.doc_id.clone(),
                hosts: vec![who.id.clone()],
                created_by: who.id.clone(),
                created_at: now,
                ended: false,
                bans: Vec::new(),
            };
            let put = self
                .store
                .put(
                    &record::meta_key(&slug)?,
                    record::encode(&meta)?,
                    PutCondition::IfAbsent,
                )
                .await;
            match put {
                Ok(_) => {
                    self.index_invitees(&meta, &[], &[]).await;
                    return Ok(meta);
                }
                Err(e) => {
                    // Give the reserved quota back; a 65-bit collision draws again.
                    self.index_remove(&key, &slug).await;
                    if !matches!(e, StoreError::ConditionFailed { .. }) {
                        return Err(e.into());
                    }
                }
            }
        }
        Err(MeetError::Conflict(
            "could not allocate a meeting slug".into(),
        ))
    }

    /// Changes a meeting with `f` (if-match, again from the stored state when someone else
    /// wrote first), then brings the invitees' indexes up to date.
    pub async fn update(
        &self,
        slug: &str,
        f: impl Fn(&mut MeetingMeta) -> Result<(), MeetError>,
    ) -> Result<MeetingMeta, MeetError> {
        if !slug::is_slug(slug) {
            return Err(MeetError::NotFound);
        }
        let key = record::meta_key(slug)?;
        let mut before: Option<MeetingMeta> = None;
        let meta =
            record::update_json::<MeetingMeta, MeetError>(&self.store, &key, META_MAX_BYTES, |m| {
                let m = m.ok_or(MeetError::NotFound)?;
                let mut next = m.clone();
                f(&mut next)?;
                if next == m {
                    before = Some(m);
                    return Ok(Change::Keep(next));
                }
                before = Some(m);
                Ok(Change::Write(next))
            })
            .await??;
        if let Some(b) = before
            && (b.invited_users != meta.invited_users || b.invited_groups != meta.invited_groups)
        {
            self.index_invitees(&meta, &b.invited_users, &b.invited_groups)
                .await;
        }
        Ok(meta)
    }

    /// Marks a meeting ended (and frees its place in the creator's quota).
    pub async fn end(&self, slug: &str) -> Result<MeetingMeta, MeetError> {
        let meta = self
            .update(slug, |m| {
                m.ended = true;
                Ok(())
            })
            .await?;
        if let Ok(key) = record::user_index_key(&meta.created_by) {
            let slug = slug.to_owned();
            let done = record::update_json::<MeetingIndex, MeetError>(
                &self.store,
                &key,
                INDEX_MAX_BYTES,
                |idx| {
                    let mut idx = idx.unwrap_or_default();
                    match idx.entries.iter_mut().find(|e| e.slug == slug) {
                        Some(e) if !e.ended => {
                            e.ended = true;
                            Ok(Change::Write(idx))
                        }
                        _ => Ok(Change::Keep(idx)),
                    }
                },
            )
            .await;
            if let Err(e) = done {
                warn!(error = %e, "ended meeting still counts against its creator's quota");
            }
        }
        Ok(meta)
    }

    /// The meetings `who` hosts or is invited to (by user or group), newest first.
    pub async fn list(
        &self,
        who: &Identity,
        local: bool,
    ) -> Result<Vec<(MeetingMeta, Decision)>, MeetError> {
        let mut keys = vec![record::user_index_key(&who.id)?];
        for g in &who.groups {
            keys.push(record::group_index_key(g)?);
        }
        let mut slugs = BTreeSet::new();
        for key in keys {
            if let Some((idx, _)) =
                record::read_json::<MeetingIndex>(&self.store, &key, INDEX_MAX_BYTES).await?
            {
                slugs.extend(idx.entries.into_iter().map(|e| e.slug));
            }
        }
        let mut fetched = futures_util::stream::iter(
            slugs
                .into_iter()
                .map(|s| async move { self.meta(&s).await }),
        )
        .buffer_unordered(16);
        let mut out = Vec::new();
        while let Some(got) = fetched.next().await {
            // The index may be stale (uninvited since): the meeting decides.
            if let Some(meta) = got?
                && let Some(d) = self.entitlement(&meta, who, local)
            {
                out.push((meta, d));
            }
        }
        out.sort_by(|a, b| {
            b.0.created_at
                .cmp(&a.0.created_at)
                .then_with(|| a.0.slug.cmp(&b.0.slug))
        });
        Ok(out)
    }

    /// Adds the meeting to the indexes of invitees new since `old_users`/`old_groups`, and
    /// removes it from those no longer invited. Best effort: listing re-checks every
    /// meeting, and a lost index entry only hides it from a list, never from its link.
    async fn index_invitees(
        &self,
        meta: &MeetingMeta,
        old_users: &[String],
        old_groups: &[String],
    ) {
        let entry = IndexEntry {
            slug: meta.slug.clone(),
            created_at: meta.created_at,
            created: false,
            ended: false,
        };
        let mut keys_add = Vec::new();
        let mut keys_remove = Vec::new();
        for u in &meta.invited_users {
            if !old_users.contains(u) && *u != meta.created_by {
                keys_add.extend(record::user_index_key(u).ok());
            }
        }
        for u in old_users {
            if !meta.invited_users.contains(u) && *u != meta.created_by {
                keys_remove.extend(record::user_index_key(u).ok());
            }
        }
        for g in &meta.invited_groups {
            if !old_groups.contains(g) {
                keys_add.extend(record::group_index_key(g).ok());
            }
        }
        for g in old_groups {
            if !meta.invited_groups.contains(g) {
                keys_remove.extend(record::group_index_key(g).ok());
            }
        }
        for key in keys_add {
            let e = entry.clone();
            let done = record::update_json::<MeetingIndex, MeetError>(
                &self.store,
                &key,
                INDEX_MAX_BYTES,
                |idx| {
                    let mut idx = idx.unwrap_or_default();
                    if idx.entries.iter().any(|x| x.slug == e.slug) {
                        return Ok(Change::Keep(idx));
                    }
                    insert_entry(&mut idx, e.clone());
                    Ok(Change::Write(idx))
                },
            )
            .await;
            if let Err(err) = done {
                warn!(error = %err, "meeting not added to an invitee's list");
            }
        }
        for key in keys_remove {
            self.index_remove(&key, &meta.slug).await;
        }
    }

    async fn index_remove(&self, key: &Key, slug: &str) {
        let done = record::update_json::<MeetingIndex, MeetError>(
            &self.store,
            key,
            INDEX_MAX_BYTES,
            |idx| {
                let mut idx = idx.unwrap_or_default();
                let before = idx.entries.len();
                idx.entries.retain(|e| e.slug != slug);
                Ok(if idx.entries.len() == before {
                    Change::Keep(idx)
                } else {
                    Change::Write(idx)
                })
            },
        )
        .await;
        if let Err(e) = done {
            warn!(error = %e, "meeting not removed from a list");
        }
    }

    /// The meeting's invites (secrets are not stored, so none are shown).
    pub async fn invites(&self, slug: &str) -> Result<Vec<InviteRecord>, MeetError> {
        Ok(record::read_invites(&self.store, slug)
            .await?
            .map(|(s, _)| s.invites)
            .unwrap_or_default())
    }

    /// Makes a guest invite valid for `expires_in_ms`, refusing past
    /// `max_invites_per_meeting` live ones.
    pub async fn create_invite(
        &self,
        slug: &str,
        label: Option<String>,
        expires_in_ms: u64,
        max_uses: Option<u32>,
    ) -> Result<MadeInvite, MeetError> {
        let now = now_ms();
        let secret = invites::new_secret();
        let rec = InviteRecord {
            id: invites::new_id(),
            secret_sha256: invites::hash_secret(&secret),
            label,
            created_at: now,
            expires_at: now.saturating_add(expires_in_ms),
            max_uses,
            uses: 0,
            revoked: false,
        };
        let limit = self.max_invites_per_meeting;
        let key = record::invites_key(slug)?;
        record::update_json::<InviteSet, MeetError>(&self.store, &key, INVITES_MAX_BYTES, |set| {
            let mut set = set.unwrap_or_default();
            set.prune(now);
            if set
                .invites
                .iter()
                .filter(|i| invites::active(i, now))
                .count()
                >= limit
            {
                return Err(MeetError::Quota(format!(
                    "this meeting has {limit} usable invites, the most allowed; revoke some first"
                )));
            }
            set.invites.push(rec.clone());
            Ok(Change::Write(set))
        })
        .await??;
        Ok(MadeInvite {
            record: rec,
            secret,
        })
    }

    /// Revokes invite `id`; `NotFound` when the meeting has no such invite.
    pub async fn revoke_invite(&self, slug: &str, id: &str) -> Result<(), MeetError> {
        let key = record::invites_key(slug)?;
        record::update_json::<InviteSet, MeetError>(&self.store, &key, INVITES_MAX_BYTES, |set| {
            let mut set = set.ok_or(MeetError::NotFound)?;
            let inv = set
                .invites
                .iter_mut()
                .find(|i| i.id == id)
                .ok_or(MeetError::NotFound)?;
            if inv.revoked {
                return Ok(Change::Keep(set));
            }
            inv.revoked = true;
            Ok(Change::Write(set))
        })
        .await??;
        Ok(())
    }

    /// The id of the invite a secret opens, or why it opens none.
    async fn check_invite(
        &self,
        slug: &str,
        secret: &str,
    ) -> Result<Result<String, Refusal>, StoreError> {
        let Some((set, _)) = record::read_invites(&self.store, slug).await? else {
            return Ok(Err(Refusal::NotFound));
        };
        Ok(set.check_secret(secret, now_ms()).map(|i| i.id.clone()))
    }
}

/// Adds `entry` to an index, dropping the oldest entries that do not hold a quota place
/// when it is full.
fn insert_entry(idx: &mut MeetingIndex, entry: IndexEntry) {
    idx.entries.retain(|e| e.slug != entry.slug);
    idx.entries.push(entry);
    while idx.entries.len() > INDEX_MAX_ENTRIES {
        let Some(pos) = idx
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.created || e.ended)
            .min_by_key(|(_, e)| e.created_at)
            .map(|(i, _)| i)
        else {
            break;
        };
        idx.entries.remove(pos);
    }
}

fn info(meta: &MeetingMeta) -> MeetingInfo {
    MeetingInfo {
        slug: meta.slug.clone(),
        title: meta.title.clone(),
        doc_id: meta.doc_id.clone(),
        ended: meta.ended,
    }
}

#[async_trait]
impl MeetingDirectory for StoreDirectory {
    async fn resolve(
        &self,
        slug: &str,
        who: &Principal,
        invite: Option<&str>,
    ) -> Result<Entry, Refusal> {
        let meta = self
            .meta(slug)
            .await
            .map_err(unavailable)?
            .ok_or(Refusal::NotFound)?;
        let invite = match invite {
            // The invites object is read only when the secret can matter.
            Some(secret) if meta.access == Access::Guests && rules::comes_as_guest(who, true) => {
                Some(self.check_invite(slug, secret).await.map_err(unavailable)?)
            }
            Some(_) if rules::comes_as_guest(who, true) => Some(Err(Refusal::NotFound)),
            _ => None,
        };
        let doc_role = who
            .user()
            .and_then(|u| self.doc_role(&meta, &identity_of(u)));
        let d = rules::decide(&meta, who, doc_role, invite)?;
        Ok(Entry {
            meeting: info(&meta),
            role: d.role,
            admission: d.admission,
            invite_id: d.invite_id,
            guest: d.guest,
        })
    }

    async fn burn_invite(&self, slug: &str, invite_id: &str) -> Result<(), Refusal> {
        if !slug::is_slug(slug) {
            return Err(Refusal::NotFound);
        }
        let key = record::invites_key(slug).map_err(unavailable)?;
        let now = now_ms();
        record::update_json::<InviteSet, Refusal>(&self.store, &key, INVITES_MAX_BYTES, |set| {
            let mut set = set.ok_or(Refusal::NotFound)?;
            set.burn(invite_id, now)?;
            Ok(Change::Write(set))
        })
        .await
        .map_err(unavailable)?
        .map(|_| ())
    }

    async fn ban(&self, slug: &str, ban: &Ban) -> Result<(), Refusal> {
        let ban = ban.clone();
        self.update(slug, move |m| {
            if !m.bans.contains(&ban) {
                m.bans.push(ban.clone());
                // Bounded: the oldest ban goes first (a meeting this hostile has ended).
                while m.bans.len() > MAX_BANS {
                    m.bans.remove(0);
                }
            }
            Ok(())
        })
        .await
        .map(|_| ())
        .map_err(|e| match e {
            MeetError::NotFound => Refusal::NotFound,
            MeetError::Store(e) => unavailable(e),
            other => Refusal::Unavailable(other.to_string()),
        })
    }

    async fn legacy_chat(&self, slug: &str, limit: usize) -> Result<Vec<ChatMessage>, String> {
        self.recent_chat(slug, None, limit).await
    }

    async fn mark_ended(&self, slug: &str) -> Result<(), String> {
        self.end(slug).await.map(|_| ()).map_err(|e| e.to_string())
    }

    fn turn(&self, participant_id: &str) -> TurnGrant {
        self.turn.grant(participant_id)
    }

    fn audit(&self, event: MeetingAudit) {
        let who = Identity {
            id: event.actor_user.clone().unwrap_or_else(|| {
                format!(
                    "guest:{}",
                    event.actor_participant.as_deref().unwrap_or("?")
                )
            }),
            name: event
                .actor_user
                .clone()
                .unwrap_or_else(|| "guest".to_owned()),
            email: None,
            groups: Vec::new(),
            admin: false,
        };
        let detail = json!({
            "meeting": event.slug,
            "participant": event.actor_participant,
            "target": event.target,
            "detail": event.detail,
        });
        let log = self.audit.clone();
        // The engine calls this from its own tasks and must not wait on the store.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { log.record(event.action, &who, None, None, detail).await });
            }
            Err(_) => warn!(
                action = event.action,
                "meeting audit record dropped: no runtime"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::changes::ChangeBus;
    use dure_collab::meet::Admission;

    async fn directory() -> (StoreDirectory, Store) {
        let store = Store::memory();
        let catalog = Arc::new(
            Catalog::load(store.clone(), Arc::new(ChangeBus::default()))
                .await
                .expect("catalog"),
        );
        let mut config = Config::test();
        config.meet.max_meetings_per_user = 2;
        config.meet.max_invites_per_meeting = 2;
        let dir = StoreDirectory::new(
            store.clone(),
            catalog,
            AuditLog::new(store.clone()),
            &config,
        );
        (dir, store)
    }

    fn person(id: &str) -> Identity {
        Identity {
            id: id.into(),
            name: id.into(),
            email: None,
            groups: Vec::new(),
            admin: false,
        }
    }

    fn new(access: Access) -> NewMeeting {
        NewMeeting {
            title: "Weekly".into(),
            starts_at: None,
            access,
            lobby: Lobby::Guests,
            invited_users: vec!["ivan".into()],
            invited_groups: Vec::new(),
            doc_id: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_burns_of_a_three_use_invite_let_exactly_three_in() {
        let (dir, _) = directory().await;
        let dir = Arc::new(dir);
        let alice = person("alice");
        let m = dir
            .create(&alice, new(Access::Guests))
            .await
            .expect("create");
        let inv = dir
            .create_invite(&m.slug, None, 60_000, Some(3))
            .await
            .expect("invite");
        let entry = dir
            .resolve(&m.slug, &Principal::Anonymous, Some(&inv.secret))
            .await
            .expect("resolves");
        assert!(entry.guest);
        assert_eq!(entry.admission, Admission::Lobby);
        assert_eq!(entry.invite_id.as_deref(), Some(inv.record.id.as_str()));
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let dir = dir.clone();
            let slug = m.slug.clone();
            let id = inv.record.id.clone();
            tasks.push(tokio::spawn(
                async move { dir.burn_invite(&slug, &id).await },
            ));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(()) => ok += 1,
                Err(Refusal::InviteUsedUp) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(ok, 3);
        assert_eq!(dir.invites(&m.slug).await.expect("list")[0].uses, 3);
        assert_eq!(
            dir.resolve(&m.slug, &Principal::Anonymous, Some(&inv.secret))
                .await,
            Err(Refusal::InviteUsedUp)
        );
    }

    #[tokio::test]
    async fn a_full_batch_of_the_largest_chat_lines_is_stored_and_read_back() {
        let (dir, _) = directory().await;
        let m = dir
            .create(&person("alice"), new(Access::Guests))
            .await
            .expect("create");
        // Control characters are escaped as \u0001: the most JSON a line can become.
        let text: String = "\u{1}".repeat(4000);
        let batch: Vec<ChatMessage> = (1..=dure_collab::meet::CHAT_BATCH as u64)
            .map(|seq| ChatMessage {
                id: format!("c{seq:0>16}"),
                seq,
                at: u64::MAX,
                author: dure_collab::meet::ChatAuthor {
                    participant: "p".repeat(32),
                    name: "\u{1}".repeat(64),
                    user_id: Some("u".repeat(256)),
                },
                text: text.clone(),
                client_ref: Some("\u{1}".repeat(64)),
            })
            .collect();
        dir.append_chat(&m.slug, &batch)
            .await
            .expect("a full batch fits");
        let back = dir.recent_chat(&m.slug, None, 100).await.expect("read");
        assert_eq!(back.len(), batch.len());
        assert_eq!(back[31].text, text);
    }

    #[tokio::test]
    async fn store_backed_resolve_quota_invites_bans_chat_and_end() {
        let (dir, _) = directory().await;
        let alice = person("alice");
        let m = dir
            .create(&alice, new(Access::Guests))
            .await
            .expect("create");
        // Unknown slug, unknown invite and forbidden all answer NotFound.
        assert_eq!(
            dir.resolve("abcd-efgh-jkmnp", &Principal::Anonymous, None)
                .await,
            Err(Refusal::NotFound)
        );
        assert_eq!(
            dir.resolve("../../etc", &Principal::Anonymous, Some("x"))
                .await,
            Err(Refusal::NotFound)
        );
        assert_eq!(
            dir.resolve(&m.slug, &Principal::Anonymous, Some("wrong"))
                .await,
            Err(Refusal::NotFound)
        );
        let host = dir
            .resolve(&m.slug, &Principal::User(rt_user(&alice, false)), None)
            .await
            .expect("host");
        assert_eq!(host.role, dure_collab::meet::Role::Host);
        // Quota of 2 live meetings; ending one frees a place.
        let m2 = dir
            .create(&alice, new(Access::Invited))
            .await
            .expect("second");
        assert!(matches!(
            dir.create(&alice, new(Access::Invited)).await,
            Err(MeetError::Quota(_))
        ));
        dir.end(&m2.slug).await.expect("end");
        dir.create(&alice, new(Access::Invited))
            .await
            .expect("third after end");
        // Lists: alice hosts three, ivan is invited to all three; bob (organisation
        // access) is in no index.
        assert_eq!(dir.list(&alice, false).await.expect("list").len(), 3);
        assert_eq!(
            dir.list(&person("ivan"), false).await.expect("list").len(),
            3
        );
        assert!(
            dir.list(&person("bob"), false)
                .await
                .expect("list")
                .is_empty()
        );
        // Invites: at most 2 usable; revoking frees a place and refuses the secret.
        let i1 = dir
            .create_invite(&m.slug, None, 60_000, None)
            .await
            .expect("i1");
        dir.create_invite(&m.slug, Some("b".into()), 60_000, None)
            .await
            .expect("i2");
        assert!(matches!(
            dir.create_invite(&m.slug, None, 60_000, None).await,
            Err(MeetError::Quota(_))
        ));
        dir.revoke_invite(&m.slug, &i1.record.id)
            .await
            .expect("revoke");
        assert_eq!(
            dir.resolve(&m.slug, &Principal::Anonymous, Some(&i1.secret))
                .await,
            Err(Refusal::InviteRevoked)
        );
        assert!(matches!(
            dir.revoke_invite(&m.slug, "nope").await,
            Err(MeetError::NotFound)
        ));
        let i3 = dir
            .create_invite(&m.slug, None, 60_000, None)
            .await
            .expect("i3");
        // Bans: by invite and by user.
        dir.ban(
            &m.slug,
            &Ban {
                user_id: None,
                invite_id: Some(i3.record.id.clone()),
            },
        )
        .await
        .expect("ban");
        assert_eq!(
            dir.resolve(&m.slug, &Principal::Anonymous, Some(&i3.secret))
                .await,
            Err(Refusal::Removed)
        );
        // Chat: batches if-absent, newest below a sequence, oldest first.
        let mut batch = Vec::new();
        for seq in 1..=5 {
            let msg = ChatMessage {
                id: format!("c{seq}"),
                seq,
                at: seq,
                author: dure_collab::meet::ChatAuthor {
                    participant: "p".into(),
                    name: "P".into(),
                    user_id: None,
                },
                text: format!("hello {seq}"),
                client_ref: None,
            };
            batch.push(msg);
        }
        // Written as batches 1, 2-4 and 5: one object each, each sequence once.
        dir.append_chat(&m.slug, &batch[..1])
            .await
            .expect("append 1");
        dir.append_chat(&m.slug, &batch[1..4])
            .await
            .expect("append 2-4");
        assert!(
            dir.append_chat(&m.slug, &batch[1..4]).await.is_err(),
            "written twice"
        );
        dir.append_chat(&m.slug, &batch[4..])
            .await
            .expect("append 5");
        assert!(
            dir.append_chat(&m.slug, &[batch[0].clone(), batch[2].clone()])
                .await
                .is_err(),
            "a batch with a gap is refused"
        );
        let chat_objects = dir
            .store
            .list(&record::chat_prefix(&m.slug))
            .await
            .expect("list");
        assert_eq!(chat_objects.len(), 3);
        let seqs = |v: Vec<ChatMessage>| v.iter().map(|c| c.seq).collect::<Vec<_>>();
        let got = dir.recent_chat(&m.slug, Some(5), 2).await.expect("recent");
        assert_eq!(seqs(got), vec![3, 4]);
        let got = dir.recent_chat(&m.slug, Some(3), 5).await.expect("older");
        assert_eq!(seqs(got), vec![1, 2], "inside a batch, below before_seq");
        assert_eq!(
            seqs(dir.recent_chat(&m.slug, None, 100).await.expect("all")),
            vec![1, 2, 3, 4, 5]
        );
        // The end.
        dir.mark_ended(&m.slug).await.expect("ended");
        assert_eq!(
            dir.resolve(
                &m.slug,
                &Principal::User(rt_user(&person("bob"), false)),
                None
            )
            .await,
            Err(Refusal::Ended)
        );
    }
}
