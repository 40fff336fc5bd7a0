//! The document with every supported node and mark, in its canonical Markdown, and what the
//! HTML and text exports make of it. Shared by `richtext.rs` and `richtext_js.rs`.

/// Canonical Markdown: `to_markdown(from_markdown(ALL_MARKDOWN))` gives it back unchanged.
pub const ALL_MARKDOWN: &str = r#"# Dure rich text

Plain, **bold**, *italic*, <u>underline</u>, ~~strike~~, `code`, [a link](https://example.org/a_\(b\)?q=1&r=2 "The title") and ***bold italic***.\
After a hard break: **bold *and italic* inside**, [**bold link**](https://example.org/) and ``a`b``.

한국어 문단: **굵게**와 *기울임*, 그리고 `코드` 입니다.

Escapes: \* \_ \` \<b> \[x\] \~ a # b & \&amp; AT&T snake_case a\\b

\# not a heading

1\. not a list

\- not a bullet

\> not a quote

## Lists

- one
- two
  - nested
    - deeper
  1. ordered inside
- three

* [ ] todo
* [x] done
  - [ ] nested task

3. three
4. four

1) restarted list

- first paragraph

  second paragraph

- second item

> Quoted **text**
>
> - item in quote
>
> > nested quote

````rust
let fence = "```";
````

```
a

b
```

---

| Name | Value | Note |
| :--- | :---: | ---: |
| a \| b | `c\|d` | **e** |
| 한국어 | | <u>u</u> |

![Alt text](https://example.org/image.png "Image title")
"#;

/// `to_html` of [`ALL_MARKDOWN`].
pub const ALL_HTML: &str = r#"<h1>Dure rich text</h1>
<p>Plain, <strong>bold</strong>, <em>italic</em>, <u>underline</u>, <s>strike</s>, <code>code</code>, <a href="https://example.org/a_(b)?q=1&amp;r=2" target="_blank" rel="noopener noreferrer nofollow" title="The title">a link</a> and <strong><em>bold italic</em></strong>.<br>After a hard break: <strong>bold <em>and italic</em> inside</strong>, <a href="https://example.org/" target="_blank" rel="noopener noreferrer nofollow"><strong>bold link</strong></a> and <code>a`b</code>.</p>
<p>한국어 문단: <strong>굵게</strong>와 <em>기울임</em>, 그리고 <code>코드</code> 입니다.</p>
<p>Escapes: * _ ` &lt;b&gt; [x] ~ a # b &amp; &amp;amp; AT&amp;T snake_case a\b</p>
<p># not a heading</p>
<p>1. not a list</p>
<p>- not a bullet</p>
<p>&gt; not a quote</p>
<h2>Lists</h2>
<ul><li><p>one</p></li><li><p>two</p><ul><li><p>nested</p><ul><li><p>deeper</p></li></ul></li></ul><ol><li><p>ordered inside</p></li></ol></li><li><p>three</p></li></ul>
<ul data-type="taskList"><li data-type="taskItem" data-checked="false"><label><input type="checkbox" disabled></label><div><p>todo</p></div></li><li data-type="taskItem" data-checked="true"><label><input type="checkbox" disabled checked></label><div><p>done</p><ul data-type="taskList"><li data-type="taskItem" data-checked="false"><label><input type="checkbox" disabled></label><div><p>nested task</p></div></li></ul></div></li></ul>
<ol start="3"><li><p>three</p></li><li><p>four</p></li></ol>
<ol><li><p>restarted list</p></li></ol>
<ul><li><p>first paragraph</p><p>second paragraph</p></li><li><p>second item</p></li></ul>
<blockquote><p>Quoted <strong>text</strong></p><ul><li><p>item in quote</p></li></ul><blockquote><p>nested quote</p></blockquote></blockquote>
<pre><code class="language-rust">let fence = "```";</code></pre>
<pre><code>a

b</code></pre>
<hr>
<table><tbody><tr><th style="text-align: left"><p>Name</p></th><th style="text-align: center"><p>Value</p></th><th style="text-align: right"><p>Note</p></th></tr><tr><td style="text-align: left"><p>a | b</p></td><td style="text-align: center"><p><code>c|d</code></p></td><td style="text-align: right"><p><strong>e</strong></p></td></tr><tr><td style="text-align: left"><p>한국어</p></td><td style="text-align: center"><p></p></td><td style="text-align: right"><p><u>u</u></p></td></tr></tbody></table>
<img src="https://example.org/image.png" alt="Alt text" title="Image title">"#;

/// `to_text` of [`ALL_MARKDOWN`].
pub const ALL_TEXT: &str = r#"Dure rich text

Plain, bold, italic, underline, strike, code, a link and bold italic.
After a hard break: bold and italic inside, bold link and a`b.

한국어 문단: 굵게와 기울임, 그리고 코드 입니다.

Escapes: * _ ` <b> [x] ~ a # b & &amp; AT&T snake_case a\b

# not a heading

1. not a list

- not a bullet

> not a quote

Lists

- one
- two
  - nested
    - deeper
  1. ordered inside
- three

[ ] todo
[x] done
    [ ] nested task

3. three
4. four

1. restarted list

- first paragraph
  second paragraph
- second item

> Quoted text
>
> - item in quote
>
> > nested quote

let fence = "```";

a

b

---

Name	Value	Note
a | b	c|d	e
한국어		u

Alt text
"#;
