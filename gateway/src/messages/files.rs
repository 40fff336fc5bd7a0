//! Conversation files in the store (`docs/messaging.md`, "Files (HTTP)" and "Store layout"):
//! who may reach them, how an upload is checked and written, and the names they are
//! downloaded under. The HTTP side is `routes/files_api.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dure_collab::msg::layout::{self, ConvMeta, FileMeta, FilePart};
use dure_storage::{PutCondition, Store, StoreError};

use super::sniff::{self, FileType, Refusal};
use super::thumbnail::{Thumbnailer, TooManyPixels};
use crate::config::MsgConfig;

/// Longest file name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// Why an upload or a download did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// No such conversation, the caller is not a member, or no such file: one answer.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadName(&'static str),
    #[error("{0:?}")]
    Refused(Refusal),
    #[error(transparent)]
    TooManyPixels(#[from] TooManyPixels),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Conversation files over the store, with the thumbnail maker.
#[derive(Debug)]
pub struct Files {
    store: Store,
    thumbnails: Thumbnailer,
    /// `max_attachment_bytes`.
    pub max_bytes: usize,
    /// `upload_concurrency` and `uploads_per_user`.
    pub uploads: super::upload_gate::UploadGate,
}

/// A file as read for download.
#[derive(Debug)]
pub struct Stored {
    pub meta: FileMeta,
    pub data: Bytes,
}

impl Files {
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn new(store: Store, config: &MsgConfig) -> Self {
        Files {
            store,
            thumbnails: Thumbnailer::new(config.max_image_pixels),
            max_bytes: config.max_attachment_bytes,
            uploads: super::upload_gate::UploadGate::new(
                config.upload_concurrency,
                config.uploads_per_user,
            ),
        }
    }

    /// Counts the uploads being received in `gauge` (the server's metrics).
    pub fn counted_by(mut self, gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        self.uploads = self.uploads.counted_by(gauge);
        self
    }

    /// The conversation, if `user_id` is one of its members; otherwise [`FileError::NotFound`]
    /// whether it exists or not.
    pub async fn conversation_of(&self, id: &str, user_id: &str) -> Result<ConvMeta, FileError> {
        if !layout::is_conversation_id(id) {
            return Err(FileError::NotFound);
        }
        match layout::read_meta(&self.store, id).await? {
            Some((meta, _)) if meta.member(user_id).is_some() => Ok(meta),
            _ => Err(FileError::NotFound),
        }
    }

    /// Checks what an upload is and stores it (data, thumbnail, then the meta that makes it
    /// exist). The caller has checked membership with [`Files::conversation_of`].
    pub async fn upload(
        &self,
        conversation: &str,
        uploader: &str,
        name: &str,
        claimed: Option<&str>,
        data: Bytes,
    ) -> Result<FileMeta, FileError> {
        let kind = sniff::decide(&data, name, claimed).map_err(FileError::Refused)?;
        let thumb = if kind.is_image() {
            self.thumbnails.make(data.clone(), kind).await?
        } else {
            None
        };
        let id = format!("f{:032x}", rand::random::<u128>());
        let meta = FileMeta {
            format: layout::FILE_FORMAT.to_owned(),
            v: layout::FORMAT_VERSION,
            id: id.clone(),
            name: name.to_owned(),
            size: data.len() as u64,
            content_type: kind.mime().to_owned(),
            uploader: uploader.to_owned(),
            at: now_ms(),
            thumbnail: thumb.is_some(),
            attached_seq: None,
        };
        let written = self.write(conversation, &meta, data, thumb).await;
        if let Err(e) = written {
            // Parts written before the failure would never be reached (the meta is what
            // lists a file); remove them now rather than leave them for nobody.
            if let Err(cleanup) = layout::delete_file(&self.store, conversation, &id).await {
                tracing::warn!(error = %cleanup, file = %id, "partly stored upload not removed");
            }
            return Err(e.into());
        }
        Ok(meta)
    }

    async fn write(
        &self,
        conversation: &str,
        meta: &FileMeta,
        data: Bytes,
        thumb: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let key = layout::file_key(conversation, &meta.id, FilePart::Data)?;
        self.store.put(&key, data, PutCondition::IfAbsent).await?;
        if let Some(png) = thumb {
            let key = layout::file_key(conversation, &meta.id, FilePart::Thumb)?;
            self.store
                .put(&key, Bytes::from(png), PutCondition::IfAbsent)
                .await?;
        }
        layout::write_file_meta(&self.store, conversation, meta, PutCondition::IfAbsent).await?;
        Ok(())
    }

    /// A file's meta and one of its parts ([`FilePart::Data`] or [`FilePart::Thumb`]), for a
    /// member. A malformed id, a missing file and a missing part are all
    /// [`FileError::NotFound`].
    pub async fn read(
        &self,
        conversation: &str,
        file: &str,
        part: FilePart,
    ) -> Result<Stored, FileError> {
        if !layout::is_file_id(file) {
            return Err(FileError::NotFound);
        }
        let Some((meta, _)) = layout::read_file_meta(&self.store, conversation, file).await? else {
            return Err(FileError::NotFound);
        };
        if part == FilePart::Thumb && !meta.thumbnail {
            return Err(FileError::NotFound);
        }
        let key = layout::file_key(conversation, file, part)?;
        match self.store.get(&key).await? {
            Some(obj) => Ok(Stored {
                meta,
                data: obj.data,
            }),
            // Removed between the two reads (a deleted message, retention).
            None => Err(FileError::NotFound),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The name an upload is stored under: its last path segment (browsers and scripts may
/// send a path), trimmed, without the trailing dots and spaces Windows drops when saving
/// (so the extension checked is the one the saved file gets).
pub fn clean_name(raw: &str) -> Result<String, FileError> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let name = last.trim().trim_end_matches(['.', ' ']);
    if name.is_empty() {
        return Err(FileError::BadName("the file name is empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(FileError::BadName(
            "the file name is longer than 255 characters",
        ));
    }
    // Control characters, and the invisible direction marks that make `fdp.exe` read as
    // `exe.pdf`.
    if name.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }) {
        return Err(FileError::BadName(
            "the file name holds control or direction characters",
        ));
    }
    Ok(name.to_owned())
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII fallback for old
/// clients, without quotes, backslashes or anything else that needs escaping, and the
/// exact name percent-encoded (RFC 8187).
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.,()+[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The `Content-Type` a stored file is served with: its sniffed type, with the charset the
/// text check established.
pub fn served_type(stored: &str) -> String {
    let text = FileType::ALL
        .iter()
        .any(|t| t.mime() == stored && stored.starts_with("text/"));
    if text {
        format!("{stored}; charset=utf-8")
    } else {
        stored.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dure_collab::msg::layout::{Kind, Member, MemberRole};

    #[test]
    fn names_keep_their_last_segment_and_refuse_what_cannot_be_shown() {
        for (raw, want) in [
            ("plan.pdf", "plan.pdf"),
            ("C:\\Users\\kim\\plan.pdf", "plan.pdf"),
            ("../../etc/passwd", "passwd"),
            ("  보고서 2027.hwp  ", "보고서 2027.hwp"),
            ("x.png. . ", "x.png"),
        ] {
            assert_eq!(clean_name(raw).expect(raw), want);
        }
        let long = "가".repeat(252) + ".md";
        assert_eq!(clean_name(&long).expect("255 chars").chars().count(), 255);
        for raw in [
            "",
            "dir/",
            "..",
            " . ",
            "a\nb.txt",
            "a\u{0}.txt",
            "invoice\u{202e}fdp.exe",
            &("a".repeat(253) + ".txt"),
        ] {
            assert!(
                matches!(clean_name(raw), Err(FileError::BadName(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn content_disposition_has_a_safe_fallback_and_the_exact_name() {
        assert_eq!(
            content_disposition("plan v2.pdf"),
            "attachment; filename=\"plan v2.pdf\"; filename*=UTF-8''plan%20v2.pdf"
        );
        assert_eq!(
            content_disposition("보고서.hwp"),
            "attachment; filename=\"___.hwp\"; filename*=UTF-8''%EB%B3%B4%EA%B3%A0%EC%84%9C.hwp"
        );
        let tricky = content_disposition("a\"b\\c;d%e'f.txt");
        assert_eq!(
            tricky,
            "attachment; filename=\"a_b_c_d_e_f.txt\"; filename*=UTF-8''a%22b%5Cc%3Bd%25e%27f.txt"
        );
        assert!(axum::http::HeaderValue::from_str(&tricky).is_ok());
    }

    #[test]
    fn text_is_served_as_utf8() {
        assert_eq!(served_type("text/csv"), "text/csv; charset=utf-8");
        assert_eq!(served_type("image/png"), "image/png");
    }

    fn conv(id: &str, members: &[&str]) -> ConvMeta {
        ConvMeta::new(
            id.to_owned(),
            Kind::Group,
            Some("t".into()),
            members
                .iter()
                .map(|m| Member {
                    user_id: (*m).to_owned(),
                    name: (*m).to_owned(),
                    role: MemberRole::Member,
                    since: 0,
                })
                .collect(),
            members[0],
            0,
        )
    }

    #[tokio::test]
    async fn members_upload_and_read_back_others_find_nothing() {
        let store = Store::memory();
        let id = format!("g{}", "a".repeat(32));
        layout::write_meta(&store, &conv(&id, &["kim"]), PutCondition::IfAbsent)
            .await
            .expect("meta");
        let files = Files::new(store.clone(), &MsgConfig::default());
        assert!(files.conversation_of(&id, "kim").await.is_ok());
        for (conv, user) in [
            (id.as_str(), "lee"),
            ("g00000000000000000000000000000000", "kim"),
            ("not-an-id", "kim"),
        ] {
            assert!(matches!(
                files.conversation_of(conv, user).await,
                Err(FileError::NotFound)
            ));
        }
        let meta = files
            .upload(&id, "kim", "n.txt", Some("text/plain"), Bytes::from("hi"))
            .await
            .expect("stored");
        assert!(layout::is_file_id(&meta.id));
        assert_eq!((meta.size, meta.content_type.as_str()), (2, "text/plain"));
        assert_eq!((meta.uploader.as_str(), meta.attached_seq), ("kim", None));
        let got = files
            .read(&id, &meta.id, FilePart::Data)
            .await
            .expect("read");
        assert_eq!(got.data, Bytes::from("hi"));
        assert_eq!(got.meta, meta);
        for (file, part) in [
            (meta.id.as_str(), FilePart::Thumb),
            ("f00000000000000000000000000000000", FilePart::Data),
            ("../meta", FilePart::Data),
        ] {
            assert!(matches!(
                files.read(&id, file, part).await,
                Err(FileError::NotFound)
            ));
        }
        let refused = files
            .upload(
                &id,
                "kim",
                "x.png",
                Some("image/png"),
                Bytes::from("<html>"),
            )
            .await;
        assert!(matches!(
            refused,
            Err(FileError::Refused(Refusal::Mismatch(_)))
        ));
        // Only the one accepted upload left anything behind.
        let stored = store.list(&layout::files_prefix(&id)).await.expect("list");
        assert_eq!(stored.len(), 2, "{stored:?}");
    }
}
