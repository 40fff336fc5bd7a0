use std::fmt;

use crate::StoreError;

/// A validated object key: `/`-separated segments of `A-Za-z0-9._-`, no empty segment and
/// no `.`/`..` segment, at most 512 bytes. The restriction keeps keys valid and identical on
/// every backend (a file path, an S3 key) and makes path traversal impossible by construction.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    pub const MAX_LEN: usize = 512;

    pub fn new(key: impl Into<String>) -> Result<Self, StoreError> {
        let key = key.into();
        if let Err(reason) = check(&key, false) {
            return Err(StoreError::InvalidKey { key, reason });
        }
        Ok(Key(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a key, or a listing prefix (which may end with `/`).
pub(crate) fn check(key: &str, prefix: bool) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("empty");
    }
    if key.len() > Key::MAX_LEN {
        return Err("longer than 512 bytes");
    }
    let body = if prefix {
        key.strip_suffix('/').unwrap_or(key)
    } else {
        key
    };
    for segment in body.split('/') {
        if segment.is_empty() {
            return Err("empty path segment");
        }
        if segment == "." || segment == ".." {
            return Err("relative path segment");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("characters outside A-Za-z0-9._-");
        }
    }
    Ok(())
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_layout_keys_and_refuses_traversal() {
        assert!(Key::new("docs/a-b_c/log/0000000000000001").is_ok());
        for bad in ["", "/a", "a//b", "a/../b", "a/./b", "a b", "a\\b", "ä"] {
            assert!(Key::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Key::new("x".repeat(513)).is_err());
        assert!(check("docs/a/", true).is_ok());
        assert!(check("docs/a/", false).is_err());
    }
}
