//! Template YAML to JSON, within bounds.
//!
//! YAML aliases repeat a node by reference, so a few lines can stand for
//! billions of values ("billion laughs"), and the loader copies every
//! repeat. A template is first walked event by event, counting what it
//! would expand to and how deep it nests; one over the bounds is refused
//! with an error before anything is built.

use serde_json::Value;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlLoader};

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
pub fn load(text: &str) -> Result<Value, YamlError> {
    check_bounds(text)?;
    let docs = YamlLoader::load_from_str(text).map_err(|e| YamlError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    Ok(docs.first().map(to_json).unwrap_or(Value::Null))
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

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
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
