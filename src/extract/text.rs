//! Text preparation: a template's `options` (whitespace, accents, case,
//! `replace`) applied to the layout text as invoice2data does, keeping for
//! every byte the place it came from so a match leads back to its words.

use super::template;

/// Text after a template's options, and for every byte of it the byte of
/// the layout text it came from, so a match leads back to its words.
pub struct Prepared {
    pub text: String,
    origin: Vec<usize>,
}

impl Prepared {
    /// The range of the layout text a range of the prepared text stands for.
    pub fn original(&self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let start = self.origin.get(range.start).copied().unwrap_or(0);
        let end = range
            .end
            .checked_sub(1)
            .and_then(|last| self.origin.get(last))
            .map_or(start, |o| o + 1);
        start..end.max(start)
    }
}

fn build(chars: &[(char, usize)]) -> Prepared {
    let mut text = String::with_capacity(chars.len());
    let mut origin = Vec::with_capacity(chars.len());
    for &(c, o) in chars {
        text.push(c);
        origin.extend(std::iter::repeat_n(o, c.len_utf8()));
    }
    Prepared { text, origin }
}

/// Python's `\1` and `\g<name>` in a replacement, in the `${1}` form the
/// regex engine expands.
fn python_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut it = r.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match it.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = String::new();
                    while let Some(d) = it.peek().copied().filter(char::is_ascii_digit) {
                        n.push(d);
                        it.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    it.next();
                    if it.peek() == Some(&'<') {
                        it.next();
                        let name: String = it.by_ref().take_while(|&c| c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('\\') => {
                    it.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// Apply a template's `options` to the text, as invoice2data does before
/// matching keywords and fields, keeping track of where each piece came from.
pub fn prepare_mapped(text: &str, options: &template::Options) -> Prepared {
    let mut chars: Vec<(char, usize)> = text.char_indices().map(|(i, c)| (c, i)).collect();
    if options.remove_whitespace {
        chars.retain(|&(c, _)| c != ' ');
    }
    if options.remove_accents {
        chars = chars
            .into_iter()
            .flat_map(|(c, o)| {
                let mut buf = [0u8; 4];
                remove_accents(c.encode_utf8(&mut buf))
                    .chars()
                    .map(move |b| (b, o))
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    if options.lowercase {
        chars = chars
            .into_iter()
            .flat_map(|(c, o)| c.to_lowercase().map(move |l| (l, o)))
            .collect();
    }
    let mut prepared = build(&chars);
    for (regex, replacement) in &options.replace {
        let replacement = python_replacement(replacement);
        let mut next: Vec<(char, usize)> = Vec::with_capacity(prepared.text.len());
        let mut at = 0;
        for caps in regex.captures_iter(prepared.text.as_str()).flatten() {
            let Some(m) = caps.get(0) else { continue };
            for (i, c) in prepared.text[at..m.start()].char_indices() {
                next.push((c, prepared.origin[at + i]));
            }
            let first = prepared
                .origin
                .get(m.start())
                .copied()
                .unwrap_or(text.len());
            let last = m
                .end()
                .checked_sub(1)
                .and_then(|l| prepared.origin.get(l).copied())
                .filter(|_| m.end() > m.start())
                .unwrap_or(first);
            let mut expanded = String::new();
            caps.expand(&replacement, &mut expanded);
            // The replacement stands for the whole match: spread its
            // characters over the match's span of the layout text.
            let n = expanded.chars().count();
            next.extend(expanded.chars().enumerate().map(|(k, c)| {
                let o = first + (last.saturating_sub(first)) * k / n.saturating_sub(1).max(1);
                (c, o)
            }));
            at = m.end();
        }
        for (i, c) in prepared.text[at..].char_indices() {
            next.push((c, prepared.origin[at + i]));
        }
        prepared = build(&next);
    }
    prepared
}

/// [`prepare_mapped`] without the map.
pub fn prepare(text: &str, options: &template::Options) -> String {
    prepare_mapped(text, options).text
}

/// Latin letters with diacritics to their base letter (é → e, ß → ss).
fn remove_accents(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let base = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
            'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "A",
            'ç' => "c",
            'Ç' => "C",
            'è' | 'é' | 'ê' | 'ë' => "e",
            'È' | 'É' | 'Ê' | 'Ë' => "E",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'Ì' | 'Í' | 'Î' | 'Ï' => "I",
            'ñ' => "n",
            'Ñ' => "N",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "O",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
            'ý' | 'ÿ' => "y",
            'Ý' => "Y",
            'ß' => "ss",
            'œ' => "oe",
            'Œ' => "OE",
            'æ' => "ae",
            'Æ' => "AE",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(base);
    }
    out
}

/// Characters that end a token: a value that stops before one of these is
/// whole.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, ')' | '(' | ']' | '[' | '|' | ';' | '"')
}

/// The whole token when a match covers only part of it: `61` out of
/// `61:25` means the rule saw part of what is printed, and the reading is
/// suspect (an OCR `:` for `,`, a number glued to a word). Checked on the
/// layout text itself, not on the text after the template's options.
pub fn cut_token(text: &str, range: std::ops::Range<usize>) -> Option<String> {
    let value = text.get(range.clone())?.trim_end();
    let end = range.start + value.len();
    let after = text[end..].chars().next();
    let before = text[..range.start].chars().next_back();
    let continues_after = match after {
        None => false,
        Some(c) if ends_token(c) => false,
        // At the end of a sentence these close the token; between digits or
        // letters they are inside it.
        Some(',' | '.' | ':') => text[end..]
            .chars()
            .nth(1)
            .is_some_and(char::is_alphanumeric),
        Some(_) => true,
    };
    let continues_before =
        before.is_some_and(char::is_alphanumeric) && value.starts_with(char::is_alphanumeric);
    (continues_after || continues_before).then(|| token_around(text, range.start, end))
}

/// The whitespace-delimited token that holds `start..end`.
fn token_around(text: &str, start: usize, end: usize) -> String {
    let from = text[..start]
        .rfind(char::is_whitespace)
        .map_or(0, |i| i + 1);
    let to = text[end..]
        .find(char::is_whitespace)
        .map_or(text.len(), |i| end + i);
    text[from..to].to_string()
}
