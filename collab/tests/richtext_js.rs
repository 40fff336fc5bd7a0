//! Cross-checks `dure_collab::richtext` against the real JS stack: TipTap 3's schema
//! (`getSchema` over the app's extensions) and y-prosemirror / @tiptap/y-tiptap, driven
//! through `tests/richtext-js/check.mjs` (see its header for the requests).
//!
//! - Markdown imported in Rust must give, in Yjs, exactly the structure y-prosemirror writes
//!   for the expected ProseMirror document, pass the schema's `check()`, and load in the
//!   editor's binding without anything dropped.
//! - A document written by y-prosemirror must export from Rust to the expected Markdown,
//!   HTML and text.
//!
//! Needs node and `tests/richtext-js/node_modules` (`infra/install-test-deps.sh rtjs`); the
//! tests fail, with that hint, when either is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod richtext_fixture;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use dure_collab::richtext;
use richtext_fixture::{ALL_HTML, ALL_MARKDOWN, ALL_TEXT};
use serde_json::{Value, json};

/// Environment variable naming the node binary to use instead of `node` from `PATH` (the
/// same one the black-box JS tests read).
const NODE_ENV: &str = "DURE_NODE";

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/richtext-js")
}

/// Runs one request through `check.mjs` and returns its answer.
fn js(request: &Value) -> Value {
    let dir = js_dir();
    let hint = "run `infra/install-test-deps.sh node rtjs` (as root, from the repository root)";
    for package in ["@tiptap/core", "y-prosemirror", "@tiptap/y-tiptap", "yjs"] {
        let path = dir.join("node_modules").join(package).join("package.json");
        assert!(
            path.is_file(),
            "{} is missing: the rich-text cross-check needs tests/richtext-js/node_modules; {hint}",
            path.display()
        );
    }
    let node = std::env::var(NODE_ENV).unwrap_or_else(|_| "node".to_owned());
    let mut child = Command::new(&node)
        .arg("check.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{node}` ({e}): {hint}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    drop(stdin);
    let output = child.wait_with_output().expect("wait for node");
    assert!(
        output.status.success(),
        "check.mjs refused {}:\n{}",
        request["op"],
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("check.mjs answers JSON")
}

fn encode_in_js(doc: &Value) -> (Vec<u8>, Value) {
    let answer = js(&json!({"op": "encode", "doc": doc}));
    let update = answer["update"]
        .as_array()
        .expect("update bytes")
        .iter()
        .map(|b| {
            b.as_u64()
                .and_then(|b| u8::try_from(b).ok())
                .expect("a byte")
        })
        .collect();
    (update, answer["yjs"].clone())
}

/// JSON with sorted keys on separate lines, so that a failed comparison shows a usable diff
/// (and key order, which may follow insertion order, does not count).
fn pretty(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(value)).expect("JSON")
}

fn normalize_in_js(doc: &Value) -> Value {
    js(&json!({"op": "normalize", "doc": doc}))["normalized"].clone()
}

// --- ProseMirror JSON builders. ---------------------------------------------------------

fn node(kind: &str, attrs: Value, content: Vec<Value>) -> Value {
    let mut n = json!({ "type": kind });
    if attrs != Value::Null {
        n["attrs"] = attrs;
    }
    if !content.is_empty() {
        n["content"] = Value::Array(content);
    }
    n
}

fn block(kind: &str, content: Vec<Value>) -> Value {
    node(kind, Value::Null, content)
}

fn p(content: Vec<Value>) -> Value {
    block("paragraph", content)
}

fn heading(level: u8, content: Vec<Value>) -> Value {
    node("heading", json!({ "level": level }), content)
}

fn t(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

fn tm(text: &str, marks: &[Value]) -> Value {
    json!({ "type": "text", "text": text, "marks": marks })
}

fn m(kind: &str) -> Value {
    json!({ "type": kind })
}

fn bold() -> Value {
    m("bold")
}

fn italic() -> Value {
    m("italic")
}

fn link(href: &str, title: Option<&str>) -> Value {
    json!({ "type": "link", "attrs": { "href": href, "title": title } })
}

fn li(content: Vec<Value>) -> Value {
    block("listItem", content)
}

fn task(checked: bool, content: Vec<Value>) -> Value {
    node("taskItem", json!({ "checked": checked }), content)
}

fn cell(kind: &str, align: &str, content: Vec<Value>) -> Value {
    node(kind, json!({ "align": align }), vec![p(content)])
}

/// The ProseMirror document TipTap holds for [`ALL_MARKDOWN`], written out by hand.
fn all_document() -> Value {
    block(
        "doc",
        vec![
            heading(1, vec![t("Dure rich text")]),
            p(vec![
                t("Plain, "),
                tm("bold", &[bold()]),
                t(", "),
                tm("italic", &[italic()]),
                t(", "),
                tm("underline", &[m("underline")]),
                t(", "),
                tm("strike", &[m("strike")]),
                t(", "),
                tm("code", &[m("code")]),
                t(", "),
                tm(
                    "a link",
                    &[link("https://example.org/a_(b)?q=1&r=2", Some("The title"))],
                ),
                t(" and "),
                tm("bold italic", &[bold(), italic()]),
                t("."),
                block("hardBreak", vec![]),
                t("After a hard break: "),
                tm("bold ", &[bold()]),
                tm("and italic", &[bold(), italic()]),
                tm(" inside", &[bold()]),
                t(", "),
                tm("bold link", &[link("https://example.org/", None), bold()]),
                t(" and "),
                tm("a`b", &[m("code")]),
                t("."),
            ]),
            p(vec![
                t("한국어 문단: "),
                tm("굵게", &[bold()]),
                t("와 "),
                tm("기울임", &[italic()]),
                t(", 그리고 "),
                tm("코드", &[m("code")]),
                t(" 입니다."),
            ]),
            p(vec![t(
                "Escapes: * _ ` <b> [x] ~ a # b & &amp; AT&T snake_case a\\b",
            )]),
            p(vec![t("# not a heading")]),
            p(vec![t("1. not a list")]),
            p(vec![t("- not a bullet")]),
            p(vec![t("> not a quote")]),
            heading(2, vec![t("Lists")]),
            block(
                "bulletList",
                vec![
                    li(vec![p(vec![t("one")])]),
                    li(vec![
                        p(vec![t("two")]),
                        block(
                            "bulletList",
                            vec![li(vec![
                                p(vec![t("nested")]),
                                block("bulletList", vec![li(vec![p(vec![t("deeper")])])]),
                            ])],
                        ),
                        node(
                            "orderedList",
                            json!({ "start": 1 }),
                            vec![li(vec![p(vec![t("ordered inside")])])],
                        ),
                    ]),
                    li(vec![p(vec![t("three")])]),
                ],
            ),
            block(
                "taskList",
                vec![
                    task(false, vec![p(vec![t("todo")])]),
                    task(
                        true,
                        vec![
                            p(vec![t("done")]),
                            block(
                                "taskList",
                                vec![task(false, vec![p(vec![t("nested task")])])],
                            ),
                        ],
                    ),
                ],
            ),
            node(
                "orderedList",
                json!({ "start": 3 }),
                vec![li(vec![p(vec![t("three")])]), li(vec![p(vec![t("four")])])],
            ),
            node(
                "orderedList",
                json!({ "start": 1 }),
                vec![li(vec![p(vec![t("restarted list")])])],
            ),
            block(
                "bulletList",
                vec![
                    li(vec![
                        p(vec![t("first paragraph")]),
                        p(vec![t("second paragraph")]),
                    ]),
                    li(vec![p(vec![t("second item")])]),
                ],
            ),
            block(
                "blockquote",
                vec![
                    p(vec![t("Quoted "), tm("text", &[bold()])]),
                    block("bulletList", vec![li(vec![p(vec![t("item in quote")])])]),
                    block("blockquote", vec![p(vec![t("nested quote")])]),
                ],
            ),
            node(
                "codeBlock",
                json!({ "language": "rust" }),
                vec![t("let fence = \"```\";")],
            ),
            block("codeBlock", vec![t("a\n\nb")]),
            block("horizontalRule", vec![]),
            block(
                "table",
                vec![
                    block(
                        "tableRow",
                        vec![
                            cell("tableHeader", "left", vec![t("Name")]),
                            cell("tableHeader", "center", vec![t("Value")]),
                            cell("tableHeader", "right", vec![t("Note")]),
                        ],
                    ),
                    block(
                        "tableRow",
                        vec![
                            cell("tableCell", "left", vec![t("a | b")]),
                            cell("tableCell", "center", vec![tm("c|d", &[m("code")])]),
                            cell("tableCell", "right", vec![tm("e", &[bold()])]),
                        ],
                    ),
                    block(
                        "tableRow",
                        vec![
                            cell("tableCell", "left", vec![t("한국어")]),
                            cell("tableCell", "center", vec![]),
                            cell("tableCell", "right", vec![tm("u", &[m("underline")])]),
                        ],
                    ),
                ],
            ),
            node(
                "image",
                json!({
                    "src": "https://example.org/image.png",
                    "alt": "Alt text",
                    "title": "Image title",
                }),
                vec![],
            ),
        ],
    )
}

#[test]
fn markdown_import_writes_what_tiptap_writes() {
    let update = richtext::from_markdown(ALL_MARKDOWN).expect("import");
    // Decoding checks the schema and loads the fragment as the editor does.
    let decoded = js(&json!({"op": "decode", "update": update}));
    let expected = all_document();
    assert_eq!(
        pretty(&decoded["normalized"]),
        pretty(&normalize_in_js(&expected)),
        "the imported document differs from the expected ProseMirror document"
    );
    // Not only the same document: the same Yjs structure, attribute for attribute.
    let (_, written_by_js) = encode_in_js(&expected);
    assert_eq!(pretty(&decoded["yjs"]), pretty(&written_by_js));
}

#[test]
fn a_tiptap_document_exports_as_expected() {
    let (update, _) = encode_in_js(&all_document());
    let doc = richtext::doc_from_update(&update).expect("the JS update applies");
    assert_eq!(richtext::to_markdown(&doc), ALL_MARKDOWN);
    assert_eq!(richtext::to_html(&doc), ALL_HTML);
    assert_eq!(richtext::to_text(&doc), ALL_TEXT);
}

/// What the editor can hold but Markdown import never writes: spans, column widths, image
/// sizes, heading levels up to 6, list types, custom link attributes, empty paragraphs,
/// trailing hard breaks.
#[test]
fn editor_only_attributes_export() {
    let doc = block(
        "doc",
        vec![
            p(vec![]),
            heading(6, vec![t("Six"), block("hardBreak", vec![]), t("lines")]),
            p(vec![t("trailing break"), block("hardBreak", vec![])]),
            node(
                "orderedList",
                json!({ "start": 2, "type": "a" }),
                vec![li(vec![p(vec![])])],
            ),
            p(vec![tm(
                "custom link",
                &[json!({ "type": "link", "attrs": {
                    "href": "https://e.example/?a=\"1\"", "target": null, "rel": "noopener",
                    "class": "c", "title": null } })],
            )]),
            block(
                "table",
                vec![
                    block(
                        "tableRow",
                        vec![
                            node(
                                "tableCell",
                                json!({ "colspan": 2, "colwidth": [100, 50] }),
                                vec![p(vec![t("wide")]), p(vec![t("two paragraphs")])],
                            ),
                            node(
                                "tableCell",
                                json!({ "rowspan": 2 }),
                                vec![p(vec![t("tall")])],
                            ),
                        ],
                    ),
                    block(
                        "tableRow",
                        vec![block(
                            "tableCell",
                            vec![block("bulletList", vec![li(vec![p(vec![t("list")])])])],
                        )],
                    ),
                ],
            ),
            node(
                "image",
                json!({ "src": "a b.png", "width": 640, "height": "480" }),
                vec![],
            ),
        ],
    );
    let (update, _) = encode_in_js(&doc);
    let doc = richtext::doc_from_update(&update).expect("the JS update applies");
    let markdown = richtext::to_markdown(&doc);
    assert_eq!(
        markdown,
        "\
###### Six<br>lines

trailing break

2. 

[custom link](https://e.example/?a=\"1\")

| wide<br>two paragraphs | | tall |
| --- | --- | --- |
| list |

![](<a b.png>)
"
        .replace("2. \n", "2.\n")
    );
    assert_eq!(
        richtext::to_html(&doc),
        "<p></p>\n<h6>Six<br>lines</h6>\n<p>trailing break<br></p>\n\
         <ol start=\"2\"><li><p></p></li></ol>\n\
         <p><a href=\"https://e.example/?a=&quot;1&quot;\" rel=\"noopener\">custom link</a></p>\n\
         <table><tbody><tr><td colspan=\"2\"><p>wide</p><p>two paragraphs</p></td>\
         <td rowspan=\"2\"><p>tall</p></td></tr><tr><td><ul><li><p>list</p></li></ul></td></tr></tbody></table>\n\
         <img src=\"a b.png\" width=\"640\" height=\"480\">"
    );
    // What the Markdown reads back as is again a valid TipTap document.
    let reimported = richtext::from_markdown(&markdown).expect("import");
    js(&json!({"op": "decode", "update": reimported}));
}
