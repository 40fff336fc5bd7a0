//! Rich-text documents as the browser app (TipTap 3 bound to Yjs by y-prosemirror) stores
//! them, converted to and from Markdown, HTML and plain text for export and import.
//!
//! The content lives in the `Y.XmlFragment` named [`FRAGMENT`] (`"default"`). Supported: the
//! nodes paragraph, heading, bulletList, orderedList, listItem, taskList, taskItem,
//! blockquote, codeBlock, horizontalRule, hardBreak, table, tableRow, tableHeader, tableCell
//! and image; the marks bold, italic, underline, strike, code and link. Other nodes export
//! their content, other marks their text.
//!
//! ```
//! use dure_collab::richtext;
//!
//! let update = richtext::from_markdown("# Notes\n\n- [x] **done**\n").unwrap();
//! let doc = richtext::doc_from_update(&update).unwrap();
//! assert_eq!(richtext::to_markdown(&doc), "# Notes\n\n- [x] **done**\n");
//! assert_eq!(
//!     richtext::to_html(&doc),
//!     "<h1>Notes</h1>\n<ul data-type=\"taskList\"><li data-type=\"taskItem\" \
//!      data-checked=\"true\"><label><input type=\"checkbox\" disabled checked></label>\
//!      <div><p><strong>done</strong></p></div></li></ul>"
//! );
//! assert_eq!(richtext::to_text(&doc), "Notes\n\n[x] done\n");
//! ```
//!
//! Layout: `schema` (names and the defaults TipTap fills in), `tree` (the in-memory
//! ProseMirror-like model), `ydoc` (tree ⇄ Yjs, exactly as y-prosemirror stores it),
//! `inline` (mark nesting shared by the exporters), one module per format.

mod export_html;
mod export_markdown;
mod export_text;
mod import_markdown;
mod inline;
mod markdown_escape;
#[cfg(test)]
mod roundtrip_tests;
mod schema;
mod shape;
mod tree;
mod ydoc;

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::{Doc, ReadTxn, Transact, Update, updates::decoder::Decode};

pub use schema::FRAGMENT;

/// Why Markdown could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Containers (quotes, lists) nest deeper than the editor could handle.
    #[error("the Markdown nests blocks more than {max} levels deep")]
    TooDeep {
        /// The limit.
        max: usize,
    },
}

/// Why a Yjs update could not be turned into a document.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The bytes are not a Yjs v1 update.
    #[error("not a Yjs v1 update: {0}")]
    Decode(String),
    /// yrs refused (or panicked on) the update.
    #[error("the Yjs update could not be applied: {0}")]
    Apply(String),
}

/// The document as GitHub-flavoured Markdown (ends with a newline unless empty).
pub fn to_markdown(doc: &Doc) -> String {
    to_markdown_in(&doc.transact())
}

/// [`to_markdown`] within a transaction the caller already holds.
pub fn to_markdown_in<T: ReadTxn>(txn: &T) -> String {
    export_markdown::export(&ydoc::read(txn))
}

/// The document as an HTML fragment (no `<html>`/`<body>`), one top-level block per line.
pub fn to_html(doc: &Doc) -> String {
    to_html_in(&doc.transact())
}

/// [`to_html`] within a transaction the caller already holds.
pub fn to_html_in<T: ReadTxn>(txn: &T) -> String {
    export_html::export(&ydoc::read(txn))
}

/// The document as plain text (ends with a newline unless empty).
pub fn to_text(doc: &Doc) -> String {
    to_text_in(&doc.transact())
}

/// [`to_text`] within a transaction the caller already holds.
pub fn to_text_in<T: ReadTxn>(txn: &T) -> String {
    export_text::export(&ydoc::read(txn))
}

/// A Yjs v1 update that, applied to an empty document, gives the `default` fragment the
/// structure TipTap and y-prosemirror would give this Markdown's content. It is meant for a
/// new document: applied to one with content, it adds its blocks to those.
pub fn from_markdown(markdown: &str) -> Result<Vec<u8>, ImportError> {
    let nodes = import_markdown::import(markdown)?;
    Ok(ydoc::encode(&nodes))
}

/// A document holding the state of a Yjs v1 update (such as a stored state or
/// [`from_markdown`]'s result), with UTF-16 offsets like every Yjs client.
pub fn doc_from_update(update: &[u8]) -> Result<Doc, UpdateError> {
    let doc = ydoc::new_doc();
    // yrs may panic on malformed input; the bytes may come from a client.
    let applied = catch_unwind(AssertUnwindSafe(|| {
        let update = Update::decode_v1(update).map_err(|e| UpdateError::Decode(e.to_string()))?;
        doc.transact_mut()
            .apply_update(update)
            .map_err(|e| UpdateError::Apply(e.to_string()))
    }));
    match applied {
        Ok(result) => result.map(|()| doc),
        Err(_) => Err(UpdateError::Apply("yrs panicked".to_owned())),
    }
}
