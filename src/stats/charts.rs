//! Charts drawn as SVG by the server: bars per day, and horizontal bars
//! for a few labelled values. No script and no chart library; the same
//! markup goes into the dashboard and the self-contained report. Colours
//! come from classes (`.ok`, `.bad`, `.part-*`) the style sheets define,
//! with plain fills as a fallback where no sheet applies.

use maud::{Markup, html};

use super::figures::DayPoint;

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 22.0;

/// A round number at or above `max` for an axis: 1, 2, 5 × 10ⁿ.
fn axis_top(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * base)
}

/// Succeeded and exceptions per day, stacked; each day's bar links to
/// `link(date)` (the runs behind it) when given.
pub fn per_day(days: &[DayPoint], link: Option<&dyn Fn(&str) -> String>) -> Markup {
    let max = days
        .iter()
        .map(|d| (d.succeeded + d.exceptions).max(d.documents_in))
        .max()
        .unwrap_or(0) as f64;
    let top = axis_top(max);
    let plot_h = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: f64| 8.0 + plot_h - v / top * plot_h;
    let label_every = (days.len() / 10).max(1);
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
            aria-label="Documents succeeded and exceptions per day" {
            title { "Succeeded and exceptions per day" }
            line.axis x1=(LEFT) y1=(y(0.0)) x2=(WIDTH) y2=(y(0.0)) stroke="#888" {}
            text.tick x=(LEFT - 4.0) y=(y(top) + 4.0) text-anchor="end" { (top) }
            text.tick x=(LEFT - 4.0) y=(y(0.0)) text-anchor="end" { "0" }
            @for (i, d) in days.iter().enumerate() {
                @let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
                @let ok_h = d.succeeded as f64 / top * plot_h;
                @let bad_h = d.exceptions as f64 / top * plot_h;
                @let bars = html! {
                    title { (d.date) ": " (d.succeeded) " succeeded, " (d.exceptions) " exceptions, " (d.documents_in) " in" }
                    rect.ok x=(x) y=(y(0.0) - ok_h) width=(bar) height=(ok_h) fill="#3a7d44" {}
                    rect.bad x=(x) y=(y(0.0) - ok_h - bad_h) width=(bar) height=(bad_h) fill="#c0392b" {}
                };
                @if let Some(link) = link {
                    a href=(link(&d.date)) { g { (bars) } }
                } @else {
                    g { (bars) }
                }
                @if i % label_every == 0 {
                    text.tick x=(x + bar / 2.0) y=(HEIGHT - 6.0) text-anchor="middle" { (&d.date[5..]) }
                }
            }
        }
    }
}

/// One labelled value of a bar chart.
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// What the value reads as (`12`, `3.4 s`, `25%`).
    pub text: String,
    /// A class for its colour (`ok`, `bad`, `part-queue`, …).
    pub class: &'static str,
    pub href: Option<String>,
}

/// Horizontal bars, one per value.
pub fn bars(title: &str, items: &[Bar]) -> Markup {
    let row = 22.0;
    let label_w = 150.0;
    let height = row * items.len().max(1) as f64 + 6.0;
    let max = items.iter().map(|b| b.value).fold(0.0, f64::max);
    let scale = if max > 0.0 {
        (WIDTH - label_w - 80.0) / max
    } else {
        0.0
    };
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (height) } role="img" aria-label=(title) {
            title { (title) }
            @for (i, b) in items.iter().enumerate() {
                @let y = 3.0 + i as f64 * row;
                @let w = (b.value * scale).max(if b.value > 0.0 { 1.0 } else { 0.0 });
                @let shape = html! {
                    text.label x=(label_w - 6.0) y=(y + 14.0) text-anchor="end" { (b.label) }
                    rect class=(b.class) x=(label_w) y=(y + 2.0) width=(w) height=(row - 6.0) fill="#4a6fa5" {}
                    text.value x=(label_w + w + 6.0) y=(y + 14.0) { (b.text) }
                };
                @if let Some(href) = &b.href {
                    a href=(href) { g { (shape) } }
                } @else {
                    g { (shape) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(axis_top(0.0), 1.0);
        assert_eq!(axis_top(7.0), 10.0);
        assert_eq!(axis_top(12.0), 20.0);
        assert_eq!(axis_top(450.0), 500.0);
    }

    #[test]
    fn labels_are_text_not_markup() {
        let svg = bars(
            "t",
            &[Bar {
                label: "<script>x</script>".into(),
                value: 1.0,
                text: "1".into(),
                class: "bad",
                href: Some("/runs?bot=a&state=failed".into()),
            }],
        )
        .into_string();
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains("/runs?bot=a&amp;state=failed"), "{svg}");
    }
}
