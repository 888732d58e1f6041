//! Template regexes: written for Python's `re`/`regex` (invoice2data's
//! dialect) and compiled with fancy-regex. A pattern that does not compile
//! as written is translated where the two dialects spell the same thing
//! differently; one that compiles in neither is reported at the character
//! that fails.

use fancy_regex::Regex;

/// Why a pattern cannot be used: where in it (a character index from 0,
/// when known) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexProblem {
    pub at: Option<usize>,
    pub message: String,
}

/// `pattern` compiled as Python reads it; a pattern only fancy-regex
/// reads (a nested class) is taken as written.
pub fn compile(pattern: &str) -> Result<Regex, RegexProblem> {
    let translated = from_python(pattern);
    Regex::new(&translated)
        .or_else(|_| Regex::new(pattern))
        .map_err(|e| problem(pattern, &e))
}

/// Python spellings fancy-regex reads otherwise: `\Z` (end of text) is
/// `\z`; `{,n}` is `{0,n}`; `[` inside a class is a literal, not a nested
/// class; a `{` that starts no repetition is a literal.
fn from_python(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let next = chars[i + 1];
                if next == 'Z' && !in_class {
                    out.push_str("\\z");
                } else if matches!(next, 'p' | 'P' | 'x' | 'u' | 'N')
                    && chars.get(i + 2) == Some(&'{')
                {
                    // `\p{L}`, `\x{e9}`: the braces belong to the escape.
                    let end = chars[i..]
                        .iter()
                        .position(|&x| x == '}')
                        .map_or(chars.len(), |p| i + p + 1);
                    out.extend(&chars[i..end]);
                    i = end;
                    continue;
                } else {
                    out.push(c);
                    out.push(next);
                }
                i += 2;
                continue;
            }
            '[' if in_class => out.push_str("\\["),
            '[' => {
                in_class = true;
                out.push('[');
                // `[]` and `[^]` open with a literal `]` in Python.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '-' | '~' if in_class && chars.get(i + 1) == Some(&c) => {
                out.push('\\');
                out.push(c);
            }
            '{' if !in_class => {
                let close = chars[i..].iter().position(|&x| x == '}').map(|p| i + p);
                let inner: Option<String> = close.map(|e| chars[i + 1..e].iter().collect());
                match inner {
                    Some(inner) if is_repeat(&inner) => {
                        if inner.starts_with(',') {
                            out.push_str(&format!("{{0{inner}}}"));
                        } else {
                            out.push_str(&format!("{{{inner}}}"));
                        }
                        i = close.unwrap_or(i) + 1;
                        continue;
                    }
                    _ => out.push_str("\\{"),
                }
            }
            '}' if !in_class => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// `n`, `n,`, `n,m` or `,m`.
fn is_repeat(inner: &str) -> bool {
    let (a, b) = match inner.split_once(',') {
        Some((a, b)) => (a, Some(b)),
        None => (inner, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    match b {
        None => !a.is_empty() && digits(a),
        Some(b) => digits(a) && digits(b) && !(a.is_empty() && b.is_empty()),
    }
}

fn problem(pattern: &str, err: &fancy_regex::Error) -> RegexProblem {
    let char_at = |byte: usize| pattern[..byte.min(pattern.len())].chars().count();
    if let fancy_regex::Error::ParseError(pos, e) = err {
        return RegexProblem {
            at: pattern.is_char_boundary(*pos).then(|| char_at(*pos)),
            message: e.to_string(),
        };
    }
    // The part fancy-regex hands to the regex crate: its parser says where.
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(pattern) {
        return RegexProblem {
            at: Some(char_at(e.span().start.offset)),
            message: e.kind().to_string(),
        };
    }
    if let Err(regex_syntax::Error::Translate(e)) = regex_syntax::Parser::new().parse(pattern) {
        return RegexProblem {
            at: Some(char_at(e.span().start.offset)),
            message: e.kind().to_string(),
        };
    }
    RegexProblem {
        at: None,
        message: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_spellings_are_read_as_python_reads_them() {
        let r = compile(r"Total\s+(\d+)\Z").unwrap();
        assert!(r.is_match("Total 12").unwrap());
        assert!(!r.is_match("Total 12\nmore").unwrap());
        let r = compile(r"a{,2}b").unwrap();
        assert!(r.is_match("aab").unwrap());
        let r = compile(r"[[(]\d+[])]").unwrap();
        assert!(r.is_match("(12]").unwrap());
        let r = compile(r"{ID}:(\w+)").unwrap();
        assert!(r.is_match("{ID}:x").unwrap());
        let r = compile(r"\p{Lu}{2}\d{3,}").unwrap();
        assert!(r.is_match("DE123").unwrap());
    }

    #[test]
    fn a_pattern_no_dialect_reads_is_reported_at_its_character() {
        let e = compile(r"Total (\d+").unwrap_err();
        assert!(e.message.contains("parenthesis"), "{e:?}");
        let e = compile(r"ab\qc").unwrap_err();
        assert_eq!(e.at, Some(2), "{e:?}");
    }
}
