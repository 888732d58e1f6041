//! Review rules: when a document needs a person although extraction is
//! sure of it. A bot's extract step lists them (`[[steps.review_if]]`), each
//! a test on one field's value, the reason a reviewer is shown, and who may
//! review it.

use chrono::{Days, NaiveDate};
use serde_json::Value;

use crate::config::{Problem, TableReader};

/// One rule: when `test` holds for `field`, a person reviews the document.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRule {
    pub field: String,
    pub test: RuleTest,
    /// What the reviewer is shown: the rule's own text.
    pub reason: String,
    /// Who may review a document this rule holds for: a role or a group.
    pub review_by: Option<String>,
}

/// What a rule checks of its field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleTest {
    /// A number greater than the limit.
    Above(f64),
    /// A number less than the limit.
    Below(f64),
    /// A value no finished job of the bot had in this field before.
    Unseen,
    /// A date outside the period.
    Outside(Period),
    /// A value that differs from the one at this dotted path of the job
    /// (`input.po_total`), or any value when the job has none there.
    DiffersFrom(String),
}

/// A period of dates; each end is a date or a number of days from the day
/// the rule is checked (`-45d`, `0d`), and either may be left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Option<Bound>,
    pub to: Option<Bound>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Date(NaiveDate),
    DaysFromToday(i64),
}

impl Bound {
    fn on(self, today: NaiveDate) -> Option<NaiveDate> {
        match self {
            Bound::Date(d) => Some(d),
            Bound::DaysFromToday(n) if n >= 0 => today.checked_add_days(Days::new(n as u64)),
            Bound::DaysFromToday(n) => today.checked_sub_days(Days::new(n.unsigned_abs())),
        }
    }

    fn parse(text: &str) -> Result<Option<Bound>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if let Some(days) = text.strip_suffix('d') {
            return days
                .trim_start_matches('+')
                .parse::<i64>()
                .ok()
                .filter(|n| n.unsigned_abs() <= 36_500)
                .map(|n| Some(Bound::DaysFromToday(n)))
                .ok_or_else(|| format!("`{text}` is not a number of days such as -45d"));
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|d| Some(Bound::Date(d)))
            .map_err(|_| {
                format!("`{text}` is neither a date such as 2026-11-01 nor days such as -45d")
            })
    }
}

impl std::str::FromStr for Period {
    type Err = String;

    /// `FROM..TO`, either end a date, days from today, or left out.
    fn from_str(text: &str) -> Result<Self, String> {
        let (from, to) = text
            .split_once("..")
            .ok_or_else(|| format!("must be a period such as \"-45d..0d\" or \"2026-11-01..2026-11-30\", found {text:?}"))?;
        let period = Period {
            from: Bound::parse(from)?,
            to: Bound::parse(to)?,
        };
        if period.from.is_none() && period.to.is_none() {
            return Err("must have at least one end, such as \"-45d..\"".to_string());
        }
        if let (Some(Bound::Date(a)), Some(Bound::Date(b))) = (period.from, period.to)
            && a > b
        {
            return Err(format!("starts after it ends ({a} is after {b})"));
        }
        Ok(period)
    }
}

impl Period {
    fn holds(&self, date: NaiveDate, today: NaiveDate) -> bool {
        let after_start = self
            .from
            .and_then(|b| b.on(today))
            .is_none_or(|f| date >= f);
        let before_end = self.to.and_then(|b| b.on(today)).is_none_or(|t| date <= t);
        after_start && before_end
    }
}

/// Read the `review_if` tables of an extract step.
pub fn read_rules(s: &mut TableReader<'_, '_>) -> Option<Vec<ReviewRule>> {
    let Some(tables) = s.array_of_tables("review_if", "review_if") else {
        return Some(Vec::new());
    };
    let mut rules = Vec::new();
    let mut all_read = true;
    for mut t in tables {
        match read_rule(&mut t) {
            Some(rule) => rules.push(rule),
            None => all_read = false,
        }
        t.finish();
    }
    all_read.then_some(rules)
}

fn read_rule(t: &mut TableReader<'_, '_>) -> Option<ReviewRule> {
    let field = t.required_with("field", |f: String| {
        if f.trim().is_empty() {
            Err(Problem::new("must name a field".to_string()))
        } else {
            Ok(f)
        }
    });
    let reason = t.required_with("reason", |r: String| {
        if r.trim().is_empty() {
            Err(Problem::new(
                "must say why a person should look".to_string(),
            ))
        } else {
            Ok(r)
        }
    });
    let review_by = t.optional_with("review_by", crate::config::valid_name);
    // Counted by presence, so a bad value is reported once, as itself.
    const TESTS: [&str; 5] = ["above", "below", "unseen", "outside", "differs_from"];
    let given = TESTS.iter().filter(|k| t.has(k)).count();
    let mut test = None;
    if let Some(n) = t.optional::<f64>("above") {
        test = Some(RuleTest::Above(n));
    }
    if let Some(n) = t.optional::<f64>("below") {
        test = Some(RuleTest::Below(n));
    }
    if let Some(true) = t.optional_with("unseen", |b: bool| {
        if b {
            Ok(b)
        } else {
            Err(Problem::new(
                "can only be true; leave it out otherwise".to_string(),
            ))
        }
    }) {
        test = Some(RuleTest::Unseen);
    }
    if let Some(period) = t.optional_with("outside", |p: String| {
        p.parse::<Period>().map_err(Problem::new)
    }) {
        test = Some(RuleTest::Outside(period));
    }
    if let Some(path) = t.optional::<String>("differs_from") {
        test = Some(RuleTest::DiffersFrom(path));
    }
    if given != 1 {
        let message = if given == 0 {
            "a review_if rule needs one test: `above`, `below`, `unseen`, `outside` or `differs_from`"
        } else {
            "a review_if rule takes one test; write two rules for two tests"
        };
        t.sink().error(t.start(), message.to_string(), None);
        test = None;
    }
    Some(ReviewRule {
        field: field?,
        test: test?,
        reason: reason?,
        // A bad one is reported; the bot does not load then.
        review_by,
    })
}

/// A rule that holds: why, and who may review.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub reason: String,
    pub review_by: Option<String>,
}

/// Check every rule but `unseen` ones (those need the job database; the
/// step asks it, then calls [`unseen_hit`]). `values` are the extracted
/// values, `job` the job document (`input`, `steps`).
pub fn check(rules: &[ReviewRule], values: &Value, job: &Value, today: NaiveDate) -> Vec<Hit> {
    rules
        .iter()
        .filter_map(|rule| {
            let value = values.get(&rule.field).filter(|v| !v.is_null());
            let verdict = match &rule.test {
                RuleTest::Unseen => return None,
                RuleTest::Above(limit) => number(value).map(|n| n > *limit),
                RuleTest::Below(limit) => number(value).map(|n| n < *limit),
                RuleTest::Outside(period) => date(value).map(|d| !period.holds(d, today)),
                RuleTest::DiffersFrom(path) => {
                    let other = lookup(job, path).filter(|v| !v.is_null());
                    match (value, other) {
                        (Some(v), Some(o)) => Ok(!same(v, o)),
                        (_, None) => Err(format!("the job has no `{path}` to compare with")),
                        (None, _) => Err("the field has no value".to_string()),
                    }
                }
            };
            match verdict {
                Ok(false) => None,
                Ok(true) => Some(hit(rule, None)),
                Err(why) => Some(hit(rule, Some(why))),
            }
        })
        .collect()
}

/// The hit of an `unseen` rule whose value was looked up: `seen` is `None`
/// when the field has no value to look up.
pub fn unseen_hit(rule: &ReviewRule, seen: Option<bool>) -> Option<Hit> {
    match seen {
        Some(true) => None,
        Some(false) => Some(hit(rule, None)),
        None => Some(hit(rule, Some("the field has no value".to_string()))),
    }
}

/// A value as `unseen` compares it: text without case and surrounding
/// spaces, other values as JSON. `None` when there is no value.
pub fn comparable(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_lowercase()),
        other => Some(other.to_string()),
    }
}

fn hit(rule: &ReviewRule, unchecked: Option<String>) -> Hit {
    let reason = match unchecked {
        None => rule.reason.clone(),
        Some(why) => format!(
            "{} (not checked: {why}; `{}` could not be tested)",
            rule.reason, rule.field
        ),
    };
    Hit {
        reason,
        review_by: rule.review_by.clone(),
    }
}

fn number(value: Option<&Value>) -> Result<f64, String> {
    match value {
        None => Err("the field has no value".to_string()),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{s:?} is not a number")),
        Some(other) => Err(format!("{other} is not a number")),
    }
}

fn date(value: Option<&Value>) -> Result<NaiveDate, String> {
    match value {
        None => Err("the field has no value".to_string()),
        Some(Value::String(s)) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("{s:?} is not a date")),
        Some(other) => Err(format!("{other} is not a date")),
    }
}

/// Numbers to the cent; anything else as `comparable` text.
fn same(a: &Value, b: &Value) -> bool {
    match (number(Some(a)), number(Some(b))) {
        (Ok(x), Ok(y)) => (x - y).abs() < 0.005,
        _ => comparable(Some(a)) == comparable(Some(b)),
    }
}

/// Follow a dotted path through a JSON document.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(field: &str, test: RuleTest) -> ReviewRule {
        ReviewRule {
            field: field.into(),
            test,
            reason: format!("{field} rule"),
            review_by: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn reasons(rules: &[ReviewRule], values: Value, job: Value) -> Vec<String> {
        check(rules, &values, &job, day("2026-11-20"))
            .into_iter()
            .map(|h| h.reason)
            .collect()
    }

    #[test]
    fn limits_hold_only_past_them() {
        let rules = [rule("amount", RuleTest::Above(10_000.0))];
        assert!(reasons(&rules, json!({"amount": 10_000.0}), json!({})).is_empty());
        assert_eq!(
            reasons(&rules, json!({"amount": 10_000.01}), json!({})),
            ["amount rule"]
        );
        let below = [rule("amount", RuleTest::Below(1.0))];
        assert_eq!(
            reasons(&below, json!({"amount": 0.5}), json!({})),
            ["amount rule"]
        );
        assert!(reasons(&below, json!({"amount": "1.00"}), json!({})).is_empty());
    }

    #[test]
    fn a_rule_that_cannot_be_checked_sends_to_review_saying_why() {
        let rules = [rule("amount", RuleTest::Above(100.0))];
        let got = reasons(&rules, json!({"amount": null}), json!({}));
        assert_eq!(got.len(), 1);
        assert!(
            got[0].contains("not checked: the field has no value"),
            "{got:?}"
        );
        let got = reasons(&rules, json!({"amount": "lots"}), json!({}));
        assert!(got[0].contains("\"lots\" is not a number"), "{got:?}");
    }

    #[test]
    fn periods_count_days_from_the_day_checked() {
        let period: Period = "-45d..0d".parse().unwrap();
        let rules = [rule("date", RuleTest::Outside(period))];
        let today = json!({});
        assert!(reasons(&rules, json!({"date": "2026-11-20"}), today.clone()).is_empty());
        assert!(reasons(&rules, json!({"date": "2026-10-06"}), today.clone()).is_empty());
        assert_eq!(
            reasons(&rules, json!({"date": "2026-10-05"}), today.clone()).len(),
            1
        );
        assert_eq!(
            reasons(&rules, json!({"date": "2026-11-21"}), today.clone()).len(),
            1
        );
        let fixed: Period = "2026-11-01..".parse().unwrap();
        let rules = [rule("date", RuleTest::Outside(fixed))];
        assert!(reasons(&rules, json!({"date": "2027-01-01"}), today.clone()).is_empty());
        assert_eq!(
            reasons(&rules, json!({"date": "2026-10-31"}), today).len(),
            1
        );
    }

    #[test]
    fn bad_periods_are_refused() {
        for bad in [
            "",
            "..",
            "2026-11-01",
            "x..0d",
            "2026-12-01..2026-11-01",
            "-9999999d..",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn differs_from_compares_to_the_cent_and_without_case() {
        let rules = [rule(
            "amount",
            RuleTest::DiffersFrom("input.po_total".into()),
        )];
        let job = json!({"input": {"po_total": "1250.00"}});
        assert!(reasons(&rules, json!({"amount": 1250.001}), job.clone()).is_empty());
        assert_eq!(reasons(&rules, json!({"amount": 1250.10}), job).len(), 1);
        let missing = reasons(&rules, json!({"amount": 1250}), json!({"input": {}}));
        assert!(missing[0].contains("no `input.po_total`"), "{missing:?}");
        let names = [rule("issuer", RuleTest::DiffersFrom("input.vendor".into()))];
        let job = json!({"input": {"vendor": " ACME GmbH "}});
        assert!(reasons(&names, json!({"issuer": "Acme GmbH"}), job).is_empty());
    }

    #[test]
    fn unseen_values_are_compared_without_case() {
        assert_eq!(
            comparable(Some(&json!(" Acme GmbH"))),
            Some("acme gmbh".into())
        );
        assert_eq!(comparable(Some(&json!(null))), None);
        let r = rule("issuer", RuleTest::Unseen);
        assert!(unseen_hit(&r, Some(true)).is_none());
        assert_eq!(unseen_hit(&r, Some(false)).unwrap().reason, "issuer rule");
        assert!(unseen_hit(&r, None).unwrap().reason.contains("not checked"));
    }
}
