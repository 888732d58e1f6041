//! The dashboard: for a chosen period, per bot and overall, documents in,
//! the straight-through rate, exceptions by kind, cycle time and its
//! parts, the review backlog, throughput per day, the top failure
//! reasons; every figure links to the runs behind it. Kept current while
//! the page is open.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{error_page, layout, page_caller, respond};
use crate::jobs::{Ending, Role, now_ms, time_text};
use crate::server::App;
use crate::server::api::stats::StatsQuery;
use crate::server::auth::Caller;
use crate::stats::charts::{self, Bar};
use crate::stats::{BotFigures, Durations, Period, date_of_day};

fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{:.1}%", r * 100.0))
}

fn secs(s: Option<f64>) -> String {
    s.map_or_else(|| "–".into(), |s| super::runs::took((s * 1000.0) as i64))
}

/// Where the runs behind a figure are listed.
struct Links {
    bot: Option<String>,
    from: String,
    to: String,
}

impl Links {
    fn runs(&self, extra: &[(&str, &str)]) -> String {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(b) = &self.bot {
            q.push(("bot", b));
        }
        q.extend_from_slice(extra);
        format!(
            "/runs?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    }

    fn finished(&self, state: Option<&str>) -> String {
        let mut q = vec![
            ("finished_from", self.from.as_str()),
            ("finished_to", self.to.as_str()),
        ];
        if let Some(s) = state {
            q.push(("state", s));
        }
        self.runs(&q)
    }

    fn created(&self) -> String {
        self.runs(&[("from", &self.from), ("to", &self.to)])
    }
}

fn tile(label: &str, value: String, sub: Markup, href: Option<String>) -> Markup {
    html! {
        div.tile {
            div.label { (label) }
            div.value { @if let Some(h) = href { a href=(h) { (value) } } @else { (value) } }
            div.sub { (sub) }
        }
    }
}

fn parts(d: &[(&str, &Durations, &'static str)]) -> Vec<Bar> {
    d.iter()
        .map(|(label, x, class)| Bar {
            label: format!("{label} p50"),
            value: x.p50_seconds.unwrap_or(0.0),
            text: secs(x.p50_seconds),
            class,
            href: None,
        })
        .collect()
}

fn figures_view(b: &BotFigures, links: &Links) -> Markup {
    let f = &b.figures;
    let exceptions: Vec<Bar> = Ending::EXCEPTIONS
        .iter()
        .map(|e| {
            let n = f.endings.get(e.as_str()).copied().unwrap_or(0);
            Bar {
                label: e.label().to_string(),
                value: n as f64,
                text: format!("{n} ({})", percent(f.rate_of(*e))),
                class: "bad",
                href: Some(links.finished(Some(e.state().as_str()))),
            }
        })
        .collect();
    let by_day = |date: &str| {
        let next = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.succ_opt())
            .map(|d| d.to_string())
            .unwrap_or_default();
        Links {
            bot: links.bot.clone(),
            from: date.to_string(),
            to: next,
        }
        .finished(None)
    };
    html! {
        div.tiles {
            (tile("Documents in", f.documents_in.to_string(), html! { "created in the period" }, Some(links.created())))
            (tile("Straight through", percent(f.straight_through_rate),
                html! { (f.straight_through) " of " (f.finished) " finished, no person" }, Some(links.finished(Some("succeeded")))))
            (tile("Exceptions", percent(f.exception_rate),
                html! { (f.finished - f.succeeded) " failed or dead" }, Some(links.finished(Some("failed")))))
            (tile("Cycle time p50 / p95", format!("{} / {}", secs(f.cycle.p50_seconds), secs(f.cycle.p95_seconds)),
                html! { "intake to done, " (f.cycle.count) " succeeded" }, Some(links.finished(Some("succeeded")))))
            (tile("Review backlog", b.now.review_backlog.to_string(),
                html! { "oldest " (secs(b.now.oldest_review_age_seconds)) }, Some(match &links.bot { Some(bot) => format!("/reviews?bot={bot}"), None => "/reviews".into() })))
            (tile("Review effort", f.reviewed.to_string(),
                html! { "reviewed; " (f.review_actions) " review actions" }, None))
        }
        div.charts {
            section { h3 { "Per day: succeeded and exceptions" } (charts::per_day(&f.per_day, Some(&by_day))) }
            section { h3 { "Exceptions by kind" } (charts::bars("Exceptions by kind", &exceptions)) }
            section { h3 { "Where the time goes (jobs that succeeded)" }
                (charts::bars("Cycle time and its parts, p50", &parts(&[
                    ("Cycle", &f.cycle, "part-cycle"),
                    ("Queue wait", &f.queue_wait, "part-queue"),
                    ("Run", &f.run, "part-run"),
                    ("Review wait", &f.review_wait, "part-review"),
                ])))
            }
        }
        @if !f.top_failures.is_empty() {
            h3 { "Top failure reasons" }
            table.queue {
                thead { tr { th { "Count" } th { "Reason" } th { "Kind" } th { "For example" } } }
                tbody { @for r in &f.top_failures {
                    tr { td { (r.count) } td { (r.message) } td { (r.ending.as_deref().unwrap_or("")) }
                         td { @for id in &r.examples { a href={ "/runs/" (id) } { "#" (id) } " " } } }
                } }
            }
        }
    }
}

pub async fn page(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<StatsQuery>,
) -> Response {
    let caller = match page_caller(caller.map(|c| c.0), Role::Viewer, "/dashboard") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let now = now_ms();
    let q = q.without_blanks();
    let period: Period = match q.period(now) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &caller, &e.message),
    };
    let known: Vec<String> = app.bots.iter().map(|b| b.name.clone()).collect();
    let bot = q.bot.as_deref().filter(|b| !b.is_empty());
    let o = match crate::stats::overview(app.db.as_ref(), period, bot, &known, now).await {
        Ok(o) => o,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &caller, &e.to_string()),
    };
    let (from, to) = (date_of_day(period.from_day), date_of_day(period.to_day));
    let links = |bot: Option<&str>| Links {
        bot: bot.map(str::to_string),
        from: from.clone(),
        to: to.clone(),
    };
    let body = html! {
        h1 { "Dashboard" }
        form.filters method="get" action="/dashboard" {
            label { "From " input type="date" name="from" value=(o.from); }
            label { "to " input type="date" name="to" value=(o.to); }
            label { "Bot "
                select name="bot" {
                    option value="" { "all" }
                    @for b in app.bots.iter().filter(|b| !b.is_mailbox_poll()) {
                        option value=(b.name) selected[bot == Some(b.name.as_str())] { (b.name) }
                    }
                }
            }
            button type="submit" { "Show" }
            a href="/dashboard?days=1" { "today" } " · " a href="/dashboard?days=7" { "7 days" } " · " a href="/dashboard?days=30" { "30 days" }
        }
        div #live data-live="10" {
            p.meta { (o.from) " to " (o.to) " (UTC) · " (if bot.is_some() { "one bot" } else { "all bots" }) " · updated " (time_text(o.at)) }
            (figures_view(&o.overall, &links(bot)))
            @if bot.is_none() && !o.bots.is_empty() {
                h2 { "Per bot" }
                table.queue {
                    thead { tr { th { "Bot" } th { "In" } th { "Finished" } th { "Straight through" } th { "Exceptions" }
                        th { "Cycle p50 / p95" } th { "Review backlog" } th { "Oldest review" } } }
                    tbody { @for b in &o.bots {
                        @let l = links(Some(&b.bot));
                        tr {
                            td { a href={ "/dashboard?bot=" (b.bot) "&from=" (o.from) "&to=" (o.to) } { (b.bot) } }
                            td { a href=(l.created()) { (b.figures.documents_in) } }
                            td { a href=(l.finished(None)) { (b.figures.finished) } }
                            td { (percent(b.figures.straight_through_rate)) }
                            td { a href=(l.finished(Some("failed"))) { (percent(b.figures.exception_rate)) } }
                            td { (secs(b.figures.cycle.p50_seconds)) " / " (secs(b.figures.cycle.p95_seconds)) }
                            td { (b.now.review_backlog) }
                            td { (secs(b.now.oldest_review_age_seconds)) }
                        }
                    } }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Dashboard", &caller, body))
}
