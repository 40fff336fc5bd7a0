//! Tree → GitHub-flavoured Markdown.
//!
//! The output is canonical: ATX headings, `-` bullets (`*` for a list right after another
//! bullet list, which Markdown would otherwise merge), `1.` numbers (`1)` likewise), `**`
//! bold, `*` italic, `~~` strike, `<u>` underline, fenced code, `---` rules, GFM tables and
//! task items, `\` hard breaks (`<br>` in headings and table cells, which are one line).
//!
//! Text is escaped so that it reads back as the same text. Emphasis is the one place where
//! Markdown's rules are too subtle to get right by construction (`**(a)**b` is not bold), so
//! each block's inline Markdown is parsed back and, if it does not give the same content,
//! written again with `<strong>`/`<em>`/`<s>` tags, which the importer reads as marks.
//!
//! What Markdown cannot say is dropped, as little as possible: empty paragraphs, trailing
//! whitespace and trailing hard breaks; table cells keep only their text (blocks joined with
//! `<br>`), spans become empty cells, the first row is the header row; image sizes; code
//! marks combined with others (TipTap cannot combine them either).

use super::import_markdown;
use super::inline::{Inline, Piece, flatten, nest, normalize_for_markdown};
use super::markdown_escape::{
    ends_with_unescaped, push_code, push_destination, push_text, push_title,
};
use super::schema::{attr, mark, node};
use super::tree::{Element, Node};

/// Renders the document's blocks; the result ends with one newline unless empty.
pub(crate) fn export(nodes: &[Node]) -> String {
    let mut out = blocks(nodes, false).join("\n\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Renders each child block. `keep_first` keeps a leading empty paragraph (a list item's
/// first paragraph carries its marker even when empty).
fn blocks(children: &[Node], keep_first: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut previous_list: Option<(ListFamily, bool)> = None;
    for (i, child) in children.iter().enumerate() {
        let Node::Element(e) = child else {
            // Text directly in a container: not valid for this schema; keep it as a paragraph.
            if let Node::Text(_) = child {
                out.push(inline(std::slice::from_ref(child), Context::Block));
            }
            previous_list = None;
            continue;
        };
        let family = list_family(e);
        // Two lists of one kind in a row would read back as one list: switch markers.
        let alternate = match (family, previous_list) {
            (Some(f), Some((prev, alt))) if f == prev => !alt,
            _ => false,
        };
        previous_list = family.map(|f| (f, alternate));
        let rendered = block(e, alternate);
        if !rendered.is_empty() || (keep_first && i == 0) {
            out.push(rendered);
        }
    }
    out
}

fn block(e: &Element, alternate: bool) -> String {
    match e.name.as_str() {
        node::PARAGRAPH => inline(&e.children, Context::Block),
        node::HEADING => {
            let level = e.int_attr(attr::LEVEL).unwrap_or(1).clamp(1, 6) as usize;
            let content = inline(&e.children, Context::Heading);
            let hashes = "#".repeat(level);
            if content.is_empty() {
                hashes
            } else {
                format!("{hashes} {content}")
            }
        }
        node::BLOCKQUOTE => {
            let inner = blocks(&e.children, false).join("\n\n");
            prefix_lines(&inner, "> ", "> ")
        }
        node::BULLET_LIST | node::ORDERED_LIST | node::TASK_LIST => list(e, alternate),
        node::CODE_BLOCK => code_block(e),
        node::HORIZONTAL_RULE => "---".to_owned(),
        node::TABLE => table(e),
        node::IMAGE => inline(&[Node::Element(e.clone())], Context::Block),
        node::HARD_BREAK => String::new(),
        // An unknown node: its inline content as a paragraph, or its blocks.
        _ if e.children.iter().any(is_inline) => inline(&e.children, Context::Block),
        _ => blocks(&e.children, false).join("\n\n"),
    }
}

fn is_inline(n: &Node) -> bool {
    match n {
        Node::Text(_) => true,
        Node::Element(e) => e.is(node::HARD_BREAK),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum ListFamily {
    Bullet,
    Ordered,
}

fn list_family(e: &Element) -> Option<ListFamily> {
    match e.name.as_str() {
        node::BULLET_LIST | node::TASK_LIST => Some(ListFamily::Bullet),
        node::ORDERED_LIST => Some(ListFamily::Ordered),
        _ => None,
    }
}

fn list(e: &Element, alternate: bool) -> String {
    // A list marker has at most 9 digits.
    const MAX_NUMBER: i64 = 999_999_999;
    let start = e.int_attr(attr::START).unwrap_or(1).clamp(0, MAX_NUMBER);
    let items: Vec<&Element> = e.elements().collect();
    let tight = items.iter().all(|item| is_tight(item));
    let mut rendered = Vec::with_capacity(items.len());
    for (k, item) in items.iter().enumerate() {
        let bullet = if alternate { "*" } else { "-" };
        let marker = match e.name.as_str() {
            node::ORDERED_LIST => {
                let n = start.saturating_add(k as i64).min(MAX_NUMBER);
                format!("{n}{}", if alternate { ')' } else { '.' })
            }
            node::TASK_LIST => {
                let checked = item.bool_attr(attr::CHECKED).unwrap_or(false);
                format!("{bullet} [{}]", if checked { 'x' } else { ' ' })
            }
            _ => bullet.to_owned(),
        };
        // Continuation lines align with the item's content: after "- " or "10. ". A task
        // item's content starts after "- " too ("[ ]" is part of its first paragraph).
        let indent = " ".repeat(if e.is(node::TASK_LIST) {
            bullet.len() + 1
        } else {
            marker.len() + 1
        });
        let parts = blocks(&item.children, true);
        let separator = if tight { "\n" } else { "\n\n" };
        let content = match parts.split_first() {
            // An item may start with one blank line only: after an empty first paragraph the
            // next block follows at once (and imports as that block after an empty paragraph
            // unless it is a paragraph itself).
            Some((first, rest)) if first.is_empty() && !rest.is_empty() => {
                format!("\n{}", rest.join(separator))
            }
            _ => parts.join(separator),
        };
        rendered.push(prefix_lines(&content, &format!("{marker} "), &indent));
    }
    rendered.join(if tight { "\n" } else { "\n\n" })
}

/// An item can sit in a tight list when it is one paragraph, optionally followed by lists
/// that can interrupt a paragraph (an ordered list must start at 1 for that).
fn is_tight(item: &Element) -> bool {
    let mut children = item.elements();
    let first_is_paragraph = children.next().is_some_and(|c| c.is(node::PARAGRAPH));
    first_is_paragraph
        && children.all(|c| match c.name.as_str() {
            node::BULLET_LIST | node::TASK_LIST => true,
            node::ORDERED_LIST => c.int_attr(attr::START).unwrap_or(1) == 1,
            _ => false,
        })
}

/// Prefixes the first line with `first` and the others with `rest`; blank lines get the
/// prefix without trailing spaces.
fn prefix_lines(content: &str, first: &str, rest: &str) -> String {
    let mut out = String::with_capacity(content.len() + 16);
    for (i, line) in content.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let prefix = if i == 0 { first } else { rest };
        if line.is_empty() {
            out.push_str(prefix.trim_end());
        } else {
            out.push_str(prefix);
            out.push_str(line);
        }
    }
    out
}

fn code_block(e: &Element) -> String {
    let mut code = String::new();
    super::tree::plain_text(&e.children, &mut code);
    let language: String = e
        .str_attr(attr::LANGUAGE)
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let language = language.trim();
    // A backtick fence cannot carry an info string with a backtick; tildes can.
    let fence_char = if language.contains('`') { '~' } else { '`' };
    let longest = longest_run(&code, fence_char);
    let fence = fence_char.to_string().repeat((longest + 1).max(3));
    let mut out = format!("{fence}{language}\n");
    if !code.is_empty() {
        out.push_str(&code);
        out.push('\n');
    }
    out.push_str(&fence);
    out
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut longest, mut current) = (0, 0);
    for ch in s.chars() {
        current = if ch == c { current + 1 } else { 0 };
        longest = longest.max(current);
    }
    longest
}

fn table(e: &Element) -> String {
    let rows: Vec<&Element> = e.elements().filter(|r| r.is(node::TABLE_ROW)).collect();
    let mut grid: Vec<Vec<String>> = Vec::with_capacity(rows.len());
    let mut aligns: Vec<Option<String>> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let mut cells = Vec::new();
        for cell in row.elements() {
            let span = cell.int_attr(attr::COLSPAN).unwrap_or(1).clamp(1, 1000) as usize;
            if r == 0 {
                aligns.push(cell.str_attr(attr::ALIGN).map(str::to_owned));
                aligns.extend(std::iter::repeat_n(None, span - 1));
            }
            cells.push(inline(&cell_inline(cell), Context::TableCell));
            cells.extend(std::iter::repeat_n(String::new(), span - 1));
        }
        grid.push(cells);
    }
    let width = grid.iter().map(Vec::len).max().unwrap_or(0).max(1);
    aligns.resize(width, None);
    let mut lines = Vec::with_capacity(grid.len() + 1);
    let mut header = grid.first().cloned().unwrap_or_default();
    header.resize(width, String::new());
    lines.push(table_row(&header));
    let delimiters: Vec<String> = aligns
        .iter()
        .map(|a| {
            match a.as_deref() {
                Some("left") => ":---",
                Some("center") => ":---:",
                Some("right") => "---:",
                _ => "---",
            }
            .to_owned()
        })
        .collect();
    lines.push(table_row(&delimiters));
    for row in grid.iter().skip(1) {
        lines.push(table_row(row));
    }
    lines.join("\n")
}

fn table_row(cells: &[String]) -> String {
    let mut out = String::from("|");
    for c in cells {
        out.push(' ');
        out.push_str(c);
        if !c.is_empty() {
            out.push(' ');
        }
        out.push('|');
    }
    out
}

/// A cell's content as one line of inline content: its text blocks joined by hard breaks.
fn cell_inline(cell: &Element) -> Vec<Node> {
    let mut out = Vec::new();
    collect_textblocks(&cell.children, &mut out);
    out
}

fn collect_textblocks(children: &[Node], out: &mut Vec<Node>) {
    for child in children {
        let Node::Element(e) = child else {
            out.push(child.clone());
            continue;
        };
        match e.name.as_str() {
            node::PARAGRAPH | node::HEADING => {
                if !out.is_empty() {
                    out.push(Node::Element(Element::new(node::HARD_BREAK)));
                }
                out.extend(e.children.iter().cloned());
            }
            node::HARD_BREAK | node::IMAGE => out.push(child.clone()),
            _ => collect_textblocks(&e.children, out),
        }
    }
}

/// Where inline content goes: a block of its own lines, or one line.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    Block,
    Heading,
    TableCell,
}

/// Renders inline content, verified by parsing it back (see the module documentation).
fn inline(children: &[Node], context: Context) -> String {
    let mut pieces = flatten(children);
    normalize_for_markdown(&mut pieces);
    if pieces.is_empty() {
        return String::new();
    }
    let nested = nest(&pieces);
    let mut out = render(&nested, context, Emphasis::Delimiters);
    if !reads_back_as(&out, &pieces) {
        out = render(&nested, context, Emphasis::Tags);
    }
    if context == Context::Heading && out.ends_with('#') {
        // `# Use #` would lose its closing `#` as an ATX closing sequence.
        // Only a run after whitespace closes (`C#` is fine); a run at the start was escaped
        // as a line start.
        let before = out.trim_end_matches('#');
        if before.ends_with([' ', '\t']) {
            out.insert(before.len(), '\\');
        }
    }
    if context == Context::TableCell {
        // GFM splits rows on pipes before parsing inlines, in code spans and URLs too; an
        // escaped pipe is a pipe everywhere in the cell.
        out = out.replace('|', "\\|");
    }
    out
}

fn reads_back_as(markdown: &str, pieces: &[Piece]) -> bool {
    match import_markdown::parse_inline(markdown) {
        Some(nodes) => {
            let mut parsed = flatten(&nodes);
            normalize_for_markdown(&mut parsed);
            parsed == pieces
        }
        None => false,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Emphasis {
    Delimiters,
    Tags,
}

fn render(nodes: &[Inline<'_>], context: Context, emphasis: Emphasis) -> String {
    let mut out = String::new();
    render_into(&mut out, nodes, context, emphasis);
    out
}

fn render_into(out: &mut String, nodes: &[Inline<'_>], context: Context, emphasis: Emphasis) {
    for n in nodes {
        match n {
            Inline::Text(text) => push_text(out, text),
            Inline::Code(code) => push_code(out, code),
            Inline::Break if context == Context::Block => out.push_str("\\\n"),
            Inline::Break => out.push_str("<br>"),
            Inline::Image(attrs) => {
                let get = |key: &str| match attrs.get(key) {
                    Some(yrs::Any::String(s)) => s.to_string(),
                    _ => String::new(),
                };
                out.push_str("![");
                push_text(out, &get(attr::ALT));
                out.push_str("](");
                push_destination(out, &get(attr::SRC));
                push_title(out, &get(attr::TITLE));
                out.push(')');
            }
            Inline::Span(m, children) => {
                let (open, close) = match (m.name.as_str(), emphasis) {
                    (mark::BOLD, Emphasis::Delimiters) => ("**", "**"),
                    (mark::BOLD, Emphasis::Tags) => ("<strong>", "</strong>"),
                    (mark::ITALIC, Emphasis::Delimiters) => ("*", "*"),
                    (mark::ITALIC, Emphasis::Tags) => ("<em>", "</em>"),
                    (mark::STRIKE, Emphasis::Delimiters) => ("~~", "~~"),
                    (mark::STRIKE, Emphasis::Tags) => ("<s>", "</s>"),
                    (mark::UNDERLINE, _) => ("<u>", "</u>"),
                    (mark::LINK, _) if m.str_attr(attr::HREF).is_some() => {
                        // A `!` just before would make the link an image.
                        if ends_with_unescaped(out, '!') {
                            out.insert(out.len() - 1, '\\');
                        }
                        out.push('[');
                        render_into(out, children, context, emphasis);
                        out.push_str("](");
                        push_destination(out, m.str_attr(attr::HREF).unwrap_or(""));
                        push_title(out, m.str_attr(attr::TITLE).unwrap_or(""));
                        out.push(')');
                        continue;
                    }
                    // A mark Markdown has no syntax for: keep the text.
                    _ => ("", ""),
                };
                out.push_str(open);
                render_into(out, children, context, emphasis);
                out.push_str(close);
            }
        }
    }
}
