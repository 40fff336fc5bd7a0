//! Who is connected: every signed-in user's sessions (for delivery), which sockets said they
//! are away, who watches whose presence, and the presence last published for each user.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::rt::session::Session;

#[derive(Default)]
pub(crate) struct People {
    sessions: HashMap<String, Vec<Arc<Session>>>,
    away: HashSet<String>,
    /// Watched user → watching sessions (by id).
    watchers: HashMap<String, HashSet<String>>,
    /// Session id → the session and the users it watches.
    watching: HashMap<String, (Arc<Session>, Vec<String>)>,
    published: HashMap<String, &'static str>,
}

/// A presence that changed: the user, the new state and the sessions to tell.
pub(crate) type Changed = Option<(String, &'static str, Vec<Arc<Session>>)>;

fn user_of(s: &Session) -> Option<&str> {
    s.principal.user().map(|u| u.id.as_str())
}

impl People {
    pub(crate) fn sessions_of<'a>(
        &self,
        users: impl Iterator<Item = &'a str>,
    ) -> Vec<Arc<Session>> {
        let mut out = Vec::new();
        for u in users {
            if let Some(list) = self.sessions.get(u) {
                out.extend(list.iter().cloned());
            }
        }
        out
    }

    fn state(&self, user: &str) -> &'static str {
        let Some(list) = self.sessions.get(user).filter(|l| !l.is_empty()) else {
            return "offline";
        };
        // A session in its resume window (no socket) is neither here nor gone: it keeps
        // the user from showing offline during a short drop, but not online.
        if list.iter().any(|s| s.meeting().is_some()) {
            "meeting"
        } else if list
            .iter()
            .any(|s| s.attached() && !self.away.contains(&s.id))
        {
            "online"
        } else {
            "away"
        }
    }

    fn changed(&mut self, user: &str) -> Changed {
        let now = self.state(user);
        let before = self.published.get(user).copied().unwrap_or("offline");
        if now == before {
            return None;
        }
        if now == "offline" {
            self.published.remove(user);
        } else {
            self.published.insert(user.to_owned(), now);
        }
        let watchers = self
            .watchers
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.watching.get(id).map(|(s, _)| s.clone()))
            .collect();
        Some((user.to_owned(), now, watchers))
    }

    pub(crate) fn add(&mut self, s: &Arc<Session>) {
        if let Some(user) = user_of(s) {
            let list = self.sessions.entry(user.to_owned()).or_default();
            if !list.iter().any(|x| x.id == s.id) {
                list.push(s.clone());
            }
        }
    }

    pub(crate) fn remove(&mut self, s: &Session) -> Changed {
        self.away.remove(&s.id);
        if let Some((_, watched)) = self.watching.remove(&s.id) {
            for u in watched {
                if let Some(w) = self.watchers.get_mut(&u) {
                    w.remove(&s.id);
                    if w.is_empty() {
                        self.watchers.remove(&u);
                    }
                }
            }
        }
        let user = user_of(s)?.to_owned();
        if let Some(list) = self.sessions.get_mut(&user) {
            list.retain(|x| x.id != s.id);
            if list.is_empty() {
                self.sessions.remove(&user);
            }
        }
        self.changed(&user)
    }

    pub(crate) fn touch(&mut self, s: &Session) -> Changed {
        let user = user_of(s)?.to_owned();
        self.changed(&user)
    }

    pub(crate) fn set_away(&mut self, s: &Session, away: bool) -> Changed {
        if away {
            self.away.insert(s.id.clone());
        } else {
            self.away.remove(&s.id);
        }
        self.touch(s)
    }

    /// Replaces what the session watches; answers the watched users' presence now.
    pub(crate) fn watch(&mut self, s: &Arc<Session>, users: Vec<String>) -> Map<String, Value> {
        if let Some((_, old)) = self.watching.remove(&s.id) {
            for u in old {
                if let Some(w) = self.watchers.get_mut(&u) {
                    w.remove(&s.id);
                    if w.is_empty() {
                        self.watchers.remove(&u);
                    }
                }
            }
        }
        let mut now = Map::new();
        for u in &users {
            self.watchers
                .entry(u.clone())
                .or_default()
                .insert(s.id.clone());
            now.insert(u.clone(), Value::String(self.state(u).to_owned()));
        }
        self.watching.insert(s.id.clone(), (s.clone(), users));
        now
    }
}
