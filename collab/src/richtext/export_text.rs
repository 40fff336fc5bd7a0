//! Tree → plain text for reading or pasting: no markup and no escaping, but the structure a
//! reader needs kept in lines: blank lines between blocks, `- `, `1. ` and `[x] ` list markers
//! with nested items indented, `> ` before quoted lines, code as is, tables as tab-separated
//! rows, images as their alt text.

use super::schema::{attr, node};
use super::tree::{Element, Node, plain_text};

/// Renders the document; the result ends with one newline unless empty.
pub(crate) fn export(nodes: &[Node]) -> String {
    let mut out = blocks(nodes).join("\n\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn blocks(children: &[Node]) -> Vec<String> {
    children
        .iter()
        .map(|child| match child {
            Node::Element(e) => block(e),
            Node::Text(t) => t.text.clone(),
        })
        .filter(|b| !b.is_empty())
        .collect()
}

fn text_of(children: &[Node]) -> String {
    let mut out = String::new();
    plain_text(children, &mut out);
    out
}

fn block(e: &Element) -> String {
    match e.name.as_str() {
        node::PARAGRAPH | node::HEADING | node::CODE_BLOCK => text_of(&e.children),
        node::BLOCKQUOTE => {
            let inner = blocks(&e.children).join("\n\n");
            prefix_lines(&inner, "> ", "> ")
        }
        node::BULLET_LIST | node::ORDERED_LIST | node::TASK_LIST => list(e),
        node::HORIZONTAL_RULE => "---".to_owned(),
        node::TABLE => e
            .elements()
            .map(|row| {
                row.elements()
                    .map(|cell| blocks(&cell.children).join(" ").replace(['\t', '\n'], " "))
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        node::IMAGE => e.str_attr(attr::ALT).unwrap_or("").to_owned(),
        _ if e.children.iter().any(|c| matches!(c, Node::Text(_))) => text_of(&e.children),
        _ => blocks(&e.children).join("\n\n"),
    }
}

fn list(e: &Element) -> String {
    let start = e.int_attr(attr::START).unwrap_or(1);
    e.elements()
        .enumerate()
        .map(|(k, item)| {
            let marker = match e.name.as_str() {
                node::ORDERED_LIST => format!("{}. ", start.saturating_add(k as i64)),
                node::TASK_LIST if item.bool_attr(attr::CHECKED).unwrap_or(false) => {
                    "[x] ".to_owned()
                }
                node::TASK_LIST => "[ ] ".to_owned(),
                _ => "- ".to_owned(),
            };
            let content = blocks(&item.children).join("\n");
            prefix_lines(&content, &marker, &" ".repeat(marker.chars().count()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn prefix_lines(content: &str, first: &str, rest: &str) -> String {
    content
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            let prefix = if i == 0 { first } else { rest };
            if line.is_empty() {
                prefix.trim_end().to_owned()
            } else {
                format!("{prefix}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
