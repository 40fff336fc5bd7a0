//! Converts between a Yjs document and the [`tree`](super::tree), storing things the way
//! y-prosemirror's sync plugin does (checked against its `createTypeFromElementNode`,
//! `createTypeFromTextNodes`, `marksToAttributes` and `yXmlFragmentToProsemirrorJSON`):
//!
//! - a node is a `Y.XmlElement` named after its type; its attributes are the node attrs that
//!   are not `null`, with their JSON types;
//! - the consecutive text nodes between two element children form one `Y.XmlText`, one delta
//!   insert per text node; an inline node such as `hardBreak` is an element between two texts;
//! - each mark is a formatting attribute named after the mark type whose value is the mark's
//!   attrs object (`{}` for bold, `{href, target, rel, class, title}` for a link, `null`s
//!   kept). A mark type that does not exclude itself is keyed `name--<8 chars of hash>` so that
//!   several can overlap; every mark of this schema excludes itself, so names are plain when
//!   writing, and the suffix is stripped when reading.

use std::collections::HashMap;
use std::sync::Arc;

use yrs::types::text::YChange;
use yrs::types::{Attrs as YAttrs, Delta};
use yrs::{
    Any, Doc, OffsetKind, Options, Out, ReadTxn, StateVector, Text, Transact, TransactionMut, Xml,
    XmlElementPrelim, XmlFragment, XmlOut, XmlTextPrelim, XmlTextRef,
};

use super::schema::FRAGMENT;
use super::tree::{Attrs, Element, MAX_DEPTH, Mark, Node, TextNode, merge_text, normalize_marks};

/// A new document counting text in UTF-16 units, as Yjs does (and as Dure's rooms do).
pub(crate) fn new_doc() -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    })
}

/// Reads the `default` fragment. Content nested deeper than [`MAX_DEPTH`] is left out: no
/// editor produces it, and walking it could exhaust the stack.
pub(crate) fn read<T: ReadTxn>(txn: &T) -> Vec<Node> {
    match txn.get_xml_fragment(FRAGMENT) {
        Some(fragment) => read_children(txn, &fragment, 0),
        None => Vec::new(),
    }
}

fn read_children<T: ReadTxn, X: XmlFragment>(txn: &T, parent: &X, depth: usize) -> Vec<Node> {
    let mut out = Vec::new();
    for child in parent.children(txn) {
        match child {
            XmlOut::Element(el) if depth < MAX_DEPTH => {
                let mut attrs = Attrs::new();
                for (key, value) in el.attributes(txn) {
                    if let Out::Any(value) = value
                        && !matches!(value, Any::Null | Any::Undefined)
                    {
                        attrs.insert(key.to_owned(), value);
                    }
                }
                out.push(Node::Element(Element {
                    name: el.tag().to_string(),
                    attrs,
                    children: read_children(txn, &el, depth + 1),
                }));
            }
            // Not something y-prosemirror writes; its content is kept in place.
            XmlOut::Fragment(fragment) if depth < MAX_DEPTH => {
                out.extend(read_children(txn, &fragment, depth + 1));
            }
            XmlOut::Text(text) => read_text(txn, &text, &mut out),
            XmlOut::Element(_) | XmlOut::Fragment(_) => {}
        }
    }
    // Two adjacent Y.XmlTexts are one run of text to ProseMirror (y-prosemirror merges them).
    merge_text(&mut out);
    out
}

fn read_text<T: ReadTxn>(txn: &T, text: &XmlTextRef, out: &mut Vec<Node>) {
    for chunk in text.diff(txn, YChange::identity) {
        // Embeds are not text; ProseMirror could not show them either.
        let Out::Any(Any::String(s)) = chunk.insert else {
            continue;
        };
        let mut marks: Vec<Mark> = chunk
            .attributes
            .map(|attrs| {
                attrs
                    .iter()
                    .filter(|(_, value)| !matches!(value, Any::Null | Any::Undefined))
                    .map(|(key, value)| Mark {
                        name: mark_name(key).to_owned(),
                        attrs: match value {
                            Any::Map(map) => {
                                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                            }
                            // `{bold: true}` (Quill style) is still bold.
                            _ => Attrs::new(),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        normalize_marks(&mut marks);
        out.push(Node::Text(TextNode {
            text: s.to_string(),
            marks,
        }));
    }
}

/// The mark name of a formatting key: y-prosemirror appends `--` and an 8-character hash to
/// the names of marks that may overlap (`comment--a1b2c3d4`).
fn mark_name(key: &str) -> &str {
    if let Some((name, hash)) = key.rsplit_once("--")
        && hash.len() == 8
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return name;
    }
    key
}

/// A Yjs v1 update that creates `nodes` as the content of the `default` fragment.
pub(crate) fn encode(nodes: &[Node]) -> Vec<u8> {
    let doc = new_doc();
    let fragment = doc.get_or_insert_xml_fragment(FRAGMENT);
    {
        let mut txn = doc.transact_mut();
        write_children(&mut txn, &fragment, nodes);
    }
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

/// A child as y-prosemirror writes it: an element, or the run of text nodes between two.
enum Child<'a> {
    Element(&'a Element),
    Text(Vec<&'a TextNode>),
}

fn write_children<X: XmlFragment>(txn: &mut TransactionMut, parent: &X, nodes: &[Node]) {
    let mut children: Vec<Child<'_>> = Vec::new();
    for n in nodes {
        match (n, children.last_mut()) {
            (Node::Element(e), _) => children.push(Child::Element(e)),
            (Node::Text(t), Some(Child::Text(run))) => run.push(t),
            (Node::Text(t), _) => children.push(Child::Text(vec![t])),
        }
    }
    // Inserting at an index walks the siblings before it, so appending n children costs n²/2
    // steps (seconds for a long document). Inserting each at the front, last child first,
    // builds the same sequence without walking.
    for child in children.into_iter().rev() {
        match child {
            Child::Element(e) => {
                let el = parent.insert(txn, 0, XmlElementPrelim::empty(e.name.as_str()));
                for (key, value) in &e.attrs {
                    // y-prosemirror skips null attrs: an absent attribute reads as the default.
                    if !matches!(value, Any::Null | Any::Undefined) {
                        el.insert_attribute(txn, key.as_str(), value.clone());
                    }
                }
                write_children(txn, &el, &e.children);
            }
            Child::Text(run) => {
                let text = parent.insert(txn, 0, XmlTextPrelim::new(""));
                // One delta insert per text node, each with its complete set of formatting
                // attributes, as y-prosemirror's `createTypeFromTextNodes` applies them.
                let delta: Vec<Delta<Any>> = run
                    .iter()
                    .filter(|t| !t.text.is_empty())
                    .map(|t| Delta::Inserted(Any::from(t.text.as_str()), Some(Box::new(marks(t)))))
                    .collect();
                text.apply_delta(txn, delta);
            }
        }
    }
}

fn marks(text: &TextNode) -> YAttrs {
    text.marks
        .iter()
        .map(|m| {
            let value: HashMap<String, Any> = m
                .attrs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (Arc::<str>::from(m.name.as_str()), Any::Map(Arc::new(value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_mark_names() {
        assert_eq!(mark_name("comment--a1B2+/9="), "comment");
        assert_eq!(mark_name("bold"), "bold");
        assert_eq!(mark_name("a--b"), "a--b");
        assert_eq!(mark_name("x--abc!efgh"), "x--abc!efgh");
    }
}
