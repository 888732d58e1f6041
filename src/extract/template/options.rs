//! Reading a template's `options` and a field's `area`.

use serde_json::Value;

use super::read::{Reader, strings};
use super::{Area, Options, keys};
use crate::extract::yaml::child;

impl Reader<'_> {
    /// clerk's `area: {page, x0, y0, x1, y1}` in points, or invoice2data's
    /// `area: {f, l, r, x, y, W, H}`: pages `f` to `l`, a box at `x`, `y`
    /// of `W` × `H` pixels at `r` dpi.
    pub(super) fn area(&mut self, v: &Value, pointer: &str, what: &str) -> Option<Area> {
        let map = v.as_object();
        let i2d = map.is_some_and(|m| keys::I2D_AREA.iter().any(|k| m.contains_key(*k)));
        let n = |k: &str| map.and_then(|m| m.get(k)).and_then(Value::as_f64);
        let area = if i2d {
            let all: Option<Vec<f64>> = keys::I2D_AREA.iter().map(|k| n(k)).collect();
            all.and_then(|v| {
                let (f, l, r, x, y, w, h) = (v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
                let scale = 72.0 / r;
                (r > 0.0 && w > 0.0 && h > 0.0 && f >= 1.0 && l >= f).then_some(Area {
                    first_page: f as u32,
                    last_page: l as u32,
                    bbox: crate::documents::BBox {
                        x0: x * scale,
                        y0: y * scale,
                        x1: (x + w) * scale,
                        y1: (y + h) * scale,
                    },
                    touching: true,
                })
            })
        } else {
            let bbox = (|| {
                Some(crate::documents::BBox {
                    x0: n("x0")?,
                    y0: n("y0")?,
                    x1: n("x1")?,
                    y1: n("y1")?,
                })
            })();
            let page = map
                .and_then(|m| m.get("page"))
                .map_or(Some(1), Value::as_u64)
                .and_then(|p| u32::try_from(p).ok());
            match (bbox, page) {
                (Some(b), Some(page)) if b.x0 < b.x1 && b.y0 < b.y1 => Some(Area {
                    first_page: page.max(1),
                    last_page: page.max(1),
                    bbox: b,
                    touching: false,
                }),
                _ => None,
            }
        };
        if area.is_none() {
            self.error(pointer, format!(
                "{what}: `area` must be {{page, x0, y0, x1, y1}} in points from the top left (x0 < x1, y0 < y1), or invoice2data's {{f, l, r, x, y, W, H}}"
            ));
        } else if let Some(m) = map {
            let known = if i2d {
                keys::I2D_AREA
            } else {
                keys::CLERK_AREA
            };
            self.unknown_keys(m, pointer, known);
        }
        area
    }

    pub(super) fn options(&mut self, v: Option<&Value>) -> Options {
        let mut o = Options::default();
        let map = match v {
            None | Some(Value::Null) => return o,
            Some(Value::Object(map)) => map,
            Some(_) => {
                self.error("/options", "`options` must be a mapping of option: value");
                return o;
            }
        };
        let mut known = keys::OPTIONS.to_vec();
        if map.contains_key("priority") {
            known.push("priority");
            self.warn(
                "/options/priority",
                "`priority` has no effect among the options",
                Some("move it to the top level of the template".into()),
            );
        }
        self.unknown_keys(map, "/options", &known);
        let at = |k: &str| child("/options", k);
        // invoice2data tests an option as Python does: a non-empty list or
        // text is true. Read so, and say so.
        let flag = |r: &mut Self, k: &str| match map.get(k) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                let truthy = match other {
                    Value::Null => false,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::String(s) => !s.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    Value::Bool(b) => *b,
                };
                r.warn(&at(k), format!("options.{k} should be true or false; {other} is read as {truthy}, as invoice2data reads it"), None);
                Some(truthy)
            }
        };
        o.remove_whitespace = flag(self, "remove_whitespace").unwrap_or(false);
        o.remove_accents = flag(self, "remove_accents").unwrap_or(false);
        o.lowercase = flag(self, "lowercase").unwrap_or(false);
        o.cross_checks = flag(self, "cross_checks").unwrap_or(true);
        match map.get("currency") {
            None => {}
            Some(Value::String(c)) => o.currency = c.clone(),
            Some(_) => self.error(
                &at("currency"),
                "options.currency must be text, such as EUR",
            ),
        }
        for (k, list) in [
            ("date_formats", &mut o.date_formats),
            ("languages", &mut o.languages),
        ] {
            match map.get(k).map(strings) {
                None => {}
                Some(Some(v)) => *list = v,
                Some(None) => self.error(
                    &at(k),
                    format!("options.{k} must be a text or a list of texts"),
                ),
            }
        }
        match map.get("decimal_separator").map(Value::as_str) {
            None => {}
            Some(Some(".")) => o.decimal_separator = '.',
            Some(Some(",")) => o.decimal_separator = ',',
            Some(_) => self.error(
                &at("decimal_separator"),
                "options.decimal_separator must be \".\" or \",\"",
            ),
        }
        match map.get("replace") {
            None => {}
            Some(Value::Array(pairs)) => {
                for (i, pair) in pairs.iter().enumerate() {
                    let pointer = child(&at("replace"), &i.to_string());
                    match strings(pair).filter(|p| p.len() == 2) {
                        Some(p) => {
                            if let Some(r) =
                                self.regex(&p[0], &child(&pointer, "0"), "options.replace")
                            {
                                o.replace.push((r, p[1].clone()));
                            }
                        }
                        None => self.error(
                            &pointer,
                            "options.replace must be a list of [regex, replacement] pairs",
                        ),
                    }
                }
            }
            Some(_) => self.error(
                &at("replace"),
                "options.replace must be a list of [regex, replacement] pairs",
            ),
        }
        o
    }
}
