//! Inline content (the children of a paragraph, heading or table cell) prepared for the
//! exporters: flattened into [`Piece`]s, then nested into mark [`Inline::Span`]s so that a mark
//! covering several text nodes opens and closes once.

use std::cmp::Reverse;

use super::schema::{mark, mark_rank, node};
use super::tree::{Attrs, Mark, Node, TextNode, normalize_marks, plain_text};

/// One unit of inline content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    /// Text without line breaks, marks normalized (a code mark excludes the others).
    Text { text: String, marks: Vec<Mark> },
    /// A hard line break.
    Break,
    /// An inline image (TipTap's images are blocks, but another schema's may be inline, and
    /// Markdown images are inline until the importer lifts them out).
    Image(Attrs),
}

impl Piece {
    fn text(text: &str, marks: &[Mark]) -> Piece {
        Piece::Text {
            text: text.to_owned(),
            marks: marks.to_vec(),
        }
    }

    /// The marks rendered as spans around the piece: all but code, which is part of the leaf.
    fn wrapping(&self) -> impl Iterator<Item = &Mark> {
        let marks: &[Mark] = match self {
            Piece::Text { marks, .. } => marks,
            Piece::Break | Piece::Image(_) => &[],
        };
        marks.iter().filter(|m| !m.is(mark::CODE))
    }

    fn has_wrapping(&self, m: &Mark) -> bool {
        self.wrapping().any(|w| w == m)
    }
}

/// A leaf or a mark wrapping its content.
#[derive(Debug, PartialEq)]
pub(crate) enum Inline<'a> {
    Text(&'a str),
    Code(&'a str),
    Break,
    Image(&'a Attrs),
    Span(&'a Mark, Vec<Inline<'a>>),
}

/// Flattens inline nodes. Newlines in text become breaks; an element other than a hard break
/// or an image contributes its text.
pub(crate) fn flatten(nodes: &[Node]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for n in nodes {
        match n {
            Node::Text(TextNode { text, marks }) => {
                let mut marks = marks.clone();
                normalize_marks(&mut marks);
                push_text(&mut pieces, text, &marks);
            }
            Node::Element(e) if e.is(node::HARD_BREAK) => pieces.push(Piece::Break),
            Node::Element(e) if e.is(node::IMAGE) => pieces.push(Piece::Image(e.attrs.clone())),
            Node::Element(e) => {
                let mut text = String::new();
                plain_text(&e.children, &mut text);
                push_text(&mut pieces, &text, &[]);
            }
        }
    }
    merge(&mut pieces);
    pieces
}

fn push_text(pieces: &mut Vec<Piece>, text: &str, marks: &[Mark]) {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            pieces.push(Piece::Break);
        }
        if !line.is_empty() {
            pieces.push(Piece::text(line, marks));
        }
    }
}

/// Merges neighbouring texts with equal marks and drops empty ones.
pub(crate) fn merge(pieces: &mut Vec<Piece>) {
    let mut merged: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces.drain(..) {
        match (merged.last_mut(), p) {
            (_, Piece::Text { text, .. }) if text.is_empty() => {}
            (
                Some(Piece::Text { text, marks }),
                Piece::Text {
                    text: next,
                    marks: next_marks,
                },
            ) if *marks == next_marks => text.push_str(&next),
            (_, p) => merged.push(p),
        }
    }
    *pieces = merged;
}

/// The marks the Markdown exporter writes (links too, when they have a URL).
const MARKDOWN_MARKS: [&str; 5] = [
    mark::BOLD,
    mark::ITALIC,
    mark::STRIKE,
    mark::UNDERLINE,
    mark::CODE,
];

/// Makes inline content expressible in Markdown without changing what a reader sees:
/// marks without Markdown syntax go, whitespace at the edges of a bold, italic or strike range moves outside it (`** a**` would
/// not parse as bold), whitespace before a break or at the end is dropped (Markdown drops it
/// too) and so are trailing breaks (a final `\` is a literal backslash).
pub(crate) fn normalize_for_markdown(pieces: &mut Vec<Piece>) {
    // Marks Markdown has no syntax for (or a link without a URL) are left out.
    for piece in pieces.iter_mut() {
        if let Piece::Text { marks, .. } = piece {
            marks.retain(|m| match m.name.as_str() {
                mark::LINK => m.str_attr(super::schema::attr::HREF).is_some(),
                name => MARKDOWN_MARKS.contains(&name),
            });
        }
    }
    merge(pieces);
    for name in [mark::BOLD, mark::ITALIC, mark::STRIKE] {
        unmark_edge_whitespace(pieces, name);
    }
    let mut i = 0;
    while i < pieces.len() {
        let line_end = pieces.get(i + 1).is_none_or(|next| *next == Piece::Break);
        if line_end {
            trim_end_unless_code(&mut pieces[i]);
        }
        i += 1;
    }
    merge(pieces);
    while pieces.last() == Some(&Piece::Break) {
        pieces.pop();
    }
    // Dropping a break may leave text that ended a line with trailing whitespace.
    if let Some(last) = pieces.last_mut() {
        trim_end_unless_code(last);
    }
    merge(pieces);
}

/// Trims trailing whitespace of plain text; a code span keeps its spaces.
fn trim_end_unless_code(piece: &mut Piece) {
    if let Piece::Text { text, marks } = piece
        && !marks.iter().any(|m| m.is(mark::CODE))
    {
        let kept = text.trim_end().len();
        text.truncate(kept);
    }
}

fn has_mark(p: &Piece, name: &str) -> bool {
    matches!(p, Piece::Text { marks, .. } if marks.iter().any(|m| m.is(name)))
}

fn unmark_edge_whitespace(pieces: &mut Vec<Piece>, name: &str) {
    let mut start = 0;
    while start < pieces.len() {
        if !has_mark(&pieces[start], name) {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < pieces.len() && has_mark(&pieces[end], name) {
            end += 1;
        }
        // Leading whitespace of the range [start, end).
        let mut i = start;
        while i < end {
            let inserted = split_off_whitespace(pieces, i, name, Edge::Leading);
            end += inserted;
            if has_mark(&pieces[i], name) {
                break;
            }
            i += 1;
        }
        // Trailing whitespace, walking back.
        let mut j = end;
        while j > start {
            let inserted = split_off_whitespace(pieces, j - 1, name, Edge::Trailing);
            end += inserted;
            // After a split the marked part stays at j - 1.
            if has_mark(&pieces[j - 1], name) {
                break;
            }
            j -= 1;
        }
        start = end;
    }
}

#[derive(Clone, Copy)]
enum Edge {
    Leading,
    Trailing,
}

/// Removes mark `name` from the whitespace at one edge of piece `i`, splitting it when it has
/// other text. Returns how many pieces were inserted (0 or 1); the marked part, if any, stays
/// at index `i` for a trailing edge and moves to `i + 1` for a leading one.
fn split_off_whitespace(pieces: &mut Vec<Piece>, i: usize, name: &str, edge: Edge) -> usize {
    let Piece::Text { text, marks } = &mut pieces[i] else {
        return 0;
    };
    let without: Vec<Mark> = marks.iter().filter(|m| !m.is(name)).cloned().collect();
    let cut = match edge {
        Edge::Leading => text.len() - text.trim_start().len(),
        Edge::Trailing => text.trim_end().len(),
    };
    let all_whitespace = text.trim().is_empty();
    if all_whitespace {
        *marks = without;
        return 0;
    }
    match edge {
        Edge::Leading if cut > 0 => {
            let ws = text[..cut].to_owned();
            text.drain(..cut);
            pieces.insert(
                i,
                Piece::Text {
                    text: ws,
                    marks: without,
                },
            );
            1
        }
        Edge::Trailing if cut < text.len() => {
            let ws = text.split_off(cut);
            pieces.insert(
                i + 1,
                Piece::Text {
                    text: ws,
                    marks: without,
                },
            );
            1
        }
        _ => 0,
    }
}

/// Nests pieces into spans. A mark continuing from the previous piece stays open; marks that
/// open together are nested longest-running outermost (ties: schema order, so links wrap),
/// which keeps the number of delimiters low.
pub(crate) fn nest(pieces: &[Piece]) -> Vec<Inline<'_>> {
    let mut root: Vec<Inline<'_>> = Vec::new();
    let mut stack: Vec<(&Mark, Vec<Inline<'_>>)> = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let keep = stack
            .iter()
            .take_while(|(m, _)| piece.has_wrapping(m))
            .count();
        while stack.len() > keep {
            close(&mut stack, &mut root);
        }
        let mut opening: Vec<&Mark> = piece
            .wrapping()
            .filter(|m| !stack.iter().any(|(open, _)| open == m))
            .collect();
        opening.sort_by_key(|m| {
            let run = pieces[i..].iter().take_while(|p| p.has_wrapping(m)).count();
            (Reverse(run), mark_rank(&m.name))
        });
        for m in opening {
            stack.push((m, Vec::new()));
        }
        let leaf = match piece {
            Piece::Text { text, marks } if marks.iter().any(|m| m.is(mark::CODE)) => {
                Inline::Code(text)
            }
            Piece::Text { text, .. } => Inline::Text(text),
            Piece::Break => Inline::Break,
            Piece::Image(attrs) => Inline::Image(attrs),
        };
        match stack.last_mut() {
            Some((_, children)) => children.push(leaf),
            None => root.push(leaf),
        }
    }
    while !stack.is_empty() {
        close(&mut stack, &mut root);
    }
    root
}

fn close<'a>(stack: &mut Vec<(&'a Mark, Vec<Inline<'a>>)>, root: &mut Vec<Inline<'a>>) {
    if let Some((m, children)) = stack.pop() {
        let span = Inline::Span(m, children);
        match stack.last_mut() {
            Some((_, parent)) => parent.push(span),
            None => root.push(span),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str, marks: &[&str]) -> Piece {
        Piece::Text {
            text: text.to_owned(),
            marks: marks.iter().map(|m| Mark::new(m)).collect(),
        }
    }

    #[test]
    fn edge_whitespace_leaves_emphasis() {
        let mut pieces = vec![t("a", &[]), t(" b ", &["bold"]), t("c", &[])];
        normalize_for_markdown(&mut pieces);
        assert_eq!(pieces, vec![t("a ", &[]), t("b", &["bold"]), t(" c", &[])]);
        let mut pieces = vec![
            t(" ", &["italic"]),
            t(" x", &["bold", "italic"]),
            t("  ", &[]),
        ];
        normalize_for_markdown(&mut pieces);
        assert_eq!(pieces, vec![t("  ", &[]), t("x", &["bold", "italic"])]);
    }

    #[test]
    fn trailing_whitespace_and_breaks_go() {
        let mut pieces = vec![t("a  ", &[]), Piece::Break, t("b ", &[]), Piece::Break];
        normalize_for_markdown(&mut pieces);
        assert_eq!(pieces, vec![t("a", &[]), Piece::Break, t("b", &[])]);
    }

    #[test]
    fn longer_marks_nest_outside() {
        let pieces = vec![t("a", &["italic"]), t("b", &["bold", "italic"])];
        let nested = nest(&pieces);
        let italic = Mark::new("italic");
        let bold = Mark::new("bold");
        assert_eq!(
            nested,
            vec![Inline::Span(
                &italic,
                vec![
                    Inline::Text("a"),
                    Inline::Span(&bold, vec![Inline::Text("b")])
                ]
            )]
        );
    }
}
