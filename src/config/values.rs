//! The value types a TOML value can be read as, and the checks shared by
//! several tables (names, durations, secret references).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use toml::de::{DeInteger, DeValue};

use super::table::Problem;

/// Longest name of a bot or a step.
pub const MAX_NAME_LEN: usize = 64;

/// A bot's or a step's name: what jobs, outputs and messages call it by.
pub fn valid_name(name: String) -> Result<String, Problem> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if name.len() > MAX_NAME_LEN {
        Err(format!(
            "must be at most {MAX_NAME_LEN} characters long, found {} characters",
            name.chars().count()
        )
        .into())
    } else if !first_ok || !rest_ok {
        Err(Problem::new(format!(
            "must start with a lowercase letter or digit and hold only a-z, 0-9, `_` and `-`, found {name:?}"
        ))
        .hint("e.g. \"invoice-intake\""))
    } else {
        Ok(name)
    }
}

/// A duration longer than zero (timeouts, backoffs).
pub fn positive(d: Duration) -> Result<Duration, Problem> {
    if d.is_zero() {
        Err("must be a duration longer than zero".to_string().into())
    } else {
        Ok(d)
    }
}

/// A period of at least one second (poll and rescan intervals).
pub fn at_least_a_second(d: Duration) -> Result<Duration, Problem> {
    if d < Duration::from_secs(1) {
        Err(format!(
            "must be at least 1s, found {}",
            humantime::format_duration(d)
        )
        .into())
    } else {
        Ok(d)
    }
}

/// A password: only ever a `${secret:NAME}` reference.
pub fn secret_reference(p: String) -> Result<String, Problem> {
    if p.trim_start().starts_with("${secret:") {
        super::secrets::check_references(&p).map_err(Problem::new)?;
        Ok(p)
    } else {
        Err(Problem::new(
            "must name a secret, such as \"${secret:MAIL_PASSWORD}\"; a bot file never holds a password"
                .to_string(),
        ))
    }
}

/// `${secret:NAME}` references in a value must be well formed.
pub fn references(value: &str) -> Result<(), Problem> {
    super::secrets::check_references(value)
        .map_err(|m| Problem::new(format!("has a bad reference: {m}")))
}

/// A type a TOML value can be read as.
pub trait FromToml: Sized {
    /// What the value must be, as said after "must be".
    const EXPECTED: &'static str;

    fn from_toml(value: &DeValue) -> Result<Self, Problem>;

    /// The usual problem: a value of the wrong type or range.
    fn mismatch(value: &DeValue) -> Problem {
        Problem::new(format!(
            "must be {}, found {}",
            Self::EXPECTED,
            found(value)
        ))
    }
}

/// What a value is, for messages: `string "five"`, `integer 0`, `a table`.
pub fn found(value: &DeValue) -> String {
    match value {
        DeValue::String(s) => format!("string {s:?}"),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

fn integer(i: &DeInteger) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

impl FromToml for String {
    const EXPECTED: &'static str = "a string";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        match value {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(Self::mismatch(other)),
        }
    }
}

impl FromToml for Vec<String> {
    const EXPECTED: &'static str = "an array of strings";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        let DeValue::Array(items) = value else {
            return Err(Self::mismatch(value));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok(s.to_string()),
                other => Err(Problem::new(format!(
                    "must be {}, found {} in it",
                    Self::EXPECTED,
                    found(other)
                ))),
            })
            .collect()
    }
}

impl FromToml for BTreeMap<String, String> {
    const EXPECTED: &'static str = "a table of strings";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        let DeValue::Table(table) = value else {
            return Err(Self::mismatch(value));
        };
        table
            .iter()
            .map(|(k, v)| match v.get_ref() {
                DeValue::String(s) => Ok((k.get_ref().to_string(), s.to_string())),
                other => Err(Problem::new(format!(
                    "must be {}, found {} at `{}`",
                    Self::EXPECTED,
                    found(other),
                    k.get_ref()
                ))),
            })
            .collect()
    }
}

/// An integer >= 1 that fits a `u32`.
pub struct Positive(pub u32);

impl FromToml for Positive {
    const EXPECTED: &'static str = "a positive integer";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        match value {
            DeValue::Integer(i) => match integer(i).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= 1 => Ok(Positive(n)),
                _ => Err(Self::mismatch(value)),
            },
            other => Err(Self::mismatch(other)),
        }
    }
}

/// A number from 0 to 1; integers are accepted, `jitter = 1` is natural.
pub struct Fraction(pub f64);

impl FromToml for Fraction {
    const EXPECTED: &'static str = "a number from 0 to 1";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        let number = match value {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => integer(i).map(|n| n as f64),
            _ => None,
        };
        match number {
            // `contains` is false for NaN, which is thus rejected too.
            Some(n) if (0.0..=1.0).contains(&n) => Ok(Fraction(n)),
            _ => Err(Self::mismatch(value)),
        }
    }
}

impl FromToml for f64 {
    const EXPECTED: &'static str = "a number";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        let number = match value {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => integer(i).map(|n| n as f64),
            _ => None,
        };
        number
            .filter(|n| n.is_finite())
            .ok_or_else(|| Self::mismatch(value))
    }
}

impl FromToml for bool {
    const EXPECTED: &'static str = "true or false";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        match value {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(Self::mismatch(other)),
        }
    }
}

impl FromToml for Duration {
    const EXPECTED: &'static str = "a duration such as \"10s\" or \"5m\"";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        match value {
            DeValue::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                Problem::new(format!(
                    "must be {}, found {:?}: {e}",
                    Self::EXPECTED,
                    s.as_ref()
                ))
            }),
            DeValue::Integer(_) | DeValue::Float(_) => {
                Err(Self::mismatch(value)
                    .hint("write durations as strings with a unit, e.g. \"30s\""))
            }
            other => Err(Self::mismatch(other)),
        }
    }
}

/// A table turned into a JSON object (trigger input).
pub struct JsonTable(pub Json);

impl FromToml for JsonTable {
    const EXPECTED: &'static str = "a table such as { folder = \"in\" }";

    fn from_toml(value: &DeValue) -> Result<Self, Problem> {
        if !matches!(value, DeValue::Table(_)) {
            return Err(Self::mismatch(value));
        }
        to_json(value)
            .map(JsonTable)
            .map_err(|what| Problem::new(format!("cannot be turned into JSON: {what}")))
    }
}

fn to_json(value: &DeValue) -> Result<Json, String> {
    Ok(match value {
        DeValue::String(s) => Json::String(s.to_string()),
        DeValue::Integer(i) => {
            Json::from(integer(i).ok_or_else(|| format!("integer {i} is too large"))?)
        }
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("float {f} has no JSON form"))?,
        DeValue::Boolean(b) => Json::Bool(*b),
        // JSON has no dates; the TOML text form is what a step would parse.
        DeValue::Datetime(d) => Json::String(d.to_string()),
        DeValue::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| to_json(item.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(table) => Json::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), to_json(v.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}
