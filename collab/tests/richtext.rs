//! Rich-text import and export (`dure_collab::richtext`): Markdown round trips, escaping,
//! the Yjs structure written, and documents built by hand the way y-prosemirror stores them.
//! `richtext_js.rs` checks the same against the real TipTap + y-prosemirror stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod richtext_fixture;

use std::collections::HashMap;
use std::sync::Arc;

use dure_collab::richtext::{self, ImportError};
use richtext_fixture::{ALL_HTML, ALL_MARKDOWN, ALL_TEXT};
use yrs::types::text::YChange;
use yrs::types::{Attrs, Delta};
use yrs::{
    Any, Doc, GetString, ReadTxn, Text, Transact, TransactionMut, Xml, XmlElementPrelim,
    XmlElementRef, XmlFragment, XmlFragmentRef, XmlOut, XmlTextPrelim,
};

fn doc_of(markdown: &str) -> Doc {
    let update = richtext::from_markdown(markdown).expect("import");
    richtext::doc_from_update(&update).expect("apply")
}

fn markdown_round_trip(markdown: &str) -> String {
    richtext::to_markdown(&doc_of(markdown))
}

// --- Building documents by hand, as y-prosemirror would store them. -----------------------

/// A mark as y-prosemirror stores it: the formatting key and the mark's attrs object.
fn mark(name: &str, attrs: &[(&str, Any)]) -> (Arc<str>, Any) {
    let map: HashMap<String, Any> = attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    (Arc::from(name), Any::Map(Arc::new(map)))
}

fn bold() -> (Arc<str>, Any) {
    mark("bold", &[])
}

type Run<'a> = (&'a str, Vec<(Arc<str>, Any)>);

fn build(f: impl FnOnce(&mut TransactionMut, &XmlFragmentRef)) -> Doc {
    let doc = Doc::new();
    let fragment = doc.get_or_insert_xml_fragment("default");
    {
        let mut txn = doc.transact_mut();
        f(&mut txn, &fragment);
    }
    doc
}

fn element<P: XmlFragment>(
    txn: &mut TransactionMut,
    parent: &P,
    name: &str,
    attrs: &[(&str, Any)],
) -> XmlElementRef {
    let el = parent.push_back(txn, XmlElementPrelim::empty(name));
    for (key, value) in attrs {
        el.insert_attribute(txn, *key, value.clone());
    }
    el
}

/// One Y.XmlText holding the runs, as `createTypeFromTextNodes` writes consecutive text nodes.
fn text<P: XmlFragment>(txn: &mut TransactionMut, parent: &P, runs: &[Run<'_>]) {
    let t = parent.push_back(txn, XmlTextPrelim::new(""));
    let delta: Vec<Delta<Any>> = runs
        .iter()
        .map(|(s, marks)| {
            let attrs: Attrs = marks.iter().cloned().collect();
            Delta::Inserted(Any::from(*s), Some(Box::new(attrs)))
        })
        .collect();
    t.apply_delta(txn, delta);
}

fn paragraph<P: XmlFragment>(txn: &mut TransactionMut, parent: &P, runs: &[Run<'_>]) {
    let p = element(txn, parent, "paragraph", &[]);
    text(txn, &p, runs);
}

fn plain(s: &str) -> Run<'_> {
    (s, Vec::new())
}

// --- Every node and mark. -----------------------------------------------------------------

#[test]
fn every_node_and_mark_round_trips() {
    let doc = doc_of(ALL_MARKDOWN);
    let markdown = richtext::to_markdown(&doc);
    assert_eq!(markdown, ALL_MARKDOWN);
    assert_eq!(richtext::to_html(&doc), ALL_HTML);
    assert_eq!(richtext::to_text(&doc), ALL_TEXT);
    // And again from what was exported: nothing drifts.
    assert_eq!(markdown_round_trip(&markdown), ALL_MARKDOWN);
}

#[test]
fn the_yjs_structure_is_y_prosemirrors() {
    let doc = doc_of("## Hi **there**\n\na\\\nb\n\n| x |\n| :-: |\n| y |\n\n```\nz\n```\n");
    let txn = doc.transact();
    let fragment = txn.get_xml_fragment("default").expect("fragment");
    let children: Vec<XmlOut> = fragment.children(&txn).collect();
    assert_eq!(children.len(), 4);

    // Element named after the node type, attrs with their JSON types.
    let XmlOut::Element(heading) = &children[0] else {
        panic!("heading is not an element")
    };
    assert_eq!(heading.tag().as_ref(), "heading");
    assert_eq!(
        heading.get_attribute(&txn, "level"),
        Some(yrs::Out::Any(Any::from(2_i64)))
    );
    // Text runs in one Y.XmlText; a mark is keyed by its name, valued by its attrs object.
    let XmlOut::Text(t) = heading.get(&txn, 0).expect("heading text") else {
        panic!("heading content is not text")
    };
    let diff = t.diff(&txn, YChange::identity);
    assert_eq!(diff.len(), 2);
    assert_eq!(diff[0].attributes, None);
    let attrs = diff[1]
        .attributes
        .as_deref()
        .expect("bold run has attributes");
    assert_eq!(attrs.get("bold"), Some(&Any::Map(Arc::new(HashMap::new()))));

    // A hard break is an element between two texts.
    let XmlOut::Element(p) = &children[1] else {
        panic!("paragraph is not an element")
    };
    let kinds: Vec<String> = p
        .children(&txn)
        .map(|c| match c {
            XmlOut::Element(e) => e.tag().to_string(),
            XmlOut::Text(t) => format!("text:{}", t.get_string(&txn)),
            XmlOut::Fragment(_) => "fragment".to_owned(),
        })
        .collect();
    assert_eq!(kinds, ["text:a", "hardBreak", "text:b"]);

    // Default attrs are stored; null ones (colwidth) are not.
    let XmlOut::Element(table) = &children[2] else {
        panic!("table is not an element")
    };
    let Some(XmlOut::Element(row)) = table.get(&txn, 0) else {
        panic!("no row")
    };
    let Some(XmlOut::Element(header)) = row.get(&txn, 0) else {
        panic!("no header cell")
    };
    assert_eq!(header.tag().as_ref(), "tableHeader");
    let mut attrs: Vec<(String, yrs::Out)> = header
        .attributes(&txn)
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        attrs,
        vec![
            ("align".to_owned(), yrs::Out::Any(Any::from("center"))),
            ("colspan".to_owned(), yrs::Out::Any(Any::from(1_i64))),
            ("rowspan".to_owned(), yrs::Out::Any(Any::from(1_i64))),
        ]
    );

    // A code block without a language has no language attribute (it is null).
    let XmlOut::Element(code) = &children[3] else {
        panic!("code block is not an element")
    };
    assert_eq!(code.tag().as_ref(), "codeBlock");
    assert_eq!(code.attributes(&txn).count(), 0);
}

#[test]
fn links_store_tiptaps_default_attrs() {
    let doc = doc_of("[x](https://a.example/ \"T\")\n");
    let txn = doc.transact();
    let fragment = txn.get_xml_fragment("default").expect("fragment");
    let Some(XmlOut::Element(p)) = fragment.get(&txn, 0) else {
        panic!("no paragraph")
    };
    let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
        panic!("no text")
    };
    let diff = t.diff(&txn, YChange::identity);
    let attrs = diff[0].attributes.as_deref().expect("link attributes");
    let expected: HashMap<String, Any> = [
        ("href", Any::from("https://a.example/")),
        ("target", Any::from("_blank")),
        ("rel", Any::from("noopener noreferrer nofollow")),
        ("class", Any::Null),
        ("title", Any::from("T")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(attrs.get("link"), Some(&Any::Map(Arc::new(expected))));
}

// --- Escaping. ----------------------------------------------------------------------------

#[test]
fn special_characters_are_escaped_and_read_back() {
    let lines = [
        "*not bold* _not italic_ **x** __y__ ~~z~~ `c` [a](b) ![i](j) <b>x</b> a|b",
        "# not a heading",
        "## not either #",
        "- not a list",
        "+ nor this",
        "1. not ordered",
        "2) nor this",
        "> not a quote",
        "    not code",
        "--- not a rule",
        "=== nor a setext underline",
        "&amp; &#35; &copy; stay literal, as does AT&T and a \\ backslash",
        "snake_case_name and _leading and trailing_",
        "한국어: *별표*와 _밑줄_ 그리고 `백틱`",
    ];
    let doc = build(|txn, f| {
        for line in lines {
            paragraph(txn, f, &[plain(line)]);
        }
    });
    let markdown = richtext::to_markdown(&doc);
    let expected = [
        r"\*not bold\* \_not italic\_ \*\*x\*\* \_\_y\_\_ \~\~z\~\~ \`c\` \[a\](b) !\[i\](j) \<b>x\</b> a|b",
        r"\# not a heading",
        r"\## not either #",
        r"\- not a list",
        r"\+ nor this",
        r"1\. not ordered",
        r"2\) nor this",
        r"\> not a quote",
        r"&#32;   not code",
        r"\--- not a rule",
        r"\=== nor a setext underline",
        r"\&amp; \&#35; \&copy; stay literal, as does AT&T and a \\ backslash",
        r"snake_case_name and \_leading and trailing\_",
        r"한국어: \*별표\*와 \_밑줄\_ 그리고 \`백틱\`",
    ]
    .join("\n\n")
        + "\n";
    assert_eq!(markdown, expected);
    // Read back, the text is the original text, character for character.
    assert_eq!(
        richtext::to_text(&doc_of(&markdown)),
        lines.join("\n\n") + "\n"
    );
}

#[test]
fn table_cells_escape_pipes_everywhere() {
    let doc = build(|txn, f| {
        let table = element(txn, f, "table", &[]);
        for (row_index, cells) in [["a|b", "x"], ["c|d", "y"]].iter().enumerate() {
            let row = element(txn, &table, "tableRow", &[]);
            for (i, content) in cells.iter().enumerate() {
                let name = if row_index == 0 {
                    "tableHeader"
                } else {
                    "tableCell"
                };
                let cell = element(
                    txn,
                    &row,
                    name,
                    &[("colspan", Any::from(1_i64)), ("rowspan", Any::from(1_i64))],
                );
                let marks = if row_index == 1 && i == 0 {
                    vec![mark("code", &[])]
                } else {
                    Vec::new()
                };
                paragraph(txn, &cell, &[(content, marks)]);
            }
        }
    });
    let markdown = richtext::to_markdown(&doc);
    assert_eq!(markdown, "| a\\|b | x |\n| --- | --- |\n| `c\\|d` | y |\n");
    assert_eq!(markdown_round_trip(&markdown), markdown);
    assert_eq!(
        richtext::to_html(&doc_of(&markdown)),
        "<table><tbody><tr><th><p>a|b</p></th><th><p>x</p></th></tr>\
         <tr><td><p><code>c|d</code></p></td><td><p>y</p></td></tr></tbody></table>"
    );
}

#[test]
fn headings_keep_hashes() {
    for (markdown, html) in [
        ("# C#\n", "<h1>C#</h1>"),
        ("# Use \\#\n", "<h1>Use #</h1>"),
        ("### \\#hashtag\n", "<h3>#hashtag</h3>"),
        ("## \\##\n", "<h2>##</h2>"),
    ] {
        let doc = doc_of(markdown);
        assert_eq!(richtext::to_html(&doc), html, "{markdown}");
        assert_eq!(richtext::to_markdown(&doc), markdown);
    }
}

#[test]
fn code_blocks_with_backticks_and_tildes() {
    let markdown = "````\nuse ``` here\n```\n````\n\n~~~a`b\nx\n~~~\n\n```\n```\n";
    let doc = doc_of(markdown);
    assert_eq!(
        richtext::to_html(&doc),
        "<pre><code>use ``` here\n```</code></pre>\n\
         <pre><code class=\"language-a`b\">x</code></pre>\n<pre><code></code></pre>"
    );
    assert_eq!(richtext::to_markdown(&doc), markdown);
    // Code spans pick a fence that the content does not contain.
    let markdown = "Run `` `ls` `` or ``a`b`` or ` `` `.\n";
    assert_eq!(
        richtext::to_html(&doc_of(markdown)),
        "<p>Run <code>`ls`</code> or <code>a`b</code> or <code>``</code>.</p>"
    );
    assert_eq!(markdown_round_trip(markdown), markdown);
}

#[test]
fn nested_lists() {
    // The first list is loose: a list starting at 5 cannot interrupt a paragraph, so item two
    // needs a blank line, and a list is tight or loose as a whole. The task item holds more
    // than a paragraph and lists, so its list is loose too.
    let markdown = "\
1. one

   - bullet
     - [x] task in a bullet list? no: a task list in a bullet item
       1. deep ordered

2. two

   5. starts at five, so it needs a blank line

- [ ] task

  > quote in a task

  ```
  code in a task
  ```
";
    let doc = doc_of(markdown);
    assert_eq!(richtext::to_markdown(&doc), markdown);
    assert_eq!(
        richtext::to_html(&doc),
        "<ol><li><p>one</p><ul><li><p>bullet</p><ul data-type=\"taskList\">\
         <li data-type=\"taskItem\" data-checked=\"true\"><label><input type=\"checkbox\" disabled checked></label>\
         <div><p>task in a bullet list? no: a task list in a bullet item</p><ol><li><p>deep ordered</p></li></ol></div></li>\
         </ul></li></ul></li><li><p>two</p><ol start=\"5\"><li><p>starts at five, so it needs a blank line</p></li></ol></li></ol>\n\
         <ul data-type=\"taskList\"><li data-type=\"taskItem\" data-checked=\"false\"><label><input type=\"checkbox\" disabled></label>\
         <div><p>task</p><blockquote><p>quote in a task</p></blockquote><pre><code>code in a task</code></pre></div></li></ul>"
    );
    assert_eq!(
        richtext::to_text(&doc),
        "\
1. one
   - bullet
     [x] task in a bullet list? no: a task list in a bullet item
         1. deep ordered
2. two
   5. starts at five, so it needs a blank line

[ ] task
    > quote in a task
    code in a task
"
    );
}

#[test]
fn items_starting_with_an_empty_paragraph() {
    let doc = build(|txn, f| {
        let list = element(txn, f, "taskList", &[]);
        let item = element(txn, &list, "taskItem", &[("checked", Any::from(true))]);
        element(txn, &item, "paragraph", &[]);
        let code = element(txn, &item, "codeBlock", &[]);
        text(txn, &code, &[plain("x")]);
        let list = element(
            txn,
            f,
            "orderedList",
            &[("start", Any::from(1_000_000_000_i64))],
        );
        let item = element(txn, &list, "listItem", &[]);
        element(txn, &item, "paragraph", &[]);
    });
    let markdown = richtext::to_markdown(&doc);
    assert_eq!(markdown, "- [x]\n  ```\n  x\n  ```\n\n999999999.\n");
    let html = "<ul data-type=\"taskList\"><li data-type=\"taskItem\" data-checked=\"true\">\
                <label><input type=\"checkbox\" disabled checked></label><div><p></p>\
                <pre><code>x</code></pre></div></li></ul>\n<ol start=\"999999999\"><li><p></p></li></ol>";
    assert_eq!(richtext::to_html(&doc_of(&markdown)), html);
}

#[test]
fn adjacent_lists_stay_apart() {
    let doc = build(|txn, f| {
        for name in [
            "bulletList",
            "bulletList",
            "taskList",
            "orderedList",
            "orderedList",
        ] {
            let list_attrs = match name {
                "orderedList" => vec![("start", Any::from(1_i64))],
                _ => vec![],
            };
            let (item, item_attrs) = match name {
                "taskList" => ("taskItem", vec![("checked", Any::from(false))]),
                _ => ("listItem", vec![]),
            };
            let list = element(txn, f, name, &list_attrs);
            let li = element(txn, &list, item, &item_attrs);
            paragraph(txn, &li, &[plain(name)]);
        }
    });
    let markdown = richtext::to_markdown(&doc);
    assert_eq!(
        markdown,
        "- bulletList\n\n* bulletList\n\n- [ ] taskList\n\n1. orderedList\n\n1) orderedList\n"
    );
    assert_eq!(
        richtext::to_html(&doc_of(&markdown)),
        richtext::to_html(&doc)
    );
}

// --- Marks. -------------------------------------------------------------------------------

#[test]
fn emphasis_markdown_cannot_delimit_falls_back_to_tags() {
    let doc = build(|txn, f| {
        paragraph(
            txn,
            f,
            &[("(a)", vec![bold()]), plain("b "), ("x", vec![bold()])],
        );
    });
    let markdown = richtext::to_markdown(&doc);
    assert_eq!(markdown, "<strong>(a)</strong>b <strong>x</strong>\n");
    assert_eq!(
        richtext::to_html(&doc_of(&markdown)),
        "<p><strong>(a)</strong>b <strong>x</strong></p>"
    );
}

#[test]
fn whitespace_moves_out_of_emphasis() {
    let doc = build(|txn, f| {
        paragraph(
            txn,
            f,
            &[plain("a"), (" bold ", vec![bold()]), plain("b   ")],
        );
    });
    assert_eq!(richtext::to_markdown(&doc), "a **bold** b\n");
}

#[test]
fn marks_nest_to_few_delimiters() {
    let italic = || mark("italic", &[]);
    let doc = build(|txn, f| {
        paragraph(
            txn,
            f,
            &[
                ("a ", vec![italic()]),
                ("b", vec![bold(), italic()]),
                (" c", vec![italic()]),
                (" d", vec![mark("underline", &[]), mark("strike", &[])]),
            ],
        );
    });
    assert_eq!(
        richtext::to_markdown(&doc),
        // Underline is not delimited by `*`-like runs, so it keeps its (visible) leading space.
        "*a **b** c*<u> ~~d~~</u>\n"
    );
    assert_eq!(
        richtext::to_html(&doc),
        "<p><em>a <strong>b</strong> c</em><s><u> d</u></s></p>"
    );
}

#[test]
fn code_excludes_other_marks_like_tiptap() {
    // Another client may store bold code; TipTap's schema cannot hold it.
    let doc = build(|txn, f| {
        paragraph(txn, f, &[("x", vec![bold(), mark("code", &[])])]);
    });
    assert_eq!(richtext::to_markdown(&doc), "`x`\n");
    // Importing, code wins over the marks around it, as when TipTap parses <a><code>.
    let doc = doc_of("**`x`** [`y`](https://e.example/)\n");
    assert_eq!(
        richtext::to_html(&doc),
        "<p><code>x</code> <code>y</code></p>"
    );
}

#[test]
fn underline_and_html_tags_import_as_marks() {
    let doc = doc_of(
        "<u>u</u> <strong>b</strong> <B>B</B> <em>e</em> <i>i</i> <del>d</del> <s>s</s> a<br>b <span>kept</span>\n",
    );
    assert_eq!(
        richtext::to_html(&doc),
        "<p><u>u</u> <strong>b</strong> <strong>B</strong> <em>e</em> <em>i</em> <s>d</s> <s>s</s> a<br>b &lt;span&gt;kept&lt;/span&gt;</p>"
    );
}

#[test]
fn an_unclosed_html_tag_ends_with_its_paragraph() {
    assert_eq!(
        richtext::to_html(&doc_of("a <u>b\n\nc\n")),
        "<p>a <u>b</u></p>\n<p>c</p>"
    );
}

#[test]
fn unknown_and_hashed_marks() {
    let doc = build(|txn, f| {
        paragraph(
            txn,
            f,
            &[
                (
                    "c",
                    vec![mark("comment--a1B2c3D4", &[("id", Any::from("1"))])],
                ),
                ("h", vec![mark("highlight", &[])]),
                // A Quill-style `true` value is still the mark.
                ("b", vec![(Arc::from("bold"), Any::Bool(true))]),
            ],
        );
    });
    assert_eq!(richtext::to_markdown(&doc), "ch**b**\n");
    assert_eq!(richtext::to_html(&doc), "<p>ch<strong>b</strong></p>");
}

#[test]
fn unsafe_links_lose_their_url() {
    let doc = doc_of("[x](javascript:alert(1)) [y](https://ok.example/)\n");
    assert_eq!(
        richtext::to_html(&doc),
        "<p>x <a href=\"https://ok.example/\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">y</a></p>"
    );
    let doc = build(|txn, f| {
        paragraph(
            txn,
            f,
            &[(
                "x",
                vec![mark("link", &[("href", Any::from("JavaScript:alert(1)"))])],
            )],
        );
        element(txn, f, "image", &[("src", Any::from("javascript:x"))]);
    });
    assert_eq!(richtext::to_html(&doc), "<p><a>x</a></p>\n<img>");
}

// --- Import shaping. ----------------------------------------------------------------------

#[test]
fn import_shapes_content_for_the_schema() {
    let cases = [
        // Mixed task and plain items: two lists.
        (
            "- a\n- [ ] b\n",
            "<ul><li><p>a</p></li></ul>\n<ul data-type=\"taskList\"><li data-type=\"taskItem\" data-checked=\"false\"><label><input type=\"checkbox\" disabled></label><div><p>b</p></div></li></ul>",
        ),
        // No ordered task lists: the brackets stay text.
        ("1. [x] a\n", "<ol><li><p>[x] a</p></li></ol>"),
        // Images are blocks: the paragraph splits around them.
        (
            "a ![i](x.png) b\n",
            "<p>a</p>\n<img src=\"x.png\" alt=\"i\">\n<p>b</p>",
        ),
        (
            "- ![i](x.png)\n",
            "<ul><li><p></p><img src=\"x.png\" alt=\"i\"></li></ul>",
        ),
        // Containers that need a block get an empty paragraph.
        (">\n", "<blockquote><p></p></blockquote>"),
        (
            "-\n  - a\n",
            "<ul><li><p></p><ul><li><p>a</p></li></ul></li></ul>",
        ),
        (
            "| a |\n| - |\n|   |\n",
            "<table><tbody><tr><th><p>a</p></th></tr><tr><td><p></p></td></tr></tbody></table>",
        ),
        // Soft breaks are spaces; HTML comments go; other HTML blocks are text.
        (
            "a\nb\n\n<!-- note -->\n\n<div>\nx\n</div>\n",
            "<p>a b</p>\n<p>&lt;div&gt;<br>x<br>&lt;/div&gt;</p>",
        ),
        // Setext headings, indented code, autolinks.
        (
            "T\n===\n\n    code\n\n<https://a.example> <m@a.example>\n",
            "<h1>T</h1>\n<pre><code>code</code></pre>\n<p><a href=\"https://a.example\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">https://a.example</a> <a href=\"mailto:m@a.example\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">m@a.example</a></p>",
        ),
        // Nothing at all is one empty paragraph.
        ("", "<p></p>"),
        ("  \n\n", "<p></p>"),
    ];
    for (markdown, html) in cases {
        assert_eq!(richtext::to_html(&doc_of(markdown)), html, "{markdown:?}");
    }
}

#[test]
fn korean_text() {
    let markdown = "# 회의록\n\n오늘은 **중요한** 결정을 *했다*. `코드`와 ~~취소~~, <u>밑줄</u>.\n\n- 첫째\n- 둘째\n";
    let doc = doc_of(markdown);
    assert_eq!(richtext::to_markdown(&doc), markdown);
    assert_eq!(
        richtext::to_text(&doc),
        "회의록\n\n오늘은 중요한 결정을 했다. 코드와 취소, 밑줄.\n\n- 첫째\n- 둘째\n"
    );
}

// --- Limits and errors. -------------------------------------------------------------------

#[test]
fn too_deep_markdown_is_refused() {
    let markdown = ">".repeat(500) + " deep\n";
    assert!(matches!(
        richtext::from_markdown(&markdown),
        Err(ImportError::TooDeep { .. })
    ));
    // Reasonable nesting is fine.
    assert!(richtext::from_markdown(&(">".repeat(20) + " ok\n")).is_ok());
}

#[test]
fn too_deep_documents_export_what_fits() {
    let doc = build(|txn, f| {
        let mut parent = element(txn, f, "blockquote", &[]);
        for _ in 0..2000 {
            parent = element(txn, &parent, "blockquote", &[]);
        }
        paragraph(txn, &parent, &[plain("lost")]);
        paragraph(txn, f, &[plain("kept")]);
    });
    let markdown = richtext::to_markdown(&doc);
    assert!(markdown.ends_with("kept\n"), "{markdown}");
    assert!(!markdown.contains("lost"));
}

#[test]
fn empty_and_foreign_documents() {
    assert_eq!(richtext::to_markdown(&Doc::new()), "");
    assert_eq!(richtext::to_html(&Doc::new()), "");
    assert_eq!(richtext::to_text(&Doc::new()), "");
    // A document whose "default" is a plain Y.Text (not a rich-text document).
    let doc = Doc::new();
    let t = doc.get_or_insert_text("default");
    t.insert(&mut doc.transact_mut(), 0, "plain");
    assert_eq!(richtext::to_markdown(&doc), "");
}

#[test]
fn bad_updates_are_errors() {
    assert!(richtext::doc_from_update(&[0xff, 0xff, 0xff]).is_err());
    assert!(richtext::doc_from_update(&[]).is_err());
    let update = richtext::from_markdown("x").expect("import");
    assert!(richtext::doc_from_update(&update[..update.len() / 2]).is_err());
}
