//! Tree → an HTML fragment, close to what TipTap's `getHTML()` renders so that it pastes or
//! imports back into the editor (`data-type` on task lists, `<pre><code class="language-…">`),
//! with everything escaped: text (`&`, `<`, `>`) and attribute values (also quotes). Links and
//! images with a script-capable URL (`javascript:` …) lose the URL. Unknown nodes render
//! their content, unknown marks their text.

use yrs::Any;

use super::inline::{Inline, flatten, nest};
use super::schema::{attr, is_unsafe_image_src, is_unsafe_url, mark, node};
use super::tree::{Element, Node};

/// Renders the blocks, one top-level block per line.
pub(crate) fn export(nodes: &[Node]) -> String {
    let mut out = String::new();
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_node(&mut out, n);
    }
    out
}

fn render_children(out: &mut String, children: &[Node]) {
    for n in children {
        render_node(out, n);
    }
}

fn render_node(out: &mut String, n: &Node) {
    match n {
        Node::Text(_) => render_inline(out, std::slice::from_ref(n)),
        Node::Element(e) => render_element(out, e),
    }
}

fn render_element(out: &mut String, e: &Element) {
    match e.name.as_str() {
        node::PARAGRAPH => wrap_inline(out, "p", "", &e.children),
        node::HEADING => {
            let level = e.int_attr(attr::LEVEL).unwrap_or(1).clamp(1, 6);
            wrap_inline(out, &format!("h{level}"), "", &e.children);
        }
        node::BLOCKQUOTE => wrap_blocks(out, "blockquote", "", &e.children),
        node::BULLET_LIST => wrap_blocks(out, "ul", "", &e.children),
        node::ORDERED_LIST => {
            let start = e.int_attr(attr::START).unwrap_or(1);
            let attrs = if start == 1 {
                String::new()
            } else {
                format!(" start=\"{start}\"")
            };
            wrap_blocks(out, "ol", &attrs, &e.children);
        }
        node::LIST_ITEM => wrap_blocks(out, "li", "", &e.children),
        node::TASK_LIST => wrap_blocks(out, "ul", " data-type=\"taskList\"", &e.children),
        node::TASK_ITEM => {
            let checked = e.bool_attr(attr::CHECKED).unwrap_or(false);
            out.push_str(&format!(
                "<li data-type=\"taskItem\" data-checked=\"{checked}\"><label><input type=\"checkbox\" disabled{}></label><div>",
                if checked { " checked" } else { "" }
            ));
            render_children(out, &e.children);
            out.push_str("</div></li>");
        }
        node::CODE_BLOCK => {
            let mut code = String::new();
            super::tree::plain_text(&e.children, &mut code);
            out.push_str("<pre><code");
            if let Some(language) = e.str_attr(attr::LANGUAGE).filter(|l| !l.is_empty()) {
                out.push_str(" class=\"language-");
                push_attr_value(out, language);
                out.push('"');
            }
            out.push('>');
            push_text(out, &code);
            out.push_str("</code></pre>");
        }
        node::HORIZONTAL_RULE => out.push_str("<hr>"),
        node::HARD_BREAK => out.push_str("<br>"),
        node::TABLE => {
            out.push_str("<table><tbody>");
            render_children(out, &e.children);
            out.push_str("</tbody></table>");
        }
        node::TABLE_ROW => wrap_blocks(out, "tr", "", &e.children),
        node::TABLE_HEADER | node::TABLE_CELL => {
            let tag = if e.is(node::TABLE_HEADER) { "th" } else { "td" };
            wrap_blocks(out, tag, &cell_attrs(e), &e.children);
        }
        node::IMAGE => push_image(out, e),
        // An unknown node: its content, inline or blocks.
        _ => render_children(out, &e.children),
    }
}

fn cell_attrs(e: &Element) -> String {
    let mut attrs = String::new();
    for key in [attr::COLSPAN, attr::ROWSPAN] {
        if let Some(n) = e.int_attr(key).filter(|n| *n > 1) {
            attrs.push_str(&format!(" {key}=\"{n}\""));
        }
    }
    if let Some(align) = e.str_attr(attr::ALIGN)
        && matches!(align, "left" | "center" | "right")
    {
        attrs.push_str(&format!(" style=\"text-align: {align}\""));
    }
    attrs
}

fn wrap_blocks(out: &mut String, tag: &str, attrs: &str, children: &[Node]) {
    out.push_str(&format!("<{tag}{attrs}>"));
    render_children(out, children);
    out.push_str(&format!("</{tag}>"));
}

fn wrap_inline(out: &mut String, tag: &str, attrs: &str, children: &[Node]) {
    out.push_str(&format!("<{tag}{attrs}>"));
    render_inline(out, children);
    out.push_str(&format!("</{tag}>"));
}

fn render_inline(out: &mut String, children: &[Node]) {
    let pieces = flatten(children);
    render_nested(out, &nest(&pieces));
}

fn render_nested(out: &mut String, nodes: &[Inline<'_>]) {
    for n in nodes {
        match n {
            Inline::Text(text) => push_text(out, text),
            Inline::Code(code) => {
                out.push_str("<code>");
                push_text(out, code);
                out.push_str("</code>");
            }
            Inline::Break => out.push_str("<br>"),
            Inline::Image(attrs) => {
                let mut image = Element::new(node::IMAGE);
                image.attrs = (*attrs).clone();
                push_image(out, &image);
            }
            Inline::Span(m, children) => {
                let tag = match m.name.as_str() {
                    mark::BOLD => "strong",
                    mark::ITALIC => "em",
                    mark::STRIKE => "s",
                    mark::UNDERLINE => "u",
                    mark::CODE => "code",
                    mark::LINK => {
                        out.push_str("<a");
                        if let Some(href) = m.str_attr(attr::HREF).filter(|h| !is_unsafe_url(h)) {
                            push_attr(out, "href", href);
                        }
                        for key in [attr::TARGET, attr::REL, attr::TITLE] {
                            if let Some(value) = m.str_attr(key) {
                                push_attr(out, key, value);
                            }
                        }
                        out.push('>');
                        render_nested(out, children);
                        out.push_str("</a>");
                        continue;
                    }
                    _ => {
                        render_nested(out, children);
                        continue;
                    }
                };
                out.push_str(&format!("<{tag}>"));
                render_nested(out, children);
                out.push_str(&format!("</{tag}>"));
            }
        }
    }
}

fn push_image(out: &mut String, e: &Element) {
    out.push_str("<img");
    if let Some(src) = e.str_attr(attr::SRC).filter(|s| !is_unsafe_image_src(s)) {
        push_attr(out, "src", src);
    }
    for key in [attr::ALT, attr::TITLE] {
        if let Some(value) = e.str_attr(key) {
            push_attr(out, key, value);
        }
    }
    for key in [attr::WIDTH, attr::HEIGHT] {
        match e.attrs.get(key) {
            Some(Any::String(s)) => push_attr(out, key, s),
            Some(v) => {
                if let Some(n) = super::tree::any_to_i64(v) {
                    push_attr(out, key, &n.to_string());
                }
            }
            None => {}
        }
    }
    out.push('>');
}

fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    push_attr_value(out, value);
    out.push('"');
}

/// Escapes text content.
fn push_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
}

/// Escapes a double-quoted attribute value.
fn push_attr_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut out = String::new();
        push_text(&mut out, "<a href=\"x\">&</a>");
        assert_eq!(out, "&lt;a href=\"x\"&gt;&amp;&lt;/a&gt;");
        let mut out = String::new();
        push_attr(&mut out, "title", "\"'<&>");
        assert_eq!(out, " title=\"&quot;&#39;&lt;&amp;&gt;\"");
    }
}
