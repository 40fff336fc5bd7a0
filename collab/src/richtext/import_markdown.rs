//! Markdown (CommonMark with GFM tables, strikethrough and task lists, parsed by
//! pulldown-cmark) → tree, shaped to TipTap's schema:
//!
//! - a tight list item's or table cell's bare inline content goes into a paragraph;
//! - `- [ ]` items become `taskItem`s in a `taskList`; a list mixing task and plain items
//!   becomes consecutive lists; `1. [ ]` keeps its brackets as text (no ordered task lists);
//! - images, block nodes in TipTap, are lifted out of their paragraph, splitting it;
//! - containers that need content get an empty paragraph (`>` alone, an empty cell, an item
//!   starting with a list);
//! - `<u>`, `<strong>`/`<b>`, `<em>`/`<i>`, `<s>`/`<del>`/`<strike>` and `<br>` inline tags
//!   become marks and hard breaks (the exporter writes underline, and emphasis it cannot
//!   delimit, that way); other HTML stays literal text, comments are dropped;
//! - a soft line break is a space; a code span drops the marks around it (TipTap's code mark
//!   excludes the others); links with a script URL keep their text only.

use pulldown_cmark::{Alignment, CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};
use yrs::Any;

use super::schema::{attr, cell_attrs, is_unsafe_url, link_attrs, mark, node};
use super::shape;
use super::tree::{Attrs, Element, MAX_DEPTH, Mark, Node, TextNode, merge_text, normalize_marks};
use super::{ImportError, ImportLimits};

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// Parses a Markdown document into the `default` fragment's content.
pub(crate) fn import(markdown: &str, limits: &ImportLimits) -> Result<Vec<Node>, ImportError> {
    let mut nodes = parse(markdown, limits)?;
    shape::fix_content(&mut nodes, "doc");
    if nodes.is_empty() {
        // TipTap's document holds at least one block: an empty document is one empty paragraph.
        nodes.push(Node::Element(Element::new(node::PARAGRAPH)));
    }
    Ok(nodes)
}

/// The inline content of Markdown that is one paragraph, as parsed before images are lifted
/// out; `None` when it is anything else. The exporter checks its output with it.
pub(crate) fn parse_inline(markdown: &str) -> Option<Vec<Node>> {
    // The exporter's own output for one paragraph: the default limits never bind it.
    let nodes = parse(markdown, &ImportLimits::default()).ok()?;
    match <[Node; 1]>::try_from(nodes) {
        Ok([Node::Element(p)]) if p.is(node::PARAGRAPH) => Some(p.children),
        _ => None,
    }
}

/// Lines and ASCII punctuation one node may take, on average, before the input is refused
/// unparsed. Generous: a node of prose takes a few, a table cell two (`|`, a line per row).
pub const MARKUP_PER_NODE: usize = 8;

/// What pulldown-cmark's first pass, which runs over the whole input before the first event,
/// makes its items of: every container, delimiter run and text segment starts at a line or
/// an ASCII punctuation character. Counting them bounds that pass's memory before it runs.
fn markup_weight(markdown: &str) -> usize {
    markdown
        .bytes()
        .filter(|b| *b == b'\n' || b.is_ascii_punctuation())
        .count()
}

/// Nodes one line or markup character may make. Markdown makes at most about three (`|x`:
/// a cell, its paragraph and its text); more comes only from table rows the parser pads
/// with empty cells up to the header's width, which would let a few bytes make thousands
/// of nodes.
const NODES_PER_MARKUP: usize = 4;

fn parse(markdown: &str, limits: &ImportLimits) -> Result<Vec<Node>, ImportError> {
    let weight = markup_weight(markdown);
    let max_markup = limits.max_nodes.saturating_mul(MARKUP_PER_NODE);
    if weight > max_markup {
        return Err(ImportError::TooMuchMarkup { max: max_markup });
    }
    let mut limits = *limits;
    limits.max_nodes = limits
        .max_nodes
        .min(weight.saturating_add(2).saturating_mul(NODES_PER_MARKUP));
    let mut builder = Builder::new(limits);
    // The parser yields events lazily: stopping at the first limit crossed leaves the rest of
    // the input unread.
    for event in Parser::new_ext(markdown, options()) {
        builder.event(event)?;
    }
    builder.finish()
}

/// What an open frame is building.
#[derive(Debug)]
enum Kind {
    Root,
    /// `implicit`: opened by the builder for bare inline content, closed by the next block.
    Textblock {
        implicit: bool,
    },
    Blockquote,
    /// Code or HTML text is collected raw.
    CodeBlock,
    HtmlBlock,
    List {
        start: Option<u64>,
    },
    Item {
        task: Option<bool>,
    },
    Table {
        aligns: Vec<Alignment>,
        rows: usize,
    },
    Row {
        header: bool,
    },
    Cell,
    /// A construct this schema has no node for: its content joins the parent.
    Transparent,
}

#[derive(Debug)]
struct Frame {
    kind: Kind,
    element: Element,
    raw: String,
}

impl Frame {
    fn new(kind: Kind, element: Element) -> Self {
        Frame {
            kind,
            element,
            raw: String::new(),
        }
    }
}

/// An image being read: its alt text is the text of its content.
#[derive(Debug)]
struct ImageCapture {
    src: String,
    title: String,
    alt: String,
    /// Images nested in the alt text.
    depth: usize,
}

/// Inline HTML tags read as marks, with their mark.
const HTML_MARK_TAGS: [(&str, &str); 8] = [
    ("u", mark::UNDERLINE),
    ("strong", mark::BOLD),
    ("b", mark::BOLD),
    ("em", mark::ITALIC),
    ("i", mark::ITALIC),
    ("s", mark::STRIKE),
    ("del", mark::STRIKE),
    ("strike", mark::STRIKE),
];

#[derive(Debug)]
struct Builder {
    stack: Vec<Frame>,
    /// Marks of the open Markdown spans; `None` for a span without a mark here (an unsafe
    /// link, superscript) so that its end still pops one.
    marks: Vec<Option<Mark>>,
    /// How many of each mark's HTML tags are open (HTML tags need not nest with Markdown).
    html_marks: Vec<(&'static str, usize)>,
    image: Option<ImageCapture>,
    limits: ImportLimits,
    /// Nodes made so far (text runs merged into their neighbour not counted).
    nodes: usize,
    /// The first limit crossed by a step that cannot return an error itself.
    exceeded: Option<ImportError>,
}

impl Builder {
    fn new(limits: ImportLimits) -> Self {
        Builder {
            stack: vec![Frame::new(Kind::Root, Element::new("doc"))],
            marks: Vec::new(),
            html_marks: Vec::new(),
            image: None,
            limits,
            nodes: 0,
            exceeded: None,
        }
    }

    /// Counts `n` new nodes against the limit.
    fn count(&mut self, n: usize) {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes && self.exceeded.is_none() {
            self.exceeded = Some(ImportError::TooManyNodes {
                max: self.limits.max_nodes,
            });
        }
    }

    fn event(&mut self, event: Event<'_>) -> Result<(), ImportError> {
        if let Some(e) = self.exceeded.take() {
            return Err(e);
        }
        self.step(event)?;
        match self.exceeded.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn step(&mut self, event: Event<'_>) -> Result<(), ImportError> {
        if self.image.is_some() {
            self.image_event(event);
            return Ok(());
        }
        match event {
            Event::Start(tag) => self.start(tag)?,
            Event::End(tag) => self.end(tag),
            Event::Text(text) => self.text(&text),
            Event::Code(code) => {
                let mut marks = self.current_marks();
                marks.push(Mark::new(mark::CODE));
                self.push_text(&code, marks);
            }
            Event::InlineMath(text) | Event::DisplayMath(text) => self.text(&text),
            Event::Html(html) => self.text(&html),
            Event::InlineHtml(html) => self.inline_html(&html),
            Event::FootnoteReference(label) => self.text(&format!("[^{label}]")),
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => self.inline_element(Element::new(node::HARD_BREAK)),
            Event::Rule => {
                self.close_implicit();
                self.count(1);
                self.append(vec![Node::Element(Element::new(node::HORIZONTAL_RULE))]);
            }
            Event::TaskListMarker(checked) => {
                if let Some(Frame {
                    kind: Kind::Item { task },
                    ..
                }) = self
                    .stack
                    .iter_mut()
                    .rev()
                    .find(|f| matches!(f.kind, Kind::Item { .. }))
                {
                    *task = Some(checked);
                }
            }
        }
        Ok(())
    }

    fn image_event(&mut self, event: Event<'_>) {
        let Some(image) = self.image.as_mut() else {
            return;
        };
        match event {
            Event::Start(Tag::Image { .. }) => image.depth += 1,
            Event::End(TagEnd::Image) if image.depth > 0 => image.depth -= 1,
            Event::End(TagEnd::Image) => {
                if let Some(image) = self.image.take() {
                    let mut attrs = Attrs::from([(attr::SRC.to_owned(), Any::from(image.src))]);
                    for (key, value) in [(attr::ALT, image.alt), (attr::TITLE, image.title)] {
                        if !value.is_empty() {
                            attrs.insert(key.to_owned(), Any::from(value));
                        }
                    }
                    self.inline_element(Element::with_attrs(node::IMAGE, attrs));
                }
            }
            Event::Text(t) | Event::Code(t) => image.alt.push_str(&t),
            Event::SoftBreak | Event::HardBreak => image.alt.push(' '),
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) -> Result<(), ImportError> {
        let block = |kind, name: &str| Some(Frame::new(kind, Element::new(name)));
        let frame = match tag {
            Tag::Paragraph => block(Kind::Textblock { implicit: false }, node::PARAGRAPH),
            Tag::Heading { level, .. } => Some(Frame::new(
                Kind::Textblock { implicit: false },
                Element::with_attrs(
                    node::HEADING,
                    Attrs::from([(attr::LEVEL.to_owned(), Any::from(level as i64))]),
                ),
            )),
            Tag::BlockQuote(_) => block(Kind::Blockquote, node::BLOCKQUOTE),
            Tag::CodeBlock(kind) => {
                let mut attrs = Attrs::new();
                if let CodeBlockKind::Fenced(info) = kind
                    && let Some(language) = info.split_whitespace().next()
                {
                    attrs.insert(attr::LANGUAGE.to_owned(), Any::from(language));
                }
                Some(Frame::new(
                    Kind::CodeBlock,
                    Element::with_attrs(node::CODE_BLOCK, attrs),
                ))
            }
            Tag::HtmlBlock => block(Kind::HtmlBlock, node::PARAGRAPH),
            Tag::List(start) => block(Kind::List { start }, node::BULLET_LIST),
            Tag::Item => block(Kind::Item { task: None }, node::LIST_ITEM),
            Tag::Table(aligns) => block(Kind::Table { aligns, rows: 0 }, node::TABLE),
            Tag::TableHead => {
                self.count_row()?;
                block(Kind::Row { header: true }, node::TABLE_ROW)
            }
            Tag::TableRow => {
                self.count_row()?;
                block(Kind::Row { header: false }, node::TABLE_ROW)
            }
            Tag::TableCell => block(Kind::Cell, node::TABLE_CELL),
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => block(Kind::Transparent, "transparent"),
            Tag::Emphasis => self.open_mark(Some(Mark::new(mark::ITALIC))),
            Tag::Strong => self.open_mark(Some(Mark::new(mark::BOLD))),
            Tag::Strikethrough => self.open_mark(Some(Mark::new(mark::STRIKE))),
            Tag::Superscript | Tag::Subscript => self.open_mark(None),
            Tag::Link {
                link_type,
                dest_url,
                title,
                ..
            } => {
                let href = if link_type == LinkType::Email {
                    format!("mailto:{dest_url}")
                } else {
                    dest_url.to_string()
                };
                let title = (!title.is_empty()).then_some(title.as_ref());
                let link = (!is_unsafe_url(&href)).then(|| Mark {
                    name: mark::LINK.to_owned(),
                    attrs: link_attrs(&href, title),
                });
                self.open_mark(link)
            }
            Tag::Image {
                dest_url, title, ..
            } => {
                self.image = Some(ImageCapture {
                    src: dest_url.to_string(),
                    title: title.to_string(),
                    alt: String::new(),
                    depth: 0,
                });
                None
            }
        };
        if self.marks.len() > MAX_DEPTH {
            // Every text run copies the open marks: their nesting is bounded like blocks'.
            return Err(ImportError::TooDeep { max: MAX_DEPTH });
        }
        if let Some(frame) = frame {
            self.close_implicit();
            if self.stack.len() >= MAX_DEPTH {
                return Err(ImportError::TooDeep { max: MAX_DEPTH });
            }
            self.count(1);
            self.stack.push(frame);
        }
        Ok(())
    }

    /// Counts a row against the innermost table's limit.
    fn count_row(&mut self) -> Result<(), ImportError> {
        let max = self.limits.max_table_rows;
        if let Some(Frame {
            kind: Kind::Table { rows, .. },
            ..
        }) = self
            .stack
            .iter_mut()
            .rev()
            .find(|f| matches!(f.kind, Kind::Table { .. }))
        {
            *rows += 1;
            if *rows > max {
                return Err(ImportError::TooManyRows { max });
            }
        }
        Ok(())
    }

    fn open_mark(&mut self, m: Option<Mark>) -> Option<Frame> {
        self.marks.push(m);
        None
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link => {
                self.marks.pop();
            }
            TagEnd::Image => {}
            TagEnd::Paragraph | TagEnd::Heading(_) => self.pop_frame(),
            _ => {
                self.close_implicit();
                self.pop_frame();
            }
        }
    }

    /// Closes the top frame and appends what it built to its parent.
    fn pop_frame(&mut self) {
        if self.stack.len() <= 1 {
            return;
        }
        let Some(frame) = self.stack.pop() else {
            return;
        };
        if matches!(frame.kind, Kind::Textblock { .. }) {
            // An unclosed `<u>` ends with its paragraph, as a browser closes it with the `<p>`.
            self.html_marks.clear();
        }
        let raw = matches!(frame.kind, Kind::CodeBlock | Kind::HtmlBlock);
        let nodes = self.finish_frame(frame);
        if raw {
            // What a raw block made of its text: a code block's run, an HTML block's lines.
            let made: usize = nodes.iter().map(children_of).sum();
            self.count(made);
        }
        self.append(nodes);
    }

    fn finish_frame(&self, frame: Frame) -> Vec<Node> {
        let Frame {
            kind,
            mut element,
            raw,
        } = frame;
        match kind {
            Kind::Root | Kind::Transparent => element.children,
            Kind::Textblock { .. } => {
                merge_text(&mut element.children);
                vec![Node::Element(element)]
            }
            Kind::Blockquote | Kind::Table { .. } | Kind::Row { .. } => {
                vec![Node::Element(element)]
            }
            Kind::CodeBlock => {
                // The fence's content ends with the newline before the closing fence.
                let code = raw.strip_suffix('\n').unwrap_or(&raw);
                if !code.is_empty() {
                    element.children.push(plain(code, Vec::new()));
                }
                vec![Node::Element(element)]
            }
            Kind::HtmlBlock => html_block(&raw),
            Kind::Item { task } => vec![Node::Element(self.finish_item(element, task))],
            Kind::List { start } => finish_list(element.children, start),
            Kind::Cell => {
                let (header, column) = match self.stack.last() {
                    Some(Frame {
                        kind: Kind::Row { header },
                        element: row,
                        ..
                    }) => (*header, row.children.len()),
                    _ => (false, 0),
                };
                let align = self.stack.iter().rev().find_map(|f| match &f.kind {
                    Kind::Table { aligns, .. } => aligns.get(column).copied(),
                    _ => None,
                });
                let align = match align {
                    Some(Alignment::Left) => Some("left"),
                    Some(Alignment::Center) => Some("center"),
                    Some(Alignment::Right) => Some("right"),
                    Some(Alignment::None) | None => None,
                };
                element.name = if header {
                    node::TABLE_HEADER
                } else {
                    node::TABLE_CELL
                }
                .to_owned();
                element.attrs = cell_attrs(align);
                vec![Node::Element(element)]
            }
        }
    }

    /// A list item becomes a `taskItem` in a bullet list with a task marker; an ordered list
    /// has no task form, so its marker goes back into the text.
    fn finish_item(&self, mut item: Element, task: Option<bool>) -> Element {
        let ordered = matches!(
            self.stack.last(),
            Some(Frame {
                kind: Kind::List { start: Some(_) },
                ..
            })
        );
        match task {
            Some(checked) if ordered => {
                let marker = if checked { "[x]" } else { "[ ]" };
                match item.children.first_mut() {
                    Some(Node::Element(p)) if p.is(node::PARAGRAPH) => {
                        p.children
                            .insert(0, plain(&format!("{marker} "), Vec::new()));
                        merge_text(&mut p.children);
                    }
                    _ => {
                        let mut p = Element::new(node::PARAGRAPH);
                        p.children.push(plain(marker, Vec::new()));
                        item.children.insert(0, Node::Element(p));
                    }
                }
                item
            }
            Some(checked) => {
                item.name = node::TASK_ITEM.to_owned();
                item.attrs = Attrs::from([(attr::CHECKED.to_owned(), Any::from(checked))]);
                item
            }
            None => item,
        }
    }

    fn append(&mut self, nodes: Vec<Node>) {
        if let Some(top) = self.stack.last_mut() {
            top.element.children.extend(nodes);
        }
    }

    /// Closes an implicit paragraph before a block starts or its container ends.
    fn close_implicit(&mut self) {
        if matches!(
            self.stack.last(),
            Some(Frame {
                kind: Kind::Textblock { implicit: true },
                ..
            })
        ) {
            self.pop_frame();
        }
    }

    /// Makes sure inline content has a textblock to go to.
    fn ensure_textblock(&mut self) {
        if !matches!(
            self.stack.last(),
            Some(Frame {
                kind: Kind::Textblock { .. },
                ..
            })
        ) {
            self.count(1);
            self.stack.push(Frame::new(
                Kind::Textblock { implicit: true },
                Element::new(node::PARAGRAPH),
            ));
        }
    }

    fn current_marks(&self) -> Vec<Mark> {
        let mut marks: Vec<Mark> = self.marks.iter().flatten().cloned().collect();
        for (name, open) in &self.html_marks {
            if *open > 0 {
                marks.push(Mark::new(name));
            }
        }
        marks
    }

    fn text(&mut self, text: &str) {
        if let Some(
            frame @ Frame {
                kind: Kind::CodeBlock | Kind::HtmlBlock,
                ..
            },
        ) = self.stack.last_mut()
        {
            frame.raw.push_str(text);
            return;
        }
        let marks = self.current_marks();
        self.push_text(text, marks);
    }

    fn push_text(&mut self, text: &str, mut marks: Vec<Mark>) {
        normalize_marks(&mut marks);
        self.ensure_textblock();
        // The parser splits text at every special character: runs with the same marks are
        // joined at once, so that only real runs count as nodes.
        if let Some(Frame { element, .. }) = self.stack.last_mut()
            && let Some(Node::Text(last)) = element.children.last_mut()
            && last.marks == marks
        {
            last.text.push_str(text);
            return;
        }
        self.count(1);
        self.append(vec![plain(text, marks)]);
    }

    fn inline_element(&mut self, element: Element) {
        self.ensure_textblock();
        self.count(1);
        self.append(vec![Node::Element(element)]);
    }

    fn inline_html(&mut self, html: &str) {
        let trimmed = html.trim();
        if trimmed.starts_with("<!--") {
            return;
        }
        match parse_tag(trimmed) {
            Some((name, _)) if name == "br" => {
                self.inline_element(Element::new(node::HARD_BREAK));
            }
            Some((name, closing)) => match HTML_MARK_TAGS.iter().find(|(tag, _)| *tag == name) {
                Some((_, mark_name)) => {
                    let position = self.html_marks.iter().position(|(m, _)| m == mark_name);
                    let entry = match position {
                        Some(i) => &mut self.html_marks[i],
                        None => {
                            self.html_marks.push((mark_name, 0));
                            let last = self.html_marks.len() - 1;
                            &mut self.html_marks[last]
                        }
                    };
                    entry.1 = if closing {
                        entry.1.saturating_sub(1)
                    } else {
                        entry.1 + 1
                    };
                }
                None => self.text(html),
            },
            None => self.text(html),
        }
    }

    fn finish(mut self) -> Result<Vec<Node>, ImportError> {
        while self.stack.len() > 1 {
            self.close_implicit();
            self.pop_frame();
        }
        if let Some(e) = self.exceeded.take() {
            return Err(e);
        }
        Ok(self
            .stack
            .pop()
            .map(|root| root.element.children)
            .unwrap_or_default())
    }
}

fn children_of(node: &Node) -> usize {
    match node {
        Node::Element(e) => e.children.len(),
        Node::Text(_) => 0,
    }
}

fn plain(text: &str, marks: Vec<Mark>) -> Node {
    Node::Text(TextNode {
        text: text.to_owned(),
        marks,
    })
}

/// The lowercase name of a simple HTML tag and whether it closes (`</u>` → `("u", true)`),
/// attributes ignored.
fn parse_tag(tag: &str) -> Option<(String, bool)> {
    let inner = tag.strip_prefix('<')?.strip_suffix('>')?;
    let (closing, inner) = match inner.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, inner),
    };
    let name: String = inner
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!name.is_empty()).then(|| (name.to_ascii_lowercase(), closing))
}

/// An HTML block keeps its text as a paragraph (lines as hard breaks); comments go.
fn html_block(raw: &str) -> Vec<Node> {
    let mut rest = raw.trim();
    while let Some(start) = rest.strip_prefix("<!--") {
        match start.find("-->") {
            Some(end) => rest = start[end + 3..].trim_start(),
            None => break,
        }
    }
    if rest.is_empty() {
        return Vec::new();
    }
    let mut p = Element::new(node::PARAGRAPH);
    for (i, line) in rest.lines().enumerate() {
        if i > 0 {
            p.children
                .push(Node::Element(Element::new(node::HARD_BREAK)));
        }
        if !line.is_empty() {
            p.children.push(plain(line, Vec::new()));
        }
    }
    vec![Node::Element(p)]
}

/// An ordered list, or bullet items split into runs of task items (`taskList`) and plain
/// items (`bulletList`): TipTap has no list mixing both.
fn finish_list(items: Vec<Node>, start: Option<u64>) -> Vec<Node> {
    if let Some(start) = start {
        let mut list = Element::with_attrs(
            node::ORDERED_LIST,
            Attrs::from([(attr::START.to_owned(), Any::from(start as i64))]),
        );
        list.children = items;
        return vec![Node::Element(list)];
    }
    let mut lists: Vec<Element> = Vec::new();
    for item in items {
        let is_task = matches!(&item, Node::Element(e) if e.is(node::TASK_ITEM));
        let name = if is_task {
            node::TASK_LIST
        } else {
            node::BULLET_LIST
        };
        match lists.last_mut() {
            Some(list) if list.is(name) => list.children.push(item),
            _ => {
                let mut list = Element::new(name);
                list.children.push(item);
                lists.push(list);
            }
        }
    }
    lists.into_iter().map(Node::Element).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_nodes: usize, max_table_rows: usize) -> ImportLimits {
        ImportLimits {
            max_nodes,
            max_table_rows,
        }
    }

    fn table(rows: usize) -> String {
        let mut md = String::from("| a | b |\n|---|---|\n");
        for i in 1..rows {
            md.push_str(&format!("| {i} | x |\n"));
        }
        md
    }

    #[test]
    fn tables_are_cut_at_the_row_limit() {
        assert!(import(&table(10), &limits(1000, 10)).is_ok());
        let err = import(&table(11), &limits(1000, 10)).expect_err("11 rows");
        assert!(matches!(err, ImportError::TooManyRows { max: 10 }), "{err}");
    }

    #[test]
    fn documents_are_cut_at_the_node_limit() {
        // Each item is a listItem, a paragraph and a text run; plus the list.
        let list = |n: usize| "- x\n".repeat(n);
        assert!(import(&list(33), &limits(100, 10)).is_ok());
        let err = import(&list(34), &limits(100, 10)).expect_err("103 nodes");
        assert!(
            matches!(err, ImportError::TooManyNodes { max: 100 }),
            "{err}"
        );
    }

    #[test]
    fn text_split_by_the_parser_counts_as_one_run() {
        // Entities and escapes split the parser's text events; they make one run.
        let md = "a &amp; b \\* c &lt; d\n";
        let nodes = import(md, &limits(2, 10)).expect("a paragraph and its text");
        assert_eq!(nodes.len(), 1);
    }

    #[test]
    fn markup_heavy_input_is_refused_before_parsing() {
        let md = "*a".repeat(MARKUP_PER_NODE * 10 + 1);
        let err = import(&md, &limits(10, 10)).expect_err("too much markup");
        assert!(
            matches!(err, ImportError::TooMuchMarkup { max: 80 }),
            "{err}"
        );
        // The same text without markup is one paragraph.
        assert!(import(&"a".repeat(1000), &limits(10, 10)).is_ok());
    }

    #[test]
    fn inline_spans_nest_no_deeper_than_blocks() {
        let nested = |n: usize| format!("{}x{}\n", "*a ".repeat(n), " b*".repeat(n));
        assert!(import(&nested(20), &ImportLimits::default()).is_ok());
        let err = import(&nested(MAX_DEPTH + 5), &ImportLimits::default()).expect_err("deep");
        assert!(matches!(err, ImportError::TooDeep { .. }), "{err}");
    }
}
