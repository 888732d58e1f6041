//! Turning matched text into typed values: numbers with the template's
//! decimal separator, and dates in the template's formats and languages.

use chrono::NaiveDate;

/// Parse an amount as invoice2data does: the decimal separator becomes the
/// point, every other `.`, `,`, `'` or space is a thousands separator.
/// A currency sign or code around the number is ignored.
/// Why a number that parses may have been read with the wrong decimal
/// separator: `228,56` with `.` reads as 22856, though `,56` looks like
/// cents.
pub fn separator_doubt(raw: &str, decimal_separator: char) -> Option<String> {
    let other = if decimal_separator == '.' { ',' } else { '.' };
    let body = raw.trim();
    let i = body.rfind(other)?;
    let rest = &body[i + 1..];
    if rest.contains(decimal_separator) {
        return None;
    }
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let after = rest[digits..].trim_start();
    ((1..=2).contains(&digits) && !after.starts_with(|c: char| c.is_ascii_digit())).then(|| {
        format!(
            "`{body}` was read with the decimal separator `{decimal_separator}`, but `{other}{}` looks like decimals",
            &rest[..digits]
        )
    })
}

/// A value as a person reads it: a string without its quotes, anything
/// else as JSON.
pub fn as_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A number as printed: thousands separators (`.` `,` `'` and spaces) and
/// the decimal separator the template names; a currency sign or code
/// before or after it; negative with a leading or trailing minus (`-`, or
/// the typographic `−`), or in accounting's parentheses, as credit notes
/// print it: `(1.234,50)`.
pub fn parse_number(raw: &str, decimal_separator: char) -> Result<f64, String> {
    let trimmed = raw.trim();
    let (parenthesised, inner) = match trimmed.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        Some(inner) => (true, inner),
        None => (false, trimmed),
    };
    let minus = inner.replace('\u{2212}', "-");
    // A currency sign or code before or after the number is not part of it.
    let mut body = minus.trim();
    for _ in 0..2 {
        body = body
            .trim_matches(|c: char| matches!(c, '€' | '$' | '£' | '¥' | '₣') || c.is_whitespace())
            .trim();
        let code = |s: &str| s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase());
        if let Some((head, tail)) = body.split_once(char::is_whitespace)
            && code(head)
        {
            body = tail.trim();
        }
        if let Some((head, tail)) = body.rsplit_once(char::is_whitespace)
            && code(tail)
        {
            body = head.trim();
        }
    }
    let separator = |c: char| matches!(c, '.' | ',' | '\'' | ' ' | '\u{a0}' | '\u{202f}');
    if let Some(bad) = body
        .chars()
        .find(|&c| !(c.is_ascii_digit() || separator(c) || c == '-'))
    {
        return Err(format!("`{trimmed}` is not a number (it has `{bad}`)"));
    }
    if !body.chars().any(|c| c.is_ascii_digit()) {
        return Err(format!("`{trimmed}` is not a number"));
    }
    if body.matches(decimal_separator).count() > 1 {
        return Err(format!(
            "`{trimmed}` has the decimal separator `{decimal_separator}` more than once"
        ));
    }
    let negative = body.starts_with('-') || body.ends_with('-');
    if negative && parenthesised {
        return Err(format!("`{trimmed}` is negative twice"));
    }
    let negative = negative || parenthesised;
    let mut normal = String::new();
    for c in body.chars() {
        if c == decimal_separator {
            normal.push('.');
        } else if c.is_ascii_digit() {
            normal.push(c);
        }
    }
    let value: f64 = normal
        .parse()
        .map_err(|_| format!("`{trimmed}` is not a number"))?;
    Ok(if negative { -value } else { value })
}

const MONTHS: &[(&str, u32)] = &[
    // English
    ("january", 1),
    ("february", 2),
    ("march", 3),
    ("april", 4),
    ("may", 5),
    ("june", 6),
    ("july", 7),
    ("august", 8),
    ("september", 9),
    ("october", 10),
    ("november", 11),
    ("december", 12),
    // German
    ("januar", 1),
    ("jänner", 1),
    ("februar", 2),
    ("märz", 3),
    ("maerz", 3),
    ("juni", 6),
    ("juli", 7),
    ("oktober", 10),
    ("dezember", 12),
    // French
    ("janvier", 1),
    ("février", 2),
    ("fevrier", 2),
    ("mars", 3),
    ("avril", 4),
    ("mai", 5),
    ("juin", 6),
    ("juillet", 7),
    ("août", 8),
    ("aout", 8),
    ("septembre", 9),
    ("octobre", 10),
    ("novembre", 11),
    ("décembre", 12),
    ("decembre", 12),
    // Dutch
    ("januari", 1),
    ("februari", 2),
    ("maart", 3),
    ("mei", 5),
    ("augustus", 8),
];

/// The month a word names, by full name or a prefix of at least three letters.
fn month(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_lowercase();
    if w.chars().count() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .find(|(name, _)| *name == w)
        .or_else(|| MONTHS.iter().find(|(name, _)| name.starts_with(&w)))
        .map(|(_, m)| *m)
}

/// Python's strptime directives that chrono spells the same; the rest are
/// reported as unsupported.
fn chrono_format(python: &str) -> String {
    python.replace("%-d", "%e").replace("%-m", "%m")
}

/// Parse a date: first with the template's `date_formats` (strptime style),
/// then day-first numeric forms (`14.03.2026`, `14-03-2026`, `14/03/26`),
/// ISO (`2026-03-14`), and forms with a month name in English, German, French
/// or Dutch (`March 14, 2026`, `14. März 2026`, `14 mars 2026`).
pub fn parse_date(raw: &str, formats: &[String]) -> Result<NaiveDate, String> {
    let s = raw.trim();
    for f in formats {
        if let Ok(d) = NaiveDate::parse_from_str(s, &chrono_format(f)) {
            return Ok(d);
        }
    }
    for f in [
        "%Y-%m-%d", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%Y", "%d.%m.%y", "%d-%m-%y", "%d/%m/%y",
        "%Y/%m/%d",
    ] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return Ok(d);
        }
    }
    // Words and numbers: a month name with a day and a four-digit year.
    let parts: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .filter(|p| !p.is_empty())
        .collect();
    let mut day = None;
    let mut mon = None;
    let mut year = None;
    for p in parts {
        let p = p.trim_end_matches('.');
        if let Ok(n) = p.parse::<i32>() {
            if p.len() == 4 {
                year = Some(n);
            } else if (1..=31).contains(&n) && day.is_none() {
                day = Some(n as u32);
            }
        } else if let Some(m) = month(p) {
            mon = Some(m);
        }
    }
    if let (Some(d), Some(m), Some(y)) = (day, mon, year)
        && let Some(date) = NaiveDate::from_ymd_opt(y, m, d)
    {
        return Ok(date);
    }
    Err(format!("`{s}` is not a date in a known format"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_that_contradict_the_template_are_doubted() {
        assert!(separator_doubt("228,56", '.').is_some());
        assert!(separator_doubt("1.234,56 EUR", '.').is_some());
        assert!(separator_doubt("228.56", ',').is_some());
        assert!(separator_doubt("1,234.56", '.').is_none());
        assert!(separator_doubt("1,234", '.').is_none());
        assert!(separator_doubt("1.234,56", ',').is_none());
        assert!(separator_doubt("228.56", '.').is_none());
    }

    #[test]
    fn numbers_follow_the_decimal_separator() {
        assert_eq!(parse_number("1.234,50", ','), Ok(1234.5));
        assert_eq!(parse_number("1,234.50", '.'), Ok(1234.5));
        assert_eq!(parse_number("12 404,34 EUR", ','), Ok(12404.34));
        assert_eq!(parse_number("€ 61,25", ','), Ok(61.25));
        assert_eq!(parse_number("1'000.00", '.'), Ok(1000.0));
        assert_eq!(parse_number("-5,00", ','), Ok(-5.0));
        assert_eq!(parse_number("USD 1,234.50", '.'), Ok(1234.5));
        // Credit notes: a trailing minus, a typographic minus, parentheses.
        assert_eq!(parse_number("250,00-", ','), Ok(-250.0));
        assert_eq!(parse_number("\u{2212}1.234,50 EUR", ','), Ok(-1234.5));
        assert_eq!(parse_number("(1,234.50)", '.'), Ok(-1234.5));
        assert_eq!(parse_number("($ 1,234.50)", '.'), Ok(-1234.5));
        assert!(
            parse_number("(-5.00)", '.')
                .unwrap_err()
                .contains("negative twice")
        );
        assert!(parse_number("(5.00", '.').unwrap_err().contains("has `(`"));
        // An OCR misreading is refused, not read as 6125.
        assert!(parse_number("61:25", ',').unwrap_err().contains("has `:`"));
        assert!(
            parse_number("1,2,3", ',')
                .unwrap_err()
                .contains("more than once")
        );
        assert!(parse_number("n/a", '.').is_err());
    }

    #[test]
    fn dates_in_template_formats_and_common_forms() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 14).unwrap();
        assert_eq!(parse_date("14.03.2026", &[]), Ok(d));
        assert_eq!(parse_date("14-03-2026", &[]), Ok(d));
        assert_eq!(parse_date("14/03/2026", &[]), Ok(d));
        assert_eq!(parse_date("2026-03-14", &[]), Ok(d));
        assert_eq!(parse_date("March 14, 2026", &[]), Ok(d));
        assert_eq!(parse_date("14. März 2026", &[]), Ok(d));
        assert_eq!(parse_date("14 mars 2026", &[]), Ok(d));
        assert_eq!(parse_date("14 maart 2026", &[]), Ok(d));
        assert_eq!(parse_date("03/14/2026", &["%m/%d/%Y".into()]), Ok(d));
        assert!(parse_date("61:25", &[]).is_err());
    }
}
