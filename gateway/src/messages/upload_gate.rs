//! Uploads being received at once: each holds up to `max_attachment_bytes` in memory, so
//! they are counted per person (`uploads_per_user`: one person's many tabs cannot take every
//! place) and across the server (`upload_concurrency`: memory stays under that many times
//! the attachment limit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UploadBusy {
    #[error("{0} uploads of yours are still being received; wait for one to finish")]
    User(usize),
    #[error("the server is receiving {0} uploads; try again in a moment")]
    Server(usize),
}

#[derive(Debug)]
pub struct UploadGate {
    permits: Arc<Semaphore>,
    concurrency: usize,
    per_user: usize,
    running: Arc<Mutex<HashMap<String, usize>>>,
    /// Uploads being received now (`dure_uploads_receiving`).
    receiving: Gauge,
}

/// One upload's place; given back when dropped.
#[derive(Debug)]
pub struct UploadTicket {
    _permit: OwnedSemaphorePermit,
    user: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
    receiving: Gauge,
}

impl Drop for UploadTicket {
    fn drop(&mut self) {
        self.receiving.dec();
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

impl UploadGate {
    pub fn new(concurrency: usize, per_user: usize) -> Self {
        UploadGate {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            per_user,
            running: Arc::new(Mutex::new(HashMap::new())),
            receiving: Gauge::default(),
        }
    }

    /// Counts the uploads being received in `gauge` (the server's metrics).
    pub fn counted_by(mut self, gauge: Gauge) -> Self {
        self.receiving = gauge;
        self
    }

    /// A place for one upload of `user`, or why there is none (never waits).
    pub fn enter(&self, user: &str) -> Result<UploadTicket, UploadBusy> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mine = running.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(UploadBusy::User(mine));
        }
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| UploadBusy::Server(self.concurrency))?;
        *running.entry(user.to_owned()).or_default() += 1;
        self.receiving.inc();
        Ok(UploadTicket {
            _permit: permit,
            user: user.to_owned(),
            running: self.running.clone(),
            receiving: self.receiving.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_person_and_across_the_server() {
        let receiving = Gauge::default();
        let gate = UploadGate::new(3, 2).counted_by(receiving.clone());
        let a1 = gate.enter("a").unwrap();
        let _a2 = gate.enter("a").unwrap();
        assert_eq!(gate.enter("a").unwrap_err(), UploadBusy::User(2));
        let _b1 = gate.enter("b").unwrap();
        assert_eq!(gate.enter("c").unwrap_err(), UploadBusy::Server(3));
        assert_eq!(receiving.get(), 3, "refused ones are not counted");
        drop(a1);
        assert_eq!(receiving.get(), 2);
        // The place a1 held is free again, for anyone.
        let _c1 = gate.enter("c").unwrap();
        assert_eq!(gate.enter("a").unwrap_err(), UploadBusy::Server(3));
    }
}
