//! Fits a parsed Markdown tree to TipTap's content rules: images (blocks there) are lifted out
//! of their textblock, and containers that need content get an empty paragraph.

use super::schema::node;
use super::tree::{Element, Node, merge_text};

/// Makes the parsed tree valid for the schema . `container`
/// is the parent's node name.
pub(crate) fn fix_content(children: &mut Vec<Node>, container: &str) {
    let mut fixed = Vec::with_capacity(children.len());
    for child in children.drain(..) {
        match child {
            Node::Element(mut e) => {
                let name = e.name.clone();
                fix_content(&mut e.children, &name);
                if e.is(node::PARAGRAPH) || e.is(node::HEADING) {
                    fixed.extend(lift_images(e));
                } else {
                    fixed.push(Node::Element(e));
                }
            }
            text => fixed.push(text),
        }
    }
    *children = fixed;
    let needs_block = matches!(
        container,
        node::BLOCKQUOTE | node::TABLE_CELL | node::TABLE_HEADER
    );
    let needs_paragraph_first = matches!(container, node::LIST_ITEM | node::TASK_ITEM);
    let first_is_paragraph =
        matches!(children.first(), Some(Node::Element(e)) if e.is(node::PARAGRAPH));
    if (needs_block && children.is_empty()) || (needs_paragraph_first && !first_is_paragraph) {
        children.insert(0, Node::Element(Element::new(node::PARAGRAPH)));
    }
}

/// Splits a textblock around its images, which are blocks in TipTap. Parts left empty by the
/// split are dropped.
fn lift_images(textblock: Element) -> Vec<Node> {
    let has_image = textblock
        .children
        .iter()
        .any(|c| matches!(c, Node::Element(e) if e.is(node::IMAGE)));
    if !has_image {
        return vec![Node::Element(textblock)];
    }
    let Element {
        name,
        attrs,
        children,
    } = textblock;
    let mut out = Vec::new();
    let mut part = Element::with_attrs(&name, attrs.clone());
    for child in children {
        match child {
            Node::Element(e) if e.is(node::IMAGE) => {
                push_part(&mut out, part);
                part = Element::with_attrs(&name, attrs.clone());
                out.push(Node::Element(e));
            }
            other => part.children.push(other),
        }
    }
    push_part(&mut out, part);
    out
}

/// Adds one piece of a split textblock without the whitespace that separated it from the
/// image (Markdown would not show it either), unless nothing is left.
fn push_part(out: &mut Vec<Node>, mut part: Element) {
    if let Some(Node::Text(first)) = part.children.first_mut() {
        first.text = first.text.trim_start().to_owned();
    }
    if let Some(Node::Text(last)) = part.children.last_mut() {
        last.text = last.text.trim_end().to_owned();
    }
    merge_text(&mut part.children);
    if !part.children.is_empty() {
        out.push(Node::Element(part));
    }
}
