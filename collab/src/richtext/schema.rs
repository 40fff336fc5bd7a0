//! The editor schema this module reads and writes: TipTap 3 (`@tiptap/starter-kit`, the table
//! kit, `TaskList`/`TaskItem` with `nested: true`, `Image`), as pinned in
//! `tests/richtext-js/package.json`.
//!
//! y-prosemirror stores a node as a `Y.XmlElement` whose name is the node type name and whose
//! attributes are the node's attrs that are not `null`, with their JSON types (numbers,
//! booleans, strings). Defaults are stored too: a fresh heading carries `level: 1`, every table
//! cell `colspan: 1, rowspan: 1`. So the importer must fill in exactly the defaults the schema
//! would, and this file is the one place that knows them. A web app configured differently
//! (other link defaults, `TaskItem` without `nested`) must be mirrored here.

use std::collections::BTreeMap;

use yrs::Any;

/// The `Y.XmlFragment` TipTap's Collaboration extension binds by default (its `field` option).
pub const FRAGMENT: &str = "default";

/// Node type names, as TipTap registers them (and so as y-prosemirror names the XmlElements).
pub(crate) mod node {
    pub const PARAGRAPH: &str = "paragraph";
    pub const HEADING: &str = "heading";
    pub const BLOCKQUOTE: &str = "blockquote";
    pub const BULLET_LIST: &str = "bulletList";
    pub const ORDERED_LIST: &str = "orderedList";
    pub const LIST_ITEM: &str = "listItem";
    pub const TASK_LIST: &str = "taskList";
    pub const TASK_ITEM: &str = "taskItem";
    pub const CODE_BLOCK: &str = "codeBlock";
    pub const HORIZONTAL_RULE: &str = "horizontalRule";
    pub const HARD_BREAK: &str = "hardBreak";
    pub const TABLE: &str = "table";
    pub const TABLE_ROW: &str = "tableRow";
    pub const TABLE_HEADER: &str = "tableHeader";
    pub const TABLE_CELL: &str = "tableCell";
    pub const IMAGE: &str = "image";
}

/// Mark type names; y-prosemirror uses them as the XmlText formatting attribute keys.
pub(crate) mod mark {
    pub const LINK: &str = "link";
    pub const BOLD: &str = "bold";
    pub const CODE: &str = "code";
    pub const ITALIC: &str = "italic";
    pub const STRIKE: &str = "strike";
    pub const UNDERLINE: &str = "underline";
}

/// Node attribute names.
pub(crate) mod attr {
    pub const LEVEL: &str = "level";
    pub const START: &str = "start";
    pub const CHECKED: &str = "checked";
    pub const LANGUAGE: &str = "language";
    pub const COLSPAN: &str = "colspan";
    pub const ROWSPAN: &str = "rowspan";
    pub const ALIGN: &str = "align";
    pub const SRC: &str = "src";
    pub const ALT: &str = "alt";
    pub const TITLE: &str = "title";
    pub const WIDTH: &str = "width";
    pub const HEIGHT: &str = "height";
    pub const HREF: &str = "href";
    pub const TARGET: &str = "target";
    pub const REL: &str = "rel";
    pub const CLASS: &str = "class";
}

/// Marks in schema order (ProseMirror's rank): the order ProseMirror sorts a text node's marks
/// in, so the order our trees keep them in too.
const MARK_ORDER: [&str; 6] = [
    mark::LINK,
    mark::BOLD,
    mark::CODE,
    mark::ITALIC,
    mark::STRIKE,
    mark::UNDERLINE,
];

/// Sort key of a mark name: known marks by rank, unknown ones after them.
pub(crate) fn mark_rank(name: &str) -> usize {
    MARK_ORDER
        .iter()
        .position(|m| *m == name)
        .unwrap_or(MARK_ORDER.len())
}

/// Link mark defaults of TipTap 3's `Link` (its `HTMLAttributes` option): ProseMirror fills
/// them in, and y-prosemirror stores the whole attrs object, `null`s included.
pub(crate) const LINK_DEFAULT_TARGET: &str = "_blank";
pub(crate) const LINK_DEFAULT_REL: &str = "noopener noreferrer nofollow";

/// The attrs object of a link mark as TipTap creates it for `href` (and an optional title).
pub(crate) fn link_attrs(href: &str, title: Option<&str>) -> BTreeMap<String, Any> {
    BTreeMap::from([
        (attr::HREF.to_owned(), Any::from(href)),
        (attr::TARGET.to_owned(), Any::from(LINK_DEFAULT_TARGET)),
        (attr::REL.to_owned(), Any::from(LINK_DEFAULT_REL)),
        (attr::CLASS.to_owned(), Any::Null),
        (attr::TITLE.to_owned(), title.map_or(Any::Null, Any::from)),
    ])
}

/// The attrs of a table cell or header as the table extension creates them (`colwidth` is
/// `null` by default and so not stored).
pub(crate) fn cell_attrs(align: Option<&str>) -> BTreeMap<String, Any> {
    let mut attrs = BTreeMap::from([
        (attr::COLSPAN.to_owned(), Any::from(1_i64)),
        (attr::ROWSPAN.to_owned(), Any::from(1_i64)),
    ]);
    if let Some(align) = align {
        attrs.insert(attr::ALIGN.to_owned(), Any::from(align));
    }
    attrs
}

/// URL schemes TipTap's Link refuses (its `isAllowedUri`), and that an exported page must not
/// turn into live links. Checked after removing what browsers ignore in a scheme.
pub(crate) fn is_unsafe_url(url: &str) -> bool {
    let scheme: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .take_while(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let has_scheme = url.contains(':');
    has_scheme && matches!(scheme.as_str(), "javascript" | "vbscript" | "data" | "file")
}

/// Like [`is_unsafe_url`] for an image source: inline `data:image/…` pictures are fine there.
pub(crate) fn is_unsafe_image_src(src: &str) -> bool {
    let lower = src.trim_start().to_ascii_lowercase();
    !lower.starts_with("data:image/") && is_unsafe_url(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_urls() {
        assert!(is_unsafe_url("javascript:alert(1)"));
        assert!(is_unsafe_url(" JaVa\tScript:alert(1)"));
        assert!(is_unsafe_url("data:text/html,x"));
        assert!(!is_unsafe_url("https://example.org/a:b"));
        assert!(!is_unsafe_url("/relative/javascript"));
        assert!(!is_unsafe_url("mailto:a@b.c"));
        assert!(!is_unsafe_image_src("data:image/png;base64,AAAA"));
        assert!(is_unsafe_image_src("javascript:x"));
    }

    #[test]
    fn ranks() {
        assert!(mark_rank(mark::LINK) < mark_rank(mark::BOLD));
        assert!(mark_rank(mark::UNDERLINE) < mark_rank("comment"));
    }
}
