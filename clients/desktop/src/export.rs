//! `dure-desktop export DIR`: a Markdown copy of every document, `DIR/<id>.md`; while `run`
//! runs, documents that change are written again (the directory is remembered in
//! `export-dir` in the data directory).

use std::path::{Path, PathBuf};

use crate::board::Shared;
use crate::files;

fn setting(data_dir: &Path) -> PathBuf {
    data_dir.join("export-dir")
}

pub fn remember(data_dir: &Path, dir: &Path) -> std::io::Result<()> {
    files::write_private(&setting(data_dir), dir.display().to_string().as_bytes())
}

fn remembered(data_dir: &Path) -> Option<PathBuf> {
    let s = std::fs::read_to_string(setting(data_dir)).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// Writes one document's Markdown from the local replica at `local_http`.
pub async fn one(local_http: &str, id: &str, dir: &Path) -> Result<(), String> {
    let url = format!("{local_http}/api/docs/{id}/export?format=md");
    let resp = reqwest::get(&url).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{id}: the replica answered {}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    files::write_plain(&dir.join(format!("{id}.md")), &body).map_err(|e| format!("{id}: {e}"))
}

/// Every document of the replica at `local_http`; returns how many were written.
pub async fn all(local_http: &str, dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let list: serde_json::Value = reqwest::get(format!("{local_http}/api/docs"))
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mut n = 0;
    for d in list["docs"].as_array().cloned().unwrap_or_default() {
        if let Some(id) = d["id"].as_str() {
            one(local_http, id, dir).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Called every second by `run`: rewrites what changed.
pub async fn tick(data_dir: &Path, board: &Shared, local_http: &str) {
    let Some(dir) = remembered(data_dir) else {
        return;
    };
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let dirty: Vec<String> = {
        let mut b = board.lock();
        b.docs
            .iter_mut()
            .filter(|(_, d)| d.export_dirty)
            .map(|(id, d)| {
                d.export_dirty = false;
                id.clone()
            })
            .take(64)
            .collect()
    };
    for id in dirty {
        if let Err(e) = one(local_http, &id, &dir).await {
            tracing::debug!(error = %e, "export");
            board.with_doc(&id, |d| d.export_dirty = true);
        }
    }
}
