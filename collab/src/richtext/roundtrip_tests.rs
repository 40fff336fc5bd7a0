//! Randomized round trips through Markdown: generated documents full of characters Markdown
//! treats specially must come back from export + import as the same document.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::Any;

use super::inline::{Piece, flatten, normalize_for_markdown};
use super::schema::{attr, cell_attrs, link_attrs, mark, node};
use super::tree::{Attrs, Element, Mark, Node, TextNode};
use super::{export_html, export_markdown, import_markdown};

/// Characters Markdown gives a meaning to somewhere, and some it does not.
const ALPHABET: &[&str] = &[
    "a",
    "b",
    "Z",
    "가",
    "힣",
    "*",
    "_",
    "`",
    "[",
    "]",
    "<",
    ">",
    "&",
    "#",
    "|",
    "\\",
    "~",
    "!",
    "-",
    "+",
    "=",
    "1",
    "2.",
    "3)",
    ".",
    "(",
    ")",
    "\"",
    "'",
    ":",
    "{",
    "^",
    "$",
    "%",
    "@",
    "amp;",
    "&#35;",
    "http://x.y",
    "é",
];

fn word(rng: &mut StdRng) -> String {
    (0..rng.random_range(1..4))
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

/// Words joined by spaces (or tabs), optionally with whitespace at the edges.
fn phrase(rng: &mut StdRng, edges: bool) -> String {
    let mut s = String::new();
    if edges && rng.random_bool(0.2) {
        s.push_str(if rng.random_bool(0.5) { " " } else { "  " });
    }
    for i in 0..rng.random_range(1..4) {
        if i > 0 {
            s.push(if rng.random_bool(0.9) { ' ' } else { '\t' });
        }
        s.push_str(&word(rng));
    }
    if edges && rng.random_bool(0.2) {
        s.push(' ');
    }
    s
}

fn random_marks(rng: &mut StdRng) -> Vec<Mark> {
    if rng.random_bool(0.15) {
        return vec![Mark::new(mark::CODE)];
    }
    let mut marks = Vec::new();
    for name in [mark::BOLD, mark::ITALIC, mark::STRIKE, mark::UNDERLINE] {
        if rng.random_bool(0.3) {
            marks.push(Mark::new(name));
        }
    }
    if rng.random_bool(0.15) {
        let hrefs = [
            "https://a.example/x_(y)",
            "rel/a b",
            "https://a.example/?q=&amp;",
            "",
        ];
        let title = rng.random_bool(0.5).then(|| phrase(rng, false));
        marks.push(Mark {
            name: mark::LINK.to_owned(),
            attrs: link_attrs(hrefs[rng.random_range(0..hrefs.len())], title.as_deref()),
        });
    }
    marks
}

/// Inline content: runs with random marks and hard breaks between them. With `edges`, runs
/// may start or end with whitespace (the inline test); without, the content is what a block
/// round trip keeps exactly.
fn inline(rng: &mut StdRng, edges: bool) -> Vec<Node> {
    let mut out = Vec::new();
    let runs = rng.random_range(1..6);
    for i in 0..runs {
        if i > 0 && rng.random_bool(0.15) {
            out.push(Node::Element(Element::new(node::HARD_BREAK)));
        }
        let marks = random_marks(rng);
        let is_code = marks.iter().any(|m| m.is(mark::CODE));
        let mut text = phrase(rng, edges);
        if !edges && !is_code && i > 0 {
            // Without edges, whitespace separates runs outside their marks.
            out.push(Node::Text(TextNode {
                text: " ".to_owned(),
                marks: Vec::new(),
            }));
        }
        if edges && is_code && rng.random_bool(0.2) {
            text = format!("`{text}``");
        }
        out.push(Node::Text(TextNode { text, marks }));
    }
    out
}

fn pieces_for_markdown(children: &[Node]) -> Vec<Piece> {
    let mut pieces = flatten(children);
    normalize_for_markdown(&mut pieces);
    pieces
}

/// Finds the textblock's content in what the import made of it.
type Unwrap = fn(&[Node]) -> Option<&[Node]>;

/// Export → import of one textblock gives back its content, mark for mark, in a paragraph,
/// a heading and a table cell.
#[test]
fn inline_content_survives_markdown() {
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..1500 {
        let children = inline(&mut rng, true);
        let expected = pieces_for_markdown(&children);
        let (wrapped, unwrap): (Node, Unwrap) = match round % 3 {
            0 => (
                Node::Element(Element {
                    name: node::PARAGRAPH.to_owned(),
                    attrs: Attrs::new(),
                    children: children.clone(),
                }),
                |nodes| match nodes {
                    [Node::Element(p)] if p.is(node::PARAGRAPH) => Some(&p.children),
                    [] => Some(&[]),
                    _ => None,
                },
            ),
            1 => (
                Node::Element(Element {
                    name: node::HEADING.to_owned(),
                    attrs: Attrs::from([(attr::LEVEL.to_owned(), Any::from(2_i64))]),
                    children: children.clone(),
                }),
                |nodes| match nodes {
                    [Node::Element(h)] if h.is(node::HEADING) => Some(&h.children),
                    _ => None,
                },
            ),
            _ => (
                Node::Element(table(vec![vec![children.clone()]])),
                |nodes| {
                    let [Node::Element(table)] = nodes else {
                        return None;
                    };
                    let row = table.elements().next()?;
                    let cell = row.elements().next()?;
                    let paragraph = cell.elements().next()?;
                    Some(&paragraph.children)
                },
            ),
        };
        let markdown = export_markdown::export(std::slice::from_ref(&wrapped));
        let parsed =
            import_markdown::import(&markdown, &super::ImportLimits::default()).expect("import");
        let got = unwrap(&parsed).map(pieces_for_markdown);
        assert_eq!(
            got.as_ref(),
            Some(&expected),
            "round {round}: {children:?}\nexported as {markdown:?}"
        );
    }
}

fn element(name: &str, attrs: Attrs, children: Vec<Node>) -> Node {
    Node::Element(Element {
        name: name.to_owned(),
        attrs,
        children,
    })
}

fn paragraph(rng: &mut StdRng) -> Node {
    element(node::PARAGRAPH, Attrs::new(), inline(rng, false))
}

/// A table with a header row; `rows[r][c]` is a cell's inline content.
fn table(rows: Vec<Vec<Vec<Node>>>) -> Element {
    let mut table = Element::new(node::TABLE);
    for (r, row) in rows.into_iter().enumerate() {
        let cells = row
            .into_iter()
            .map(|content| {
                let kind = if r == 0 {
                    node::TABLE_HEADER
                } else {
                    node::TABLE_CELL
                };
                element(
                    kind,
                    cell_attrs(None),
                    vec![element(node::PARAGRAPH, Attrs::new(), content)],
                )
            })
            .collect();
        table
            .children
            .push(element(node::TABLE_ROW, Attrs::new(), cells));
    }
    table
}

fn blocks(rng: &mut StdRng, depth: usize) -> Vec<Node> {
    (0..rng.random_range(1..4))
        .map(|_| random_block(rng, depth))
        .collect()
}

fn list_items(rng: &mut StdRng, depth: usize, item: &str) -> Vec<Node> {
    (0..rng.random_range(1..4))
        .map(|_| {
            let mut children = vec![paragraph(rng)];
            if depth < 3 && rng.random_bool(0.4) {
                children.extend(blocks(rng, depth + 1));
            }
            let attrs = if item == node::TASK_ITEM {
                Attrs::from([(attr::CHECKED.to_owned(), Any::from(rng.random_bool(0.5)))])
            } else {
                Attrs::new()
            };
            element(item, attrs, children)
        })
        .collect()
}

fn random_block(rng: &mut StdRng, depth: usize) -> Node {
    let kind = if depth >= 3 {
        rng.random_range(0..3)
    } else {
        rng.random_range(0..11)
    };
    match kind {
        0 => paragraph(rng),
        1 => element(
            node::HEADING,
            Attrs::from([(
                attr::LEVEL.to_owned(),
                Any::from(rng.random_range(1..7_i64)),
            )]),
            inline(rng, false),
        ),
        2 => {
            let lines: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| {
                    if rng.random_bool(0.2) {
                        String::new()
                    } else {
                        phrase(rng, true)
                    }
                })
                .collect();
            let code = lines.join("\n");
            let mut attrs = Attrs::new();
            if rng.random_bool(0.5) {
                let languages = ["rust", "c++", "a`b", "x~y"];
                let language = languages[rng.random_range(0..languages.len())];
                attrs.insert(attr::LANGUAGE.to_owned(), Any::from(language));
            }
            let children = if code.is_empty() {
                Vec::new()
            } else {
                vec![Node::Text(TextNode {
                    text: code,
                    marks: Vec::new(),
                })]
            };
            element(node::CODE_BLOCK, attrs, children)
        }
        3 => element(node::BLOCKQUOTE, Attrs::new(), blocks(rng, depth + 1)),
        4 => element(
            node::BULLET_LIST,
            Attrs::new(),
            list_items(rng, depth, node::LIST_ITEM),
        ),
        5 => element(
            node::ORDERED_LIST,
            Attrs::from([(
                attr::START.to_owned(),
                Any::from(rng.random_range(0..12_i64)),
            )]),
            list_items(rng, depth, node::LIST_ITEM),
        ),
        6 => element(
            node::TASK_LIST,
            Attrs::new(),
            list_items(rng, depth, node::TASK_ITEM),
        ),
        7 => element(node::HORIZONTAL_RULE, Attrs::new(), Vec::new()),
        8 => {
            let width = rng.random_range(1..4);
            let aligns: Vec<Option<&str>> = (0..width)
                .map(|_| {
                    [None, Some("left"), Some("center"), Some("right")][rng.random_range(0..4)]
                })
                .collect();
            let mut rows = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                rows.push((0..width).map(|_| inline(rng, false)).collect());
            }
            let mut t = table(rows);
            for row in t.children.iter_mut() {
                let Node::Element(row) = row else { continue };
                for (c, cell) in row.children.iter_mut().enumerate() {
                    if let Node::Element(cell) = cell {
                        cell.attrs = cell_attrs(aligns[c]);
                    }
                }
            }
            Node::Element(t)
        }
        9 => {
            let mut attrs = Attrs::from([(
                attr::SRC.to_owned(),
                Any::from(["a.png", "a b (1).png", "<x>.png"][rng.random_range(0..3)]),
            )]);
            attrs.insert(attr::ALT.to_owned(), Any::from(word(rng)));
            if rng.random_bool(0.5) {
                attrs.insert(attr::TITLE.to_owned(), Any::from(phrase(rng, false)));
            }
            element(node::IMAGE, attrs, Vec::new())
        }
        _ => paragraph(rng),
    }
}

/// Documents of every block kind, nested, export to Markdown that imports as the same
/// document (compared through the HTML export, which shows every node, attribute and mark),
/// and exporting again gives the same Markdown.
#[test]
fn documents_survive_markdown() {
    let mut rng = StdRng::seed_from_u64(11);
    for round in 0..400 {
        let doc = blocks(&mut rng, 0);
        let markdown = export_markdown::export(&doc);
        let back =
            import_markdown::import(&markdown, &super::ImportLimits::default()).expect("import");
        assert_eq!(
            export_html::export(&back),
            export_html::export(&doc),
            "round {round}: exported as\n{markdown}"
        );
        assert_eq!(export_markdown::export(&back), markdown, "round {round}");
    }
}
