//! The change bus: tells live sockets that their access may have changed. One small channel
//! per document and per session, so a change wakes only the sockets it concerns (a global
//! channel would wake every socket of the server for every share or rename).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use dure_storage::DocId;
use tokio::sync::broadcast;

use super::session::SessionKey;

/// Subscribers hold a receiver; a sender with none left is dropped at the next send or
/// every so many subscriptions.
struct Topics<K> {
    map: Mutex<HashMap<K, broadcast::Sender<()>>>,
}

const PRUNE_EVERY: usize = 1024;

impl<K: Eq + Hash + Clone> Topics<K> {
    fn new() -> Self {
        Topics {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn subscribe(&self, key: &K) -> broadcast::Receiver<()> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() % PRUNE_EVERY == PRUNE_EVERY - 1 {
            map.retain(|_, tx| tx.receiver_count() > 0);
        }
        map.entry(key.clone())
            .or_insert_with(|| broadcast::channel(4).0)
            .subscribe()
    }

    fn notify(&self, key: &K) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(key)
            && tx.send(()).is_err()
        {
            map.remove(key);
        }
    }
}

pub struct ChangeBus {
    docs: Topics<DocId>,
    sessions: Topics<SessionKey>,
}

impl std::fmt::Debug for ChangeBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeBus").finish_non_exhaustive()
    }
}

impl Default for ChangeBus {
    fn default() -> Self {
        ChangeBus {
            docs: Topics::new(),
            sessions: Topics::new(),
        }
    }
}

impl ChangeBus {
    /// A document's shares, owner or trash state changed.
    pub fn doc_changed(&self, doc: &DocId) {
        self.docs.notify(doc);
    }

    /// A session ended (sign-out).
    pub fn session_ended(&self, key: &SessionKey) {
        self.sessions.notify(key);
    }

    pub fn watch_doc(&self, doc: &DocId) -> broadcast::Receiver<()> {
        self.docs.subscribe(doc)
    }

    pub fn watch_session(&self, key: &SessionKey) -> broadcast::Receiver<()> {
        self.sessions.subscribe(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_concerned_hear_and_empty_topics_go() {
        let bus = ChangeBus::default();
        let a: DocId = "a".parse().expect("id");
        let b: DocId = "b".parse().expect("id");
        let mut ra = bus.watch_doc(&a);
        let mut rb = bus.watch_doc(&b);
        bus.doc_changed(&a);
        assert!(ra.try_recv().is_ok());
        assert!(rb.try_recv().is_err());
        drop((ra, rb));
        bus.doc_changed(&a);
        assert!(bus.docs.map.lock().expect("lock").get(&a).is_none());
    }
}
