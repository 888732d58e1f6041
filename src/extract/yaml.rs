//! Template YAML to JSON, within bounds.
//!
//! YAML aliases repeat a node by reference, so a few lines can stand for
//! billions of values ("billion laughs"), and the loader copies every
//! repeat. A template is first walked event by event, counting what it
//! would expand to and how deep it nests; one over the bounds is refused
//! with an error before anything is built.

use serde_json::Value;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

/// More values than any real template holds (the largest invoice2data
/// templates have a few hundred).
pub const MAX_VALUES: usize = 100_000;
/// Deeper than any real template nests.
pub const MAX_DEPTH: usize = 64;

/// Why a YAML text was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// 1-based; 0 when the problem concerns the whole text.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The first document of `text` as JSON.
#[cfg(test)]
pub fn load(text: &str) -> Result<Value, YamlError> {
    load_with_positions(text).map(|(value, _)| value)
}

/// Where a value of the document was written: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Where each value and each mapping key of a document was written, by
/// the JSON pointer of the value (`/fields/amount/type`).
#[derive(Debug, Clone, Default)]
pub struct Positions {
    values: std::collections::HashMap<String, Pos>,
    keys: std::collections::HashMap<String, Pos>,
}

impl Positions {
    /// Where the value at `pointer` starts; `None` where it is not known
    /// (a JSON file read without positions).
    pub fn value(&self, pointer: &str) -> Option<Pos> {
        self.values.get(pointer).copied()
    }

    /// Where the key of the value at `pointer` is written, else the value.
    pub fn key(&self, pointer: &str) -> Option<Pos> {
        self.keys
            .get(pointer)
            .or_else(|| self.values.get(pointer))
            .copied()
    }
}

/// `pointer` extended by one key, escaped as JSON pointers are.
pub fn child(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// A collection being read.
enum Open {
    Seq {
        pointer: String,
        anchor: usize,
        items: Vec<Value>,
    },
    Map {
        pointer: String,
        anchor: usize,
        map: serde_json::Map<String, Value>,
        /// The key read, waiting for its value.
        key: Option<(String, Pos)>,
    },
}

/// The first document of `text` as JSON, with where each value is. A key
/// repeated in one mapping keeps its last value, as PyYAML (and so
/// invoice2data) reads it.
pub fn load_with_positions(text: &str) -> Result<(Value, Positions), YamlError> {
    check_bounds(text)?;
    let mut parser = Parser::new_from_str(text);
    let mut open: Vec<Open> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Value> = Default::default();
    let mut positions = Positions::default();
    let mut root = None;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        // The pointer of a node starting here, and whether it is a key.
        let (pointer, is_key) = match open.last() {
            None => (String::new(), false),
            Some(Open::Seq { pointer, items, .. }) => {
                (child(pointer, &items.len().to_string()), false)
            }
            Some(Open::Map {
                pointer,
                key: Some((k, _)),
                ..
            }) => (child(pointer, k), false),
            Some(Open::Map {
                pointer, key: None, ..
            }) => (pointer.clone(), true),
        };
        // Every node that starts here, other than a key, is placed.
        let starts_node = matches!(
            event,
            Event::SequenceStart(..)
                | Event::MappingStart(..)
                | Event::Scalar(..)
                | Event::Alias(_)
        );
        if starts_node && !is_key {
            positions.values.insert(pointer.clone(), pos);
        }
        let done = match event {
            Event::StreamEnd | Event::DocumentEnd => break,
            Event::SequenceStart(anchor, _) => {
                open.push(Open::Seq {
                    pointer,
                    anchor,
                    items: Vec::new(),
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                open.push(Open::Map {
                    pointer,
                    anchor,
                    map: Default::default(),
                    key: None,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                Some(Open::Seq { anchor, items, .. }) => (anchor, Value::Array(items)),
                Some(Open::Map { anchor, map, .. }) => (anchor, Value::Object(map)),
                None => continue,
            },
            Event::Scalar(text, style, anchor, tag) => (anchor, scalar(text, style, tag.as_ref())),
            Event::Alias(id) => (0, anchors.get(&id).cloned().unwrap_or(Value::Null)),
            _ => continue,
        };
        let (anchor, value) = done;
        if anchor > 0 {
            anchors.insert(anchor, value.clone());
        }
        match open.last_mut() {
            None => {
                root = Some(value);
                break;
            }
            Some(Open::Seq { items, .. }) => items.push(value),
            Some(Open::Map {
                key: key @ None, ..
            }) => {
                let name = match value {
                    Value::String(s) => s,
                    Value::Null => "null".to_string(),
                    other => other.to_string(),
                };
                *key = Some((name, pos));
            }
            Some(Open::Map {
                pointer,
                map,
                key: key @ Some(_),
                ..
            }) => {
                if let Some((name, key_pos)) = key.take() {
                    positions.keys.insert(child(pointer, &name), key_pos);
                    map.insert(name, value);
                }
            }
        }
    }
    Ok((root.unwrap_or(Value::Null), positions))
}

/// A scalar as PyYAML's safe loader (YAML 1.1, what invoice2data reads
/// templates with) types it: plain text may be a number, a boolean or
/// null; quoted text and `!!str` are always text. So `04080176` (not
/// octal) stays text and `yes` is true, as in invoice2data.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    let quoted = style != TScalarStyle::Plain;
    let as_text = tag.is_some_and(|t| t.suffix == "str");
    if quoted || as_text {
        return Value::String(text);
    }
    yaml11(&text).unwrap_or(Value::String(text))
}

/// The non-text value of a plain YAML 1.1 scalar, if it is one.
fn yaml11(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Some(Value::Bool(true));
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Some(Value::Bool(false));
        }
        _ => {}
    }
    let (sign, body) = match text.as_bytes().first() {
        Some(b'-') => (-1i64, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let digits: String = body.chars().filter(|&c| c != '_').collect();
    let int = |radix: u32, s: &str| {
        i64::from_str_radix(s, radix)
            .ok()
            .map(|n| Value::from(sign * n))
    };
    if body == "0" {
        return Some(Value::from(0));
    }
    if let Some(hex) = digits.strip_prefix("0x") {
        return int(16, hex);
    }
    if let Some(bin) = digits.strip_prefix("0b") {
        return int(2, bin);
    }
    let all = |s: &str, f: fn(char) -> bool| !s.is_empty() && s.chars().all(f);
    if let Some(oct) = digits.strip_prefix('0') {
        return all(oct, |c| ('0'..='7').contains(&c))
            .then(|| int(8, oct))
            .flatten();
    }
    if all(&digits, |c| c.is_ascii_digit()) {
        return int(10, &digits);
    }
    // A float has a dot (`1e5` is text in YAML 1.1).
    let float = {
        let (mantissa, exp) = match digits.find(['e', 'E']) {
            Some(i) => (&digits[..i], Some(&digits[i + 1..])),
            None => (digits.as_str(), None),
        };
        let exp_ok = exp.is_none_or(|e| {
            e.len() > 1
                && matches!(e.as_bytes()[0], b'+' | b'-')
                && all(&e[1..], |c| c.is_ascii_digit())
        });
        let mantissa_ok = mantissa.contains('.')
            && mantissa.chars().any(|c| c.is_ascii_digit())
            && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.');
        exp_ok && mantissa_ok
    };
    if float {
        return digits
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(sign as f64 * f))
            .map(Value::Number);
    }
    None
}

/// Walk the events of `text` without building anything: refuse it when
/// it would expand to more than [`MAX_VALUES`] values or nest deeper than
/// [`MAX_DEPTH`].
fn check_bounds(text: &str) -> Result<(), YamlError> {
    let mut parser = Parser::new_from_str(text);
    // Values of each collection being read, with its anchor.
    let mut open: Vec<(usize, usize)> = Vec::new();
    // How many values each anchor stands for.
    let mut anchored: std::collections::HashMap<usize, usize> = Default::default();
    let mut total = 0usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let refuse = |message: String| YamlError {
            line: mark.line(),
            column: mark.col() + 1,
            message,
        };
        let node = match event {
            Event::StreamEnd => return Ok(()),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, 0));
                if open.len() > MAX_DEPTH {
                    return Err(refuse(format!("nests deeper than {MAX_DEPTH} levels")));
                }
                continue;
            }
            // A collection's values were counted as they came; it adds one.
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop().map(|(anchor, values)| (anchor, values + 1, 1))
            }
            Event::Scalar(_, _, anchor, _) => Some((anchor, 1, 1)),
            Event::Alias(id) => {
                let values = anchored.get(&id).copied().unwrap_or(1);
                Some((0, values, values))
            }
            _ => None,
        };
        let Some((anchor, values, new)) = node else {
            continue;
        };
        if anchor > 0 {
            anchored.insert(anchor, values);
        }
        total = total.saturating_add(new);
        if total > MAX_VALUES {
            return Err(refuse(format!(
                "expands to more than {MAX_VALUES} values (aliases repeating aliases?)"
            )));
        }
        if let Some((_, parent)) = open.last_mut() {
            *parent = parent.saturating_add(values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_expanded_within_bounds() {
        let v = load("base: &b {currency: EUR, keywords: [ACME]}\nother: *b\n").unwrap();
        assert_eq!(v["other"]["currency"], "EUR");
        assert_eq!(v["other"]["keywords"][0], "ACME");
    }

    #[test]
    fn a_billion_laughs_is_refused_at_its_line() {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (i, letter) in "bcdefghi".chars().enumerate() {
            let prev = (b'a' + i as u8) as char;
            let refs = vec![format!("*{prev}"); 9].join(",");
            text.push_str(&format!("{letter}: &{letter} [{refs}]\n"));
        }
        let err = load(&text).unwrap_err();
        assert!(err.message.contains("more than 100000 values"), "{err:?}");
        // 9^6 = 531441 values are reached on the sixth line.
        assert_eq!(err.line, 6, "{err:?}");
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_and_place() {
        let text = "fields:\n  amount: first\n  vat: '19'\n  amount: 'Total: (\\S+)'\n";
        let (v, at) = load_with_positions(text).unwrap();
        assert_eq!(v["fields"]["amount"], "Total: (\\S+)");
        assert_eq!(v["fields"]["vat"], "19");
        assert_eq!(at.key("/fields/amount"), Some(Pos { line: 4, column: 3 }));
        assert_eq!(
            at.value("/fields/amount"),
            Some(Pos {
                line: 4,
                column: 11
            })
        );
        assert_eq!(at.value("/fields/vat"), Some(Pos { line: 3, column: 8 }));
    }

    #[test]
    fn lists_and_keys_with_slashes_have_their_places() {
        let text = "keywords:\n  - ACME\n  - 'a/b'\nx/y: 1\n";
        let (v, at) = load_with_positions(text).unwrap();
        assert_eq!(v["keywords"][1], "a/b");
        assert_eq!(v["x/y"], 1);
        assert_eq!(at.value("/keywords/1"), Some(Pos { line: 3, column: 5 }));
        assert_eq!(at.key("/x~1y"), Some(Pos { line: 4, column: 1 }));
    }

    #[test]
    fn plain_scalars_are_typed_as_pyyaml_types_them() {
        let v = load(
            "a: 04080176\nb: 0755\nc: 1_000\nd: 1e5\ne: 2.50\nf: yes\ng: ~\nh: '12'\ni: 0x1F\n",
        )
        .unwrap();
        assert_eq!(v["a"], "04080176");
        assert_eq!(v["b"], 493);
        assert_eq!(v["c"], 1000);
        assert_eq!(v["d"], "1e5");
        assert_eq!(v["e"], 2.5);
        assert_eq!(v["f"], true);
        assert_eq!(v["g"], Value::Null);
        assert_eq!(v["h"], "12");
        assert_eq!(v["i"], 31);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let err = load(&text).unwrap_err();
        assert!(err.message.contains("deeper than 64"), "{err:?}");
        // The parser's own limit stops deeper texts before any is built.
        assert!(load(&"[".repeat(1_000_000)).is_err());
        let ok = format!("{}{}", "[".repeat(60), "]".repeat(60));
        assert!(load(&ok).is_ok());
    }
}
