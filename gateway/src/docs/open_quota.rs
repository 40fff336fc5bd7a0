//! Per-user quotas on live document sockets: how many sockets one user may hold open, and
//! on how many distinct documents (each one a loaded room). A socket takes a [`Slot`] after
//! it is authenticated and admitted, before it joins the room; dropping the slot frees it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dure_collab::DocId;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuotaRefusal {
    #[error("you have {0} document sockets open, the most allowed; close some first")]
    Sockets(usize),
    #[error("you have {0} documents open, the most allowed; close some first")]
    Rooms(usize),
}

#[derive(Debug, Default)]
struct Open {
    sockets: usize,
    per_doc: HashMap<DocId, usize>,
}

#[derive(Debug, Default)]
pub struct SocketQuotas {
    users: Arc<Mutex<HashMap<String, Open>>>,
}

/// One open socket of one user on one document.
#[derive(Debug)]
pub struct Slot {
    user: String,
    /// `None` for a realtime socket, which opens no document.
    doc: Option<DocId>,
    users: Arc<Mutex<HashMap<String, Open>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let Some(open) = users.get_mut(&self.user) else {
            return;
        };
        open.sockets = open.sockets.saturating_sub(1);
        if let Some(doc) = &self.doc
            && let Some(n) = open.per_doc.get_mut(doc)
        {
            *n -= 1;
            if *n == 0 {
                open.per_doc.remove(doc);
            }
        }
        if open.sockets == 0 {
            users.remove(&self.user);
        }
    }
}

impl SocketQuotas {
    pub fn acquire(
        &self,
        user: &str,
        doc: &DocId,
        max_sockets: usize,
        max_rooms: usize,
    ) -> Result<Slot, QuotaRefusal> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let open = users.entry(user.to_owned()).or_default();
        if open.sockets >= max_sockets {
            return Err(QuotaRefusal::Sockets(max_sockets));
        }
        if !open.per_doc.contains_key(doc) && open.per_doc.len() >= max_rooms {
            return Err(QuotaRefusal::Rooms(max_rooms));
        }
        open.sockets += 1;
        *open.per_doc.entry(doc.clone()).or_default() += 1;
        Ok(Slot {
            user: user.to_owned(),
            doc: Some(doc.clone()),
            users: self.users.clone(),
        })
    }

    /// A realtime socket (`/ws/rt`): counted against `max_sockets_per_user` with the
    /// document sockets, opening no document.
    pub fn acquire_socket(&self, user: &str, max_sockets: usize) -> Result<Slot, QuotaRefusal> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let open = users.entry(user.to_owned()).or_default();
        if open.sockets >= max_sockets {
            return Err(QuotaRefusal::Sockets(max_sockets));
        }
        open.sockets += 1;
        Ok(Slot {
            user: user.to_owned(),
            doc: None,
            users: self.users.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> DocId {
        s.parse().expect("doc id")
    }

    #[test]
    fn realtime_sockets_count_with_document_sockets() {
        let q = SocketQuotas::default();
        let d = q.acquire("alice", &doc("a"), 2, 1).expect("doc socket");
        let rt = q.acquire_socket("alice", 2).expect("rt socket");
        assert_eq!(
            q.acquire_socket("alice", 2).err(),
            Some(QuotaRefusal::Sockets(2))
        );
        drop(rt);
        let rt = q.acquire_socket("alice", 2).expect("freed");
        drop((d, rt));
        assert!(q.users.lock().unwrap().is_empty());
    }

    #[test]
    fn sockets_and_documents_are_counted_per_user() {
        let q = SocketQuotas::default();
        let a1 = q.acquire("alice", &doc("a"), 3, 2).expect("1");
        let a2 = q.acquire("alice", &doc("a"), 3, 2).expect("same doc");
        let b = q.acquire("alice", &doc("b"), 3, 2).expect("second doc");
        assert_eq!(
            q.acquire("alice", &doc("a"), 3, 2).err(),
            Some(QuotaRefusal::Sockets(3))
        );
        drop(a2);
        assert_eq!(
            q.acquire("alice", &doc("c"), 3, 2).err(),
            Some(QuotaRefusal::Rooms(2))
        );
        assert!(
            q.acquire("bob", &doc("c"), 3, 2).is_ok(),
            "others unaffected"
        );
        drop(b);
        let c = q
            .acquire("alice", &doc("c"), 3, 2)
            .expect("a document was closed");
        drop((a1, c));
        assert!(q.users.lock().expect("lock").is_empty(), "nothing leaks");
    }
}
