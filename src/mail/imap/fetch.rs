//! Reading the answer to `UID FETCH … (UID BODY.PEEK[])`: untagged
//! `* n FETCH (…)` responses, each carrying a message as a literal, then the
//! tagged status. A literal (`{size}` at the end of a line) is read whole,
//! by its size, so a message costs the same whatever its number of lines.

use std::io::{BufRead, Read};

use super::{Fetched, ImapError};

/// Larger literals are refused: no mailbox stores such messages, and a
/// broken server must not make clerk allocate what it claims.
const LARGEST_LITERAL: u64 = 1 << 30;

/// One response: its lines' text, with each literal after the line that
/// announced it.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Text(Vec<u8>),
    Literal(Vec<u8>),
}

fn lost(e: std::io::Error) -> ImapError {
    ImapError::Connection(e.to_string())
}

/// `{123}` or `{123+}` at the end of a line: the size of the literal that
/// follows, and the line without it.
fn literal_marker(line: &[u8]) -> Option<(u64, &[u8])> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((size, &line[..open]))
}

fn read_response(reader: &mut impl BufRead) -> Result<Vec<Part>, ImapError> {
    let mut parts = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).map_err(lost)? == 0 {
            return Err(ImapError::Connection("the connection was lost".into()));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        match literal_marker(&line) {
            Some((size, text)) => {
                if size > LARGEST_LITERAL {
                    return Err(ImapError::Connection(format!(
                        "the server announced a literal of {size} bytes"
                    )));
                }
                parts.push(Part::Text(text.to_vec()));
                let mut literal = Vec::with_capacity(size.min(64 << 20) as usize);
                reader.take(size).read_to_end(&mut literal).map_err(lost)?;
                if literal.len() as u64 != size {
                    return Err(ImapError::Connection(
                        "the connection was lost in the middle of a message".into(),
                    ));
                }
                parts.push(Part::Literal(literal));
            }
            None => {
                parts.push(Part::Text(line));
                return Ok(parts);
            }
        }
    }
}

/// The number after `UID ` in the response's text.
fn uid_of(parts: &[Part]) -> Option<u32> {
    parts.iter().find_map(|p| match p {
        Part::Text(t) => {
            let upper = t.to_ascii_uppercase();
            let at = upper.windows(4).position(|w| w == b"UID ")? + 4;
            let digits: Vec<u8> = t[at..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            std::str::from_utf8(&digits).ok()?.parse().ok()
        }
        Part::Literal(_) => None,
    })
}

/// The message: the literal after `BODY[]`, or a quoted string there.
/// `None` for `BODY[] NIL` (the message is gone).
fn body_of(parts: Vec<Part>) -> Option<Vec<u8>> {
    let mut after_body = false;
    for part in parts {
        match part {
            Part::Text(t) => {
                let upper = t.to_ascii_uppercase();
                let Some(at) = upper.windows(6).rposition(|w| w == b"BODY[]") else {
                    after_body = false;
                    continue;
                };
                let rest = t[at + 6..].trim_ascii_start();
                if rest.is_empty() {
                    after_body = true;
                } else if let Some(quoted) = rest.strip_prefix(b"\"") {
                    return Some(unquote(quoted));
                } else {
                    return None;
                }
            }
            Part::Literal(l) if after_body => return Some(l),
            Part::Literal(_) => {}
        }
    }
    None
}

/// The text of a quoted string whose opening quote is gone.
fn unquote(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = text.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.extend(bytes.next()),
            b'"' => break,
            other => out.push(other),
        }
    }
    out
}

/// Read untagged FETCH responses until the status tagged `tag`.
pub(super) fn read_answer(reader: &mut impl BufRead, tag: &str) -> Result<Vec<Fetched>, ImapError> {
    let mut out = Vec::new();
    let tagged = format!("{tag} ");
    loop {
        let parts = read_response(reader)?;
        let Some(Part::Text(first)) = parts.first() else {
            continue;
        };
        let text = String::from_utf8_lossy(first).into_owned();
        if let Some(status) = text.strip_prefix(&tagged) {
            return if status
                .get(..2)
                .is_some_and(|s| s.eq_ignore_ascii_case("OK"))
            {
                Ok(out)
            } else {
                Err(ImapError::Refused {
                    command: "UID FETCH".into(),
                    reason: status.to_string(),
                })
            };
        }
        let upper = text.to_ascii_uppercase();
        if upper.starts_with("* BYE") {
            return Err(ImapError::Connection(format!(
                "the server closed the session: {}",
                text.trim()
            )));
        }
        if upper.starts_with("* ") && upper.contains(" FETCH (") {
            let uid = uid_of(&parts);
            if let (Some(uid), Some(raw)) = (uid, body_of(parts)) {
                out.push(Fetched { uid, raw });
            }
        }
        // Anything else (`* 3 EXISTS`, a FETCH of flags only) is news this
        // reader does not need.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &[u8]) -> Result<Vec<Fetched>, ImapError> {
        read_answer(&mut std::io::Cursor::new(text.to_vec()), "c7")
    }

    #[test]
    fn literals_are_taken_whole_whatever_they_hold() {
        let got = answer(
            b"* 1 FETCH (UID 5 BODY[] {11}\r\nline\r\n{3}\r\n)\r\n\
              * 4 EXISTS\r\n\
              * 2 FETCH (BODY[] {2}\r\nab UID 9)\r\n\
              * 3 FETCH (UID 11 FLAGS (\\Seen))\r\n\
              c7 OK Fetch completed.\r\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                Fetched {
                    uid: 5,
                    raw: b"line\r\n{3}\r\n".to_vec()
                },
                Fetched {
                    uid: 9,
                    raw: b"ab".to_vec()
                },
            ]
        );
    }

    #[test]
    fn quoted_and_vanished_messages() {
        let got = answer(
            b"* 1 FETCH (UID 5 BODY[] \"a \\\"b\\\"\")\r\n\
              * 2 FETCH (UID 6 BODY[] NIL)\r\n\
              c7 OK done\r\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [Fetched {
                uid: 5,
                raw: b"a \"b\"".to_vec()
            }]
        );
    }

    #[test]
    fn refusals_and_cut_connections_are_told_apart() {
        let refused = answer(b"c7 NO [SERVERBUG] Internal error\r\n").unwrap_err();
        assert!(matches!(refused, ImapError::Refused { .. }), "{refused:?}");
        let cut = answer(b"* 1 FETCH (UID 5 BODY[] {100}\r\nonly this").unwrap_err();
        assert!(cut.is_transient(), "{cut:?}");
        let bye = answer(b"* BYE shutting down\r\n").unwrap_err();
        assert!(bye.is_transient(), "{bye:?}");
        let huge = answer(b"* 1 FETCH (UID 5 BODY[] {99999999999}\r\n").unwrap_err();
        assert!(huge.to_string().contains("99999999999"), "{huge}");
    }
}
