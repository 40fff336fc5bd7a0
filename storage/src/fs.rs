//! Local-disk backend, the embedded default.
//!
//! Every write goes to a temporary file that is fsync'd before it is moved into place, and
//! the directory is fsync'd after, so a put that returned survives `kill -9` and power loss
//! and a reader never sees half an object. If-absent puts use `link(2)`, which fails when
//! the target exists: atomic even between processes. If-match puts are serialised inside
//! the process, and the data directory is locked so that a second process cannot open it.
//!
//! The store holds secrets (session records with refresh tokens) and people's documents, so
//! directories are created 0700 and files 0600 whatever the umask, and a data directory left
//! readable by others (by an older version, or made by hand) is tightened at open.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Backend, Key, ListEntry, Object, PutCondition, StoreError, Version};

pub struct FsBackend {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    next_tmp: AtomicU64,
    /// Serialises if-match puts (compare then replace).
    cas: std::sync::Mutex<()>,
    /// Held for the life of the backend: the OS releases it if the process dies.
    _lock: File,
}

impl FsBackend {
    /// Opens (creating if needed) a data directory and takes its exclusive lock.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = root.as_ref().to_path_buf();
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        for dir in [&root, &objects, &tmp] {
            private_dir(dir).map_err(|e| {
                StoreError::Misconfigured(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let lock_path = root.join("dure.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(FILE_MODE)
            .open(&lock_path)
            .map_err(|e| {
                StoreError::Misconfigured(format!("cannot open {}: {e}", lock_path.display()))
            })?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Misconfigured(format!(
                "data directory {} is in use by another dure process",
                root.display()
            )));
        }
        // Leftovers of writes interrupted by a crash: never visible as objects, safe to drop.
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(FsBackend {
            inner: Arc::new(Inner {
                root,
                objects,
                tmp,
                next_tmp: AtomicU64::new(0),
                cas: std::sync::Mutex::new(()),
                _lock: lock,
            }),
        })
    }
}

impl Inner {
    fn path(&self, key: &Key) -> PathBuf {
        self.objects.join(key.as_str())
    }

    fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        match fs::read(self.path(key)) {
            Ok(data) => {
                let version = digest(&data);
                Ok(Some(Object {
                    data: Bytes::from(data),
                    version,
                }))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn put(&self, key: &Key, data: &[u8], cond: &PutCondition) -> Result<Version, StoreError> {
        let target = self.path(key);
        let parent = target
            .parent()
            .ok_or_else(|| StoreError::InvalidKey {
                key: key.to_string(),
                reason: "no parent directory",
            })?
            .to_path_buf();
        self.ensure_dir(&parent)?;
        let tmp = self.write_temp(data)?;
        let version = digest(data);
        let result = match cond {
            PutCondition::IfAbsent => match fs::hard_link(&tmp, &target) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    Err(StoreError::ConditionFailed {
                        key: key.to_string(),
                    })
                }
                Err(e) => Err(e.into()),
            },
            PutCondition::None => fs::rename(&tmp, &target).map_err(Into::into),
            PutCondition::IfMatch(want) => {
                let _guard = self
                    .cas
                    .lock()
                    .map_err(|_| StoreError::Unavailable("fs store lock poisoned".into()))?;
                match self.get(key)? {
                    Some(current) if &current.version == want => {
                        fs::rename(&tmp, &target).map_err(Into::into)
                    }
                    _ => Err(StoreError::ConditionFailed {
                        key: key.to_string(),
                    }),
                }
            }
        };
        // After a rename the temp name is gone; after a link or a refusal it is not.
        let _ = fs::remove_file(&tmp);
        result?;
        sync_dir(&parent)?;
        Ok(version)
    }

    fn write_temp(&self, data: &[u8]) -> Result<PathBuf, StoreError> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("{}-{n}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)?;
        file.write_all(data)?;
        file.sync_all()?;
        Ok(path)
    }

    /// Creates a directory chain and makes each new entry durable by syncing its parent.
    fn ensure_dir(&self, dir: &Path) -> Result<(), StoreError> {
        if dir.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cur = dir;
        while !cur.is_dir() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        for created in missing.iter().rev() {
            if let Some(parent) = created.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, StoreError> {
        // Walk the deepest directory that the prefix names completely.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let start = if dir_part.is_empty() {
            self.objects.clone()
        } else {
            self.objects.join(dir_part)
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                let file_type = entry.file_type()?;
                if file_type.is_dir() {
                    // Only walk directories that can hold keys with the prefix (listing the
                    // snapshots of a document must not read its whole log directory).
                    if let Some(rel) = path
                        .strip_prefix(&self.objects)
                        .ok()
                        .and_then(|r| r.to_str())
                    {
                        let dir_key = format!("{rel}/");
                        if dir_key.starts_with(prefix) || prefix.starts_with(&dir_key) {
                            stack.push(path);
                        }
                    }
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.objects) else {
                    continue;
                };
                let Some(rel) = rel.to_str() else { continue };
                if !rel.starts_with(prefix) {
                    continue;
                }
                // Files that are not valid keys were not written by us; ignore them.
                if let Ok(key) = Key::new(rel) {
                    out.push(ListEntry {
                        key,
                        size: entry.metadata()?.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_dir(parent)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Directories: owner only.
const DIR_MODE: u32 = 0o700;
/// Files: owner read and write only.
const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) owner-only, or tightens it if it exists with access
/// for group or others.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700 | DIR_MODE))?;
        tracing::info!(dir = %dir.display(), "data directory was readable by others; now owner-only (0700)");
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// FNV-1a over the content: a stable version token (the same bytes give the same version
/// across restarts), only used to detect a change between a read and an if-match write.
fn digest(data: &[u8]) -> Version {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Version(format!("{:x}-{h:016x}", data.len()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("fs task failed: {e}")))?
}

#[async_trait]
impl Backend for FsBackend {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        let (inner, key) = (self.inner.clone(), key.clone());
        blocking(move || inner.get(&key)).await
    }

    async fn put(&self, key: &Key, data: Bytes, cond: PutCondition) -> Result<Version, StoreError> {
        let (inner, key) = (self.inner.clone(), key.clone());
        blocking(move || inner.put(&key, &data, &cond)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>, StoreError> {
        let (inner, prefix) = (self.inner.clone(), prefix.to_owned());
        blocking(move || inner.list(&prefix)).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let (inner, key) = (self.inner.clone(), key.clone());
        blocking(move || inner.delete(&key)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            fs::metadata(&inner.objects)?;
            Ok(())
        })
        .await
    }

    fn describe(&self) -> String {
        format!("fs:{}", self.inner.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DocId, DocStore, WriterId};

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    /// Every directory and file under `root`, with its permission bits.
    fn walk(root: &Path) -> Vec<(PathBuf, u32)> {
        let mut out = vec![(root.to_path_buf(), mode(root))];
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).expect("read_dir").flatten() {
                let path = entry.path();
                out.push((path.clone(), mode(&path)));
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn data_directory_and_files_are_owner_only() {
        let parent = tempfile::tempdir().expect("tempdir");
        let root = parent.path().join("data");
        let store = crate::Store::new(FsBackend::open(&root).expect("open"));
        let docs = DocStore::new(store.clone());
        let doc: DocId = "secret".parse().expect("id");
        docs.append(&doc, 0, &WriterId::random(), &[Bytes::from_static(b"x")])
            .await
            .expect("append");
        let key = Key::new("auth/sessions/abc").expect("key");
        store
            .put(&key, Bytes::from_static(b"{}"), PutCondition::None)
            .await
            .expect("put");
        let all = walk(&root);
        assert!(all.len() >= 8, "{all:?}");
        for (path, m) in all {
            let want = if path.is_dir() { DIR_MODE } else { FILE_MODE };
            assert_eq!(m, want, "{} is {m:o}", path.display());
        }
    }

    #[test]
    fn an_existing_open_data_directory_is_tightened() {
        let parent = tempfile::tempdir().expect("tempdir");
        let root = parent.path().join("data");
        fs::create_dir(&root).expect("mkdir");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
        let _backend = FsBackend::open(&root).expect("open");
        assert_eq!(mode(&root), 0o700);
    }
}
