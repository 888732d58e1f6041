//! The process-health report process owners review each month: per bot,
//! volume, straight-through rate, exceptions by kind, cycle time, review
//! effort, the top failure reasons with example jobs, and the trend
//! against the period before. As JSON, CSV (one row per bot and one for
//! all) or one self-contained HTML file with its charts.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Serialize;

use super::charts::{self, Bar};
use super::{BotFigures, Overview};
use crate::jobs::Ending;

/// A period's figures beside those of the period before.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub current: Overview,
    pub previous: Overview,
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{:.1}%", r * 100.0))
}

fn secs(s: Option<f64>) -> String {
    let Some(s) = s else {
        return "–".into();
    };
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86_400.0)
    }
}

/// The change of a rate, in percentage points: `+2.5 pp`.
fn points(now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(a), Some(b)) => format!("{:+.1} pp", (a - b) * 100.0),
        _ => "–".into(),
    }
}

/// The change of an amount, relative: `+12%`.
fn relative(now: f64, before: f64) -> String {
    if before == 0.0 {
        return if now == 0.0 {
            "±0%".into()
        } else {
            "new".into()
        };
    }
    format!("{:+.0}%", (now - before) / before * 100.0)
}

impl Report {
    fn previous_of(&self, bot: &str) -> Option<&BotFigures> {
        if bot == self.current.overall.bot {
            return Some(&self.previous.overall);
        }
        self.previous.bots.iter().find(|b| b.bot == bot)
    }

    /// Every bot, then all of them together (unless the report is of one).
    fn rows(&self) -> Vec<&BotFigures> {
        let overall = &self.current.overall;
        let mut rows: Vec<&BotFigures> = self.current.bots.iter().collect();
        if !rows.iter().any(|b| b.bot == overall.bot) {
            rows.push(overall);
        }
        rows
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec![
            "bot",
            "from",
            "to",
            "documents_in",
            "finished",
            "succeeded",
            "straight_through",
            "straight_through_rate",
            "exception_rate",
        ];
        let kinds: Vec<String> = Ending::EXCEPTIONS
            .iter()
            .map(|e| format!("{}_rate", e.as_str()))
            .collect();
        header.extend(kinds.iter().map(String::as_str));
        header.extend([
            "cancelled",
            "cycle_p50_seconds",
            "cycle_p95_seconds",
            "queue_wait_p50_seconds",
            "run_p50_seconds",
            "review_wait_p50_seconds",
            "review_wait_p95_seconds",
            "reviewed",
            "review_actions",
            "previous_documents_in",
            "previous_straight_through_rate",
            "previous_exception_rate",
            "previous_cycle_p50_seconds",
        ]);
        let _ = w.write_record(&header);
        let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
        for b in self.rows() {
            let f = &b.figures;
            let p = self.previous_of(&b.bot).map(|p| &p.figures);
            let mut row = vec![
                b.bot.clone(),
                self.current.from.clone(),
                self.current.to.clone(),
                f.documents_in.to_string(),
                f.finished.to_string(),
                f.succeeded.to_string(),
                f.straight_through.to_string(),
                num(f.straight_through_rate),
                num(f.exception_rate),
            ];
            row.extend(Ending::EXCEPTIONS.iter().map(|e| num(f.rate_of(*e))));
            row.extend([
                f.cancelled.to_string(),
                num(f.cycle.p50_seconds),
                num(f.cycle.p95_seconds),
                num(f.queue_wait.p50_seconds),
                num(f.run.p50_seconds),
                num(f.review_wait.p50_seconds),
                num(f.review_wait.p95_seconds),
                f.reviewed.to_string(),
                f.review_actions.to_string(),
                p.map(|p| p.documents_in.to_string()).unwrap_or_default(),
                num(p.and_then(|p| p.straight_through_rate)),
                num(p.and_then(|p| p.exception_rate)),
                num(p.and_then(|p| p.cycle.p50_seconds)),
            ]);
            let _ = w.write_record(&row);
        }
        w.into_inner()
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// One HTML file with its style and charts inside: it can be mailed,
    /// archived and printed as it is.
    pub fn html(&self) -> String {
        let c = &self.current;
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "Process health " (c.from) " to " (c.to) " · clerk" }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    h1 { "Process health" }
                    p.meta { (c.from) " to " (c.to) " (UTC), against " (self.previous.from) " to " (self.previous.to)
                        " · made " (crate::jobs::time_text(c.at)) " by clerk" }
                    h2 { "Summary" }
                    (self.summary_table())
                    // With one bot, its section is the whole story.
                    @let rows = self.rows();
                    @let sections = if self.current.bots.len() == 1 { &rows[..1] } else { &rows[..] };
                    @for b in sections {
                        (self.bot_section(b))
                    }
                    p.meta { "Straight through: succeeded with no person involved, out of the jobs that finished (cancelled apart). "
                        "Exceptions: business errors, retries exhausted, lost (dead) and rejected in review. "
                        "Cycle time: from intake to done, of jobs that succeeded; percentiles from histograms, exact to a bucket (at most a quarter)." }
                }
            }
        }
        .into_string()
    }

    fn summary_table(&self) -> Markup {
        html! {
            table {
                thead { tr { th { "Bot" } th { "Documents in" } th { "vs before" } th { "Straight through" } th { "vs before" }
                    th { "Exceptions" } th { "vs before" } th { "Cycle p50" } th { "Cycle p95" } th { "Reviewed" } } }
                tbody { @for b in self.rows() {
                    @let f = &b.figures;
                    @let p = self.previous_of(&b.bot).map(|p| &p.figures);
                    tr {
                        td { (b.bot) }
                        td.n { (f.documents_in) }
                        td.n { (p.map_or("–".into(), |p| relative(f.documents_in as f64, p.documents_in as f64))) }
                        td.n { (pct(f.straight_through_rate)) }
                        td.n { (points(f.straight_through_rate, p.and_then(|p| p.straight_through_rate))) }
                        td.n { (pct(f.exception_rate)) }
                        td.n { (points(f.exception_rate, p.and_then(|p| p.exception_rate))) }
                        td.n { (secs(f.cycle.p50_seconds)) }
                        td.n { (secs(f.cycle.p95_seconds)) }
                        td.n { (f.reviewed) }
                    }
                } }
            }
        }
    }

    fn bot_section(&self, b: &BotFigures) -> Markup {
        let f = &b.figures;
        let exceptions: Vec<Bar> = Ending::EXCEPTIONS
            .iter()
            .map(|e| {
                let n = f.endings.get(e.as_str()).copied().unwrap_or(0);
                Bar {
                    label: e.label().into(),
                    value: n as f64,
                    text: format!("{n} ({})", pct(f.rate_of(*e))),
                    class: "bad",
                    href: None,
                }
            })
            .collect();
        let parts = [
            ("Cycle p50", &f.cycle, "part-cycle"),
            ("Queue wait p50", &f.queue_wait, "part-queue"),
            ("Run p50", &f.run, "part-run"),
            ("Review wait p50", &f.review_wait, "part-review"),
        ]
        .iter()
        .map(|(label, d, class)| Bar {
            label: (*label).into(),
            value: d.p50_seconds.unwrap_or(0.0),
            text: secs(d.p50_seconds),
            class,
            href: None,
        })
        .collect::<Vec<_>>();
        html! {
            section.bot {
                h2 { @if b.bot == self.current.overall.bot { "All bots" } @else { "Bot " (b.bot) } }
                p { (f.documents_in) " documents in; " (f.finished) " finished: " (f.succeeded) " succeeded ("
                    (f.straight_through) " straight through, " (pct(f.straight_through_rate)) "), "
                    (f.finished - f.succeeded) " exceptions (" (pct(f.exception_rate)) "); " (f.cancelled) " cancelled. "
                    "Review effort: " (f.reviewed) " documents reviewed, " (f.review_actions) " review actions, waiting "
                    (secs(f.review_wait.p50_seconds)) " (p50) / " (secs(f.review_wait.p95_seconds)) " (p95) for a reviewer." }
                div.charts {
                    div { h3 { "Per day" } (charts::per_day(&f.per_day, None)) }
                    div { h3 { "Exceptions by kind" } (charts::bars("Exceptions by kind", &exceptions)) }
                    div { h3 { "Where the time goes" } (charts::bars("Cycle time and its parts", &parts)) }
                }
                @if !f.top_failures.is_empty() {
                    h3 { "Top failure reasons" }
                    table {
                        thead { tr { th { "Count" } th { "Reason" } th { "Kind" } th { "Example jobs" } } }
                        tbody { @for r in &f.top_failures {
                            tr { td.n { (r.count) } td { (r.message) } td { (r.ending.as_deref().unwrap_or("")) }
                                 td { (r.examples.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(", ")) } }
                        } }
                    }
                }
            }
        }
    }
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; color: #1d2330; margin: 2rem; max-width: 60rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d8dce4; }
.meta { color: #5b6475; font-size: 0.9em; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #d8dce4; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1rem; }
.charts h3 { font-size: 0.95rem; margin: 0.5rem 0 0.25rem; }
svg.chart { width: 100%; height: auto; }
svg.chart text { font-size: 12px; fill: #5b6475; }
svg.chart text.label, svg.chart text.value { fill: #1d2330; }
svg.chart rect.ok { fill: #1d7a3a; } svg.chart rect.bad { fill: #b3261e; }
svg.chart rect.part-cycle { fill: #2456c9; } svg.chart rect.part-queue { fill: #8e9aaf; }
svg.chart rect.part-run { fill: #3a7d44; } svg.chart rect.part-review { fill: #d4a017; }
section.bot { break-inside: avoid-page; }
@media print { body { margin: 0; } }
";

/// The report of `period` (and the period before it).
pub async fn report(
    db: &dyn crate::jobs::StatsStore,
    period: super::Period,
    only: Option<&str>,
    known: &[String],
    now: i64,
) -> crate::jobs::Result<Report> {
    Ok(Report {
        current: super::overview(db, period, only, known, now).await?,
        previous: super::overview(db, period.previous(), only, known, now).await?,
    })
}
