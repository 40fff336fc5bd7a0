//! Sealing with Dure's secret key: AES-256-GCM (aws-lc-rs, the crypto library the TLS stack
//! and jsonwebtoken already use) over what Dure hands a browser to keep (the sign-in state
//! cookie) and the provider tokens it keeps in the store (refresh and ID tokens of sessions).
//!
//! A sealed value is `base64url(version 1 ‖ 96-bit random nonce ‖ ciphertext ‖ tag)`; the
//! purpose (and, for session tokens, the session) is the associated data, so a value sealed
//! for one use cannot be replayed as another.
//!
//! The key is 32 random bytes, base64, in the file named by `secret_key_file`; without that
//! setting `<data_dir>/secret.key` is used and created (mode 0600) on first start. Losing or
//! replacing the key costs people a new sign-in, nothing more: sign-ins under way must start
//! again and sessions end at their next refresh.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tracing::{info, warn};

use crate::config::{Config, StorageBackend};

const KEY_LEN: usize = 32;
const VERSION: u8 = 1;
/// Name of the key file created in the data directory.
pub const DEFAULT_KEY_FILE: &str = "secret.key";
/// Longest sealed text opened (a sign-in cookie is well under 2 KiB; tokens under 8 KiB).
const MAX_SEALED: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Crypto(String),
}

pub struct SealKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// The key of this deployment: `secret_key_file` (which must exist), or the data
    /// directory's `secret.key`, created if absent; in memory only with memory storage.
    pub fn for_config(config: &Config) -> Result<SealKey, KeyError> {
        match (&config.access.secret_key_file, &config.storage) {
            (Some(path), _) => Self::read(path),
            (None, StorageBackend::Memory) => Self::random(),
            (None, backend) => {
                if matches!(backend, StorageBackend::S3(_)) {
                    warn!(
                        "secret_key_file is not set: sign-in cookies and session tokens are sealed with a key kept in this machine's data directory; several dure processes on one bucket need one shared key file (secret_key_file)"
                    );
                }
                Self::read_or_create(&config.data_dir.join(DEFAULT_KEY_FILE))
            }
        }
    }

    /// A fresh key that lives as long as the process.
    pub fn random() -> Result<SealKey, KeyError> {
        let mut raw = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| KeyError::Crypto("no randomness".into()))?;
        Self::from_bytes(&raw)
    }

    fn from_bytes(raw: &[u8]) -> Result<SealKey, KeyError> {
        let key = UnboundKey::new(&AES_256_GCM, raw)
            .map_err(|_| KeyError::Crypto("the key must be 32 bytes".into()))?;
        Ok(SealKey {
            key: LessSafeKey::new(key),
        })
    }

    fn read(path: &Path) -> Result<SealKey, KeyError> {
        let err = |reason: String| KeyError::File {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let raw = STANDARD
            .decode(text.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim()))
            .map_err(|_| err("not base64 (make one with `openssl rand -base64 32`)".into()))?;
        if raw.len() != KEY_LEN {
            return Err(err(format!(
                "holds {} bytes; the key is {KEY_LEN} random bytes, base64 (`openssl rand -base64 32`)",
                raw.len()
            )));
        }
        warn_if_readable_by_others(path);
        Self::from_bytes(&raw)
    }

    fn read_or_create(path: &Path) -> Result<SealKey, KeyError> {
        if path.exists() {
            return Self::read(path);
        }
        let err = |reason: String| KeyError::File {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let mut raw = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| KeyError::Crypto("no randomness".into()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(format!("{}\n", STANDARD.encode(raw)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| err(e.to_string()))?;
                info!(path = %path.display(), "created the secret key (keep it with the data; losing it signs everyone out)");
                Self::from_bytes(&raw)
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::read(path),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Seals `plain` for `purpose`.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<String, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyError::Crypto("no randomness".into()))?;
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut body,
            )
            .map_err(|_| KeyError::Crypto("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// What `sealed` holds, if this key sealed it for `purpose` and nobody changed a bit.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        if sealed.len() > MAX_SEALED {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let (&version, rest) = raw.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(path = %path.display(), "the secret key file can be read by other users: chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_purpose_and_key() {
        let key = SealKey::random().expect("key");
        let sealed = key.seal("login", b"secret state").expect("seal");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            key.open("login", &sealed).as_deref(),
            Some(&b"secret state"[..])
        );
        assert_eq!(key.open("session", &sealed), None, "another purpose");
        let other = SealKey::random().expect("key");
        assert_eq!(other.open("login", &sealed), None, "another key");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("b64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            key.open("login", &URL_SAFE_NO_PAD.encode(&bytes)),
            None,
            "tampered"
        );
        assert_eq!(key.open("login", "garbage!"), None);
        assert_ne!(
            key.seal("login", b"x").ok(),
            key.seal("login", b"x").ok(),
            "random nonce"
        );
    }

    #[test]
    fn the_key_file_is_created_once_private_and_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data").join(DEFAULT_KEY_FILE);
        let first = SealKey::read_or_create(&path).expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = first.seal("p", b"v").expect("seal");
        let again = SealKey::read_or_create(&path).expect("read");
        assert_eq!(again.open("p", &sealed).as_deref(), Some(&b"v"[..]));
        std::fs::write(&path, "c2hvcnQ=\n").expect("write");
        let err = SealKey::read(&path).expect_err("short key");
        assert!(err.to_string().contains("32 random bytes"), "{err}");
        let err = SealKey::read(&dir.path().join("missing")).expect_err("missing");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
