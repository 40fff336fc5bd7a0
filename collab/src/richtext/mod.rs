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

pub use import_markdown::MARKUP_PER_NODE;
pub use schema::FRAGMENT;

/// Why Markdown could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Containers (quotes, lists) or inline spans nest deeper than the editor could handle.
    #[error("the Markdown nests blocks or spans more than {max} levels deep")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The document would have more nodes (blocks, cells, runs of text) than allowed.
    #[error("the Markdown makes more than {max} nodes")]
    TooManyNodes {
        /// The limit.
        max: usize,
    },
    /// So many lines and markup characters that the parser alone would need more memory
    /// than the node limit allows for.
    #[error("the Markdown has more than {max} lines and markup characters")]
    TooMuchMarkup {
        /// The limit: the node limit times a fixed allowance per node.
        max: usize,
    },
    /// A table has more rows than allowed.
    #[error("a table has more than {max} rows")]
    TooManyRows {
        /// The limit.
        max: usize,
    },
}

/// Bounds on what one Markdown import may build. Parsing is linear in the input; these caps
/// bound the tree and the Yjs document built from it (each node costs 650-1000 bytes in the
/// tree and yrs together, whatever its size in the Markdown), so that memory and time follow
/// the limits, not the shape of the input: at the defaults an import peaks at about 34 MB
/// (measured by tests/import_fuzz.rs), and a document of prose below 8x its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportLimits {
    /// Elements and text runs in the resulting document.
    pub max_nodes: usize,
    /// Rows of one table, the header row included.
    pub max_table_rows: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_nodes: 50_000,
            max_table_rows: 5_000,
        }
    }
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
    from_markdown_limited(markdown, &ImportLimits::default())
}

/// [`from_markdown`] within `limits`: parsing stops at the first limit crossed, before the
/// Yjs document is built.
pub fn from_markdown_limited(
    markdown: &str,
    limits: &ImportLimits,
) -> Result<Vec<u8>, ImportError> {
    let nodes = import_markdown::import(markdown, limits)?;
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
