//! `dure-desktop run`: the local replica (Dure in local mode on loopback, serving the
//! browser app), one bridge per document, the list of documents polled from the server,
//! documents created here pushed to it, progress, status and the kept-up-to-date export.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};

use crate::account::{self, AccountError, Tokens};
use crate::board::Shared;
use crate::bridge;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Where the local app and replica listen (loopback only).
    #[arg(long, default_value = "127.0.0.1:7780")]
    pub listen: SocketAddr,
    /// How often the server's list of documents is read.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Documents connected to the server at once (the server allows 64 per person).
    #[arg(long, default_value_t = 16)]
    pub max_live: usize,
    /// Do not open the app in the browser.
    #[arg(long)]
    pub no_open: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("the local replica: {0}")]
    Local(String),
}

/// Dure in local mode on the replica directory.
pub async fn local_server(
    data_dir: &Path,
    listen: SocketAddr,
) -> Result<dure_gateway::Server, RunError> {
    if !listen.ip().is_loopback() {
        return Err(RunError::Local(
            "--listen must be a loopback address".into(),
        ));
    }
    let replica = data_dir.join("replica");
    let args: Vec<String> = vec![
        "dure".into(),
        "--listen".into(),
        listen.to_string(),
        "--data-dir".into(),
        replica.display().to_string(),
        // One person's laptop: every document of theirs open at once.
        "--max-rooms-per-user".into(),
        "100000".into(),
        "--max-sockets-per-user".into(),
        "100000".into(),
        "--max-docs-per-user".into(),
        "100000".into(),
        "--max-connections-per-address".into(),
        "100000".into(),
    ];
    let cli =
        dure_gateway::Cli::try_parse_from(args).map_err(|e| RunError::Local(e.to_string()))?;
    let config = cli.resolve().map_err(|e| RunError::Local(e.to_string()))?;
    dure_gateway::Server::bind(config)
        .await
        .map_err(|e| RunError::Local(e.to_string()))
}

pub async fn run(data_dir: PathBuf, args: RunArgs) -> Result<(), RunError> {
    let account = account::load(&data_dir)?;
    let server_url = account.server.clone();
    let tokens = Tokens::new(&data_dir, account)?;
    let server = local_server(&data_dir, args.listen).await?;
    let addr = server.local_addr();
    let local_http = format!("http://{addr}");
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let serving = tokio::spawn(server.run(async move { stopped.cancelled().await }));
    println!("local app on {local_http}/");
    if !args.no_open {
        let _ = std::process::Command::new("xdg-open")
            .arg(format!("{local_http}/"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    let board = Shared::open(&data_dir);
    let account_state = tokens.state().await;
    {
        let mut b = board.lock();
        b.server = Some(server_url.clone());
        b.local_url = Some(local_http.clone());
        b.pid = std::process::id();
        b.account = account_state;
    }
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let ctx = bridge::Ctx {
        local_ws: local_http.replacen("http", "ws", 1),
        local_http: local_http.clone(),
        server_ws: server_url
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1),
        tokens: tokens.clone(),
        board: board.clone(),
        live: Arc::new(Semaphore::new(args.max_live.max(1))),
        queued: Arc::default(),
        wake: wake_rx,
        data_dir: data_dir.clone(),
    };
    let mut m = Manager {
        ctx,
        http: account::http_client()?,
        server: server_url,
        bridges: HashMap::new(),
        first_list: true,
    };
    // Documents known from an earlier run sync at once, before the list is read.
    let known: Vec<String> = board.lock().docs.keys().cloned().collect();
    for id in known {
        m.bridge(&id);
    }
    let mut poll = tokio::time::interval(args.poll_interval);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut last_wall = std::time::SystemTime::now();
    let mut last_mono = tokio::time::Instant::now();
    let mut progress_shown = (0, 0);
    let term = shutdown_signal();
    tokio::pin!(term);
    loop {
        tokio::select! {
            _ = &mut term => break,
            _ = poll.tick() => m.poll().await,
            _ = second.tick() => {
                // A laptop waking from sleep: the wall clock jumped past the monotonic one.
                let wall = std::time::SystemTime::now();
                let jumped = wall.duration_since(last_wall).unwrap_or_default()
                    > last_mono.elapsed() + Duration::from_secs(20);
                if jumped {
                    info!("woke up: syncing at once");
                    wake_tx.send_modify(|g| *g += 1);
                    m.kick_all();
                    poll.reset_immediately();
                }
                last_wall = wall;
                last_mono = tokio::time::Instant::now();
                board.lock().account = tokens.state().await;
                if let Err(e) = board.save() {
                    warn!(error = %e, "cannot write status.json");
                }
                let p = { let b = board.lock(); (b.first_sync_done, b.first_sync_total) };
                if p != progress_shown && p.1 > 0 {
                    progress_shown = p;
                    println!("first sync: {} {}/{}", bar(p.0, p.1), p.0, p.1);
                }
                crate::export::tick(&data_dir, &board, &local_http).await;
            }
        }
    }
    info!("stopping: flushing the local replica");
    stop.cancel();
    let _ = serving.await;
    let _ = board.save();
    Ok(())
}

fn bar(done: u64, total: u64) -> String {
    let width = 30u64;
    let filled = (done.min(total) * width)
        .checked_div(total)
        .unwrap_or(width);
    format!(
        "[{}{}]",
        "#".repeat(filled as usize),
        ".".repeat((width - filled) as usize)
    )
}

struct Manager {
    ctx: bridge::Ctx,
    http: reqwest::Client,
    server: String,
    bridges: HashMap<String, watch::Sender<u64>>,
    first_list: bool,
}

impl Manager {
    fn bridge(&mut self, id: &str) -> &watch::Sender<u64> {
        if !self.bridges.contains_key(id) {
            let (tx, rx) = watch::channel(0u64);
            tokio::spawn(bridge::run(self.ctx.clone(), id.to_owned(), rx));
            self.bridges.insert(id.to_owned(), tx);
        }
        &self.bridges[id]
    }

    fn kick_all(&self) {
        for tx in self.bridges.values() {
            tx.send_modify(|g| *g += 1);
        }
    }

    async fn poll(&mut self) {
        let token = match self.ctx.tokens.bearer().await {
            Ok(t) => t,
            Err(e) => {
                if !matches!(e, AccountError::SignInAgain) {
                    self.ctx.board.lock().server_reachable = false;
                }
                return;
            }
        };
        let resp = self
            .http
            .get(format!("{}/api/docs", self.server))
            .bearer_auth(&token)
            .send()
            .await;
        let list: Value = match resp {
            Ok(r) if r.status().is_success() => match r.json().await {
                Ok(v) => v,
                Err(_) => return,
            },
            Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                self.ctx.tokens.expire_now().await;
                return;
            }
            Ok(_) | Err(_) => {
                self.ctx.board.lock().server_reachable = false;
                return;
            }
        };
        self.ctx.board.lock().server_reachable = true;
        let docs = list["docs"].as_array().cloned().unwrap_or_default();
        let mut on_server = std::collections::HashSet::new();
        let mut kicks = Vec::new();
        let mut titles = Vec::new();
        {
            let mut b = self.ctx.board.lock();
            for d in &docs {
                let (Some(id), Some(title)) = (d["id"].as_str(), d["title"].as_str()) else {
                    continue;
                };
                on_server.insert(id.to_owned());
                let updated = d["updated_at"].as_str().map(str::to_owned);
                let new = !b.docs.contains_key(id);
                let e = b.docs.entry(id.to_owned()).or_default();
                if e.title != title {
                    e.title = title.to_owned();
                    titles.push((id.to_owned(), title.to_owned()));
                }
                e.on_server = true;
                // updated_at moves at most once a minute: a change after it may be up to a
                // minute younger, so look again while it is recent.
                let recent = updated
                    .as_deref()
                    .and_then(parse_rfc3339_ms)
                    .is_some_and(|u| e.last_sync_ms.is_none_or(|s| u + 60_000 > s));
                if new || e.server_updated != updated || recent || e.access_lost {
                    kicks.push(id.to_owned());
                }
                e.server_updated = updated;
            }
            if self.first_list {
                let mut total = 0;
                for d in b.docs.values_mut() {
                    d.in_first_sync = d.on_server && d.last_sync_ms.is_none();
                    total += u64::from(d.in_first_sync);
                }
                b.first_sync_total = total;
                b.first_sync_done = 0;
            }
            // Known here, gone from the list: ask the bridge to look (it learns 4403/4404).
            for (id, d) in b.docs.iter() {
                if d.on_server && !on_server.contains(id) && !d.access_lost {
                    kicks.push(id.clone());
                }
            }
        }
        self.first_list = false;
        for id in kicks {
            self.bridge(&id).send_modify(|g| *g += 1);
        }
        if !titles.is_empty() {
            // Off the main loop: a first list of hundreds of documents must not hold up the
            // status heartbeat while each replica document is being registered.
            let http = self.http.clone();
            let local_http = self.ctx.local_http.clone();
            tokio::spawn(async move {
                futures_util::stream::iter(titles)
                    .for_each_concurrent(TITLE_WRITES, |(id, title)| {
                        local_title(&http, &local_http, id, title)
                    })
                    .await;
            });
        }
        self.push_new_local_docs(&token, &on_server).await;
    }

    /// Documents created in the local app: created on the server under the same id.
    async fn push_new_local_docs(
        &mut self,
        token: &str,
        on_server: &std::collections::HashSet<String>,
    ) {
        let Ok(resp) = self
            .http
            .get(format!("{}/api/docs", self.ctx.local_http))
            .send()
            .await
        else {
            return;
        };
        let Ok(local): Result<Value, _> = resp.json().await else {
            return;
        };
        for d in local["docs"].as_array().cloned().unwrap_or_default() {
            let (Some(id), Some(title)) = (d["id"].as_str(), d["title"].as_str()) else {
                continue;
            };
            if on_server.contains(id) {
                continue;
            }
            let known = self
                .ctx
                .board
                .lock()
                .docs
                .get(id)
                .map(|e| (e.on_server, e.access_lost));
            if matches!(known, Some((true, _))) {
                continue; // It was on the server: gone from the list means access lost.
            }
            let created = self
                .http
                .post(format!("{}/api/docs", self.server))
                .bearer_auth(token)
                .json(&serde_json::json!({ "id": id, "title": title }))
                .send()
                .await;
            match created {
                Ok(r) if r.status().is_success() => {
                    info!(doc = %id, "a document made on this laptop is now on the server");
                    self.ctx.board.with_doc(id, |e| {
                        e.title = title.to_owned();
                        e.on_server = true;
                    });
                    self.bridge(id).send_modify(|g| *g += 1);
                }
                Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                    self.ctx.board.with_doc(id, |e| e.access_lost = true);
                }
                _ => {
                    self.ctx.board.with_doc(id, |e| e.title = title.to_owned());
                }
            }
        }
    }
}

/// `2026-12-04T05:06:07.123Z` (what the server writes) as Unix ms.
fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(s)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Titles written into the replica at once.
const TITLE_WRITES: usize = 8;

/// Gives a replica document the server's title.
async fn local_title(http: &reqwest::Client, local_http: &str, id: String, title: String) {
    let url = format!("{local_http}/api/docs/{id}");
    // The replica registers a document when its bridge first connects: retry for a while
    // (with hundreds of documents in a first sync, that can take seconds).
    for _ in 0..50 {
        match http
            .patch(&url)
            .json(&serde_json::json!({ "title": title }))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    warn!(doc = %id, "could not give the local copy its title");
}
