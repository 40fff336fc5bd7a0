//! Admission of Markdown imports: one per user at a time, taken before the body is read (so
//! a user buffers at most one file), and at most `import_concurrency` parsing at once on the
//! server, taken once the body is in (so a slow upload holds no parse slot). Parsing holds
//! the whole file and the document being built, so an import that cannot parse now is
//! refused (429) rather than queued with its body.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportBusy {
    #[error("an import of yours is still running; wait for it to finish")]
    UserBusy,
    #[error("the server is busy with {0} imports; try again in a moment")]
    ServerBusy(usize),
}

#[derive(Debug)]
pub struct ImportGate {
    permits: Arc<Semaphore>,
    concurrency: usize,
    running: Arc<Mutex<HashSet<String>>>,
}

/// A user's one import; released when dropped (moved into the blocking task, so it lasts
/// as long as the parse even if the client went away).
#[derive(Debug)]
pub struct ImportTicket {
    permit: Option<OwnedSemaphorePermit>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    user: String,
    running: Arc<Mutex<HashSet<String>>>,
}

impl ImportTicket {
    /// Takes one of the server's parse slots, kept until the ticket is dropped.
    pub fn start_parse(&mut self) -> Result<(), ImportBusy> {
        if self.permit.is_none() {
            let permit = self
                .permits
                .clone()
                .try_acquire_owned()
                .map_err(|_| ImportBusy::ServerBusy(self.concurrency))?;
            self.permit = Some(permit);
        }
        Ok(())
    }
}

impl Drop for ImportTicket {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.user);
    }
}

impl ImportGate {
    pub fn new(concurrency: usize) -> Self {
        ImportGate {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            running: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Starts `user`'s import, unless one is running.
    pub fn try_begin(&self, user: &str) -> Result<ImportTicket, ImportBusy> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if !running.insert(user.to_owned()) {
            return Err(ImportBusy::UserBusy);
        }
        Ok(ImportTicket {
            permit: None,
            permits: self.permits.clone(),
            concurrency: self.concurrency,
            user: user.to_owned(),
            running: self.running.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_import_per_user_and_a_few_parsing_at_once() {
        let gate = ImportGate::new(2);
        let mut alice = gate.try_begin("alice").expect("first import");
        assert_eq!(gate.try_begin("alice").err(), Some(ImportBusy::UserBusy));
        let mut bob = gate.try_begin("bob").expect("second user");
        let mut carol = gate
            .try_begin("carol")
            .expect("uploading takes no parse slot");
        alice.start_parse().expect("slot 1");
        bob.start_parse().expect("slot 2");
        assert_eq!(carol.start_parse().err(), Some(ImportBusy::ServerBusy(2)));
        drop(alice);
        carol.start_parse().expect("a slot came back");
        let mut alice = gate.try_begin("alice").expect("alice's import ended");
        assert_eq!(alice.start_parse().err(), Some(ImportBusy::ServerBusy(2)));
        drop((bob, carol));
        alice.start_parse().expect("free again");
    }
}
