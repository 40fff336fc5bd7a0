//! Markdown escaping: text that reads back literally wherever it lands, code spans, link
//! destinations and titles.

/// Whether `out` ends with `c` not escaped by a backslash.
pub(crate) fn ends_with_unescaped(out: &str, c: char) -> bool {
    match out.strip_suffix(c) {
        Some(before) => (before.len() - before.trim_end_matches('\\').len()) % 2 == 0,
        None => false,
    }
}

/// Escapes text so that it reads back literally wherever it lands in a line.
pub(crate) fn push_text(out: &mut String, text: &str) {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let line_start = out.is_empty() || out.ends_with('\n');
        match c {
            '\\' | '`' | '*' | '[' | ']' | '<' | '~' => {
                out.push('\\');
                out.push(c);
            }
            // Inside a word `_` cannot open or close emphasis: `snake_case` stays readable.
            '_' => {
                let inside_word = i > 0
                    && chars[i - 1].is_alphanumeric()
                    && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
                if !inside_word {
                    out.push('\\');
                }
                out.push('_');
            }
            '&' if looks_like_entity(&chars[i + 1..]) => out.push_str("\\&"),
            // At the start of a line these would begin a heading, quote, list, rule or
            // setext underline.
            '#' | '>' | '-' | '+' | '=' if line_start => {
                out.push('\\');
                out.push(c);
            }
            // Markdown strips leading whitespace; a character reference keeps it.
            ' ' if line_start => out.push_str("&#32;"),
            '\t' if line_start => out.push_str("&#9;"),
            '0'..='9' if line_start => {
                let digits = chars[i..].iter().take_while(|d| d.is_ascii_digit()).count();
                let after = chars.get(i + digits);
                let then = chars.get(i + digits + 1);
                out.extend(&chars[i..i + digits]);
                i += digits;
                // "1. " or "1) " would start an ordered list.
                if digits <= 9
                    && matches!(after, Some('.' | ')'))
                    && then.is_none_or(|t| *t == ' ' || *t == '\t')
                {
                    out.push('\\');
                }
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
}

/// `&` followed by what reads as a character reference (`&amp;`, `&#35;`, `&#x23;`).
fn looks_like_entity(rest: &[char]) -> bool {
    let body: Vec<&char> = rest.iter().take_while(|c| **c != ';').take(33).collect();
    let closed = rest.get(body.len()) == Some(&';');
    let valid = match body.split_first() {
        Some(('#', digits)) => !digits.is_empty(),
        Some((first, _)) => first.is_ascii_alphabetic(),
        None => false,
    };
    closed && valid && body.iter().all(|c| c.is_ascii_alphanumeric() || **c == '#')
}

/// A code span: a backtick fence longer or shorter than every run inside, padded with a
/// space when the content would otherwise lose or merge an edge.
pub(crate) fn push_code(out: &mut String, code: &str) {
    let mut runs = std::collections::BTreeSet::new();
    let mut current = 0;
    for ch in code.chars() {
        if ch == '`' {
            current += 1;
        } else if current > 0 {
            runs.insert(current);
            current = 0;
        }
    }
    if current > 0 {
        runs.insert(current);
    }
    let n = (1..).find(|n| !runs.contains(n)).unwrap_or(1);
    let fence = "`".repeat(n);
    let all_spaces = code.chars().all(|c| c == ' ');
    let pad = code.starts_with('`')
        || code.ends_with('`')
        || (!all_spaces && code.starts_with(' ') && code.ends_with(' '));
    out.push_str(&fence);
    if pad {
        out.push(' ');
    }
    out.push_str(code);
    if pad {
        out.push(' ');
    }
    out.push_str(&fence);
}

/// A link destination: bare when it can be, in `<…>` when it has spaces.
pub(crate) fn push_destination(out: &mut String, url: &str) {
    let url = url.replace('\n', "%0A").replace('\r', "%0D");
    let needs_brackets = url.is_empty()
        || url
            .chars()
            .any(|c| c == ' ' || c.is_control() || c == '<' || c == '>');
    if needs_brackets {
        out.push('<');
        for c in url.chars() {
            if matches!(c, '<' | '>' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('>');
        return;
    }
    let chars: Vec<char> = url.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(*c);
            }
            '&' if looks_like_entity(&chars[i + 1..]) => out.push_str("\\&"),
            _ => out.push(*c),
        }
    }
}

pub(crate) fn push_title(out: &mut String, title: &str) {
    if title.is_empty() {
        return;
    }
    out.push_str(" \"");
    let chars: Vec<char> = title.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(*c);
            }
            '&' if looks_like_entity(&chars[i + 1..]) => out.push_str("\\&"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(*c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        push_text(&mut out, s);
        out
    }

    #[test]
    fn text_escapes() {
        assert_eq!(escaped("# a"), "\\# a");
        assert_eq!(escaped("a # b"), "a # b");
        assert_eq!(escaped("snake_case _x_"), "snake_case \\_x\\_");
        assert_eq!(escaped("1. a"), "1\\. a");
        assert_eq!(escaped("3.14"), "3.14");
        assert_eq!(escaped("a&amp;b & c"), "a\\&amp;b & c");
        assert_eq!(escaped("<b>*x*</b>"), "\\<b>\\*x\\*\\</b>");
        assert_eq!(escaped(" lead"), "&#32;lead");
    }

    #[test]
    fn code_spans() {
        let code = |s: &str| {
            let mut out = String::new();
            push_code(&mut out, s);
            out
        };
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`a"), "`` `a ``");
        assert_eq!(code(" a "), "`  a  `");
        assert_eq!(code("  "), "`  `");
    }

    #[test]
    fn destinations() {
        let dest = |s: &str| {
            let mut out = String::new();
            push_destination(&mut out, s);
            out
        };
        assert_eq!(dest("https://x.org/a_(b)"), "https://x.org/a_\\(b\\)");
        assert_eq!(dest("a b"), "<a b>");
        assert_eq!(dest(""), "<>");
    }
}
