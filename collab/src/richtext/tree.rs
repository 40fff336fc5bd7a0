//! The in-memory form of a rich-text document: ProseMirror's node model, the shape
//! y-prosemirror maps to and from Yjs. Exporters read it, the Markdown importer builds it, and
//! [`super::ydoc`] converts it from and to a Yjs document.

use std::collections::BTreeMap;

use yrs::{Any, Number};

use super::schema::{mark, mark_rank};

/// Node or mark attributes. `Any::Null` values are kept in mark attrs (y-prosemirror stores
/// them) and never stored on elements.
pub(crate) type Attrs = BTreeMap<String, Any>;

/// How deep a tree may nest. TipTap documents stay far below (a table in a list in a quote is
/// about 10); the limit keeps the recursive walks over untrusted documents off the end of
/// the stack.
pub(crate) const MAX_DEPTH: usize = 96;

/// A child of an element: another element or a run of text with its marks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Element(Element),
    Text(TextNode),
}

/// A ProseMirror non-text node: `Y.XmlElement` named after the node type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Attrs,
    pub children: Vec<Node>,
}

/// A ProseMirror text node: a delta insert of a `Y.XmlText` with its formatting attributes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TextNode {
    pub text: String,
    /// In schema order, at most one per name (every mark of this schema excludes itself).
    pub marks: Vec<Mark>,
}

/// A mark: its name and the attrs object y-prosemirror stores as the formatting value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    pub name: String,
    pub attrs: Attrs,
}

impl Element {
    pub(crate) fn new(name: &str) -> Self {
        Element::with_attrs(name, Attrs::new())
    }

    pub(crate) fn with_attrs(name: &str, attrs: Attrs) -> Self {
        Element {
            name: name.to_owned(),
            attrs,
            children: Vec::new(),
        }
    }

    pub(crate) fn is(&self, name: &str) -> bool {
        self.name == name
    }

    pub(crate) fn str_attr(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(Any::String(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn int_attr(&self, key: &str) -> Option<i64> {
        self.attrs.get(key).and_then(any_to_i64)
    }

    pub(crate) fn bool_attr(&self, key: &str) -> Option<bool> {
        match self.attrs.get(key) {
            Some(Any::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The element children, skipping text (for containers, whose children are all elements).
    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|child| match child {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }
}

impl Mark {
    pub(crate) fn new(name: &str) -> Self {
        Mark {
            name: name.to_owned(),
            attrs: Attrs::new(),
        }
    }

    pub(crate) fn is(&self, name: &str) -> bool {
        self.name == name
    }

    pub(crate) fn str_attr(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(Any::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// An integer from an attribute value: Yjs writes integral JS numbers as integers, but a
/// client may have stored a float or a numeric string.
pub(crate) fn any_to_i64(value: &Any) -> Option<i64> {
    match value {
        Any::Number(Number::Int(n)) => Some(*n),
        Any::Number(Number::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
        Any::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Puts marks in schema order with one mark per name (the last one wins, as ProseMirror's
/// `addToSet` replaces a mark of the same self-excluding type), and applies TipTap's rule
/// that a code mark excludes every other mark.
pub(crate) fn normalize_marks(marks: &mut Vec<Mark>) {
    let mut unique: Vec<Mark> = Vec::with_capacity(marks.len());
    for m in marks.drain(..) {
        unique.retain(|u| u.name != m.name);
        unique.push(m);
    }
    if unique.iter().any(|m| m.is(mark::CODE)) {
        unique.retain(|m| m.is(mark::CODE));
    }
    unique.sort_by(|a, b| {
        mark_rank(&a.name)
            .cmp(&mark_rank(&b.name))
            .then_with(|| a.name.cmp(&b.name))
    });
    *marks = unique;
}

/// Drops empty text nodes and merges neighbours with the same marks, as ProseMirror keeps a
/// fragment.
pub(crate) fn merge_text(children: &mut Vec<Node>) {
    let mut merged: Vec<Node> = Vec::with_capacity(children.len());
    for child in children.drain(..) {
        match child {
            Node::Text(t) if t.text.is_empty() => {}
            Node::Text(t) => match merged.last_mut() {
                Some(Node::Text(prev)) if prev.marks == t.marks => prev.text.push_str(&t.text),
                _ => merged.push(Node::Text(t)),
            },
            other => merged.push(other),
        }
    }
    *children = merged;
}

/// The text content of nodes, hard breaks as newlines, blocks run together (for alt texts
/// and for content the target format cannot structure).
pub(crate) fn plain_text(nodes: &[Node], out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(&t.text),
            Node::Element(e) if e.is(super::schema::node::HARD_BREAK) => out.push('\n'),
            Node::Element(e) => plain_text(&e.children, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str, marks: &[&str]) -> Node {
        Node::Text(TextNode {
            text: s.to_owned(),
            marks: marks.iter().map(|m| Mark::new(m)).collect(),
        })
    }

    #[test]
    fn marks_are_sorted_unique_and_code_wins() {
        let mut marks = vec![Mark::new("underline"), Mark::new("bold"), Mark::new("bold")];
        normalize_marks(&mut marks);
        assert_eq!(marks, vec![Mark::new("bold"), Mark::new("underline")]);
        let mut marks = vec![Mark::new("bold"), Mark::new("code"), Mark::new("link")];
        normalize_marks(&mut marks);
        assert_eq!(marks, vec![Mark::new("code")]);
    }

    #[test]
    fn texts_merge() {
        let mut nodes = vec![text("a", &["bold"]), text("", &[]), text("b", &["bold"])];
        merge_text(&mut nodes);
        assert_eq!(nodes, vec![text("ab", &["bold"])]);
    }

    #[test]
    fn integers_from_any() {
        assert_eq!(any_to_i64(&Any::from(3_i64)), Some(3));
        assert_eq!(any_to_i64(&Any::from(3.0_f64)), Some(3));
        assert_eq!(any_to_i64(&Any::from(3.5_f64)), None);
        assert_eq!(any_to_i64(&Any::from("4")), Some(4));
    }
}
