//! The figures as Prometheus metrics (OpenMetrics text): counters of jobs
//! and documents since the oldest roll-up kept, duration histograms, and
//! gauges of the queue now. Read from the job database on each scrape, so
//! every node's work is counted, whichever process is scraped.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::day::DayStats;
use super::histogram::Histogram;
use crate::jobs::{Live, Pause};

/// Bounds (seconds) of the duration histograms; each is a bucket bound of
/// [`Histogram`], so the counts are exact.
pub const BUCKETS_SECONDS: [f64; 14] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];

/// Everything one scrape shows.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Per bot, its days summed (the counters).
    pub totals: BTreeMap<String, DayStats>,
    pub live: Live,
    pub paused: Vec<Pause>,
    /// Known bots, so a paused-or-not gauge exists for each.
    pub bots: Vec<String>,
    /// The kind of each step, by bot and step name.
    pub kinds: BTreeMap<(String, String), String>,
    pub now: i64,
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: its name (without unit or `_total`), help, unit and
/// series.
struct Family<V> {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    series: Vec<(Labels, V)>,
}

fn family<V>(
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    series: Vec<(Labels, V)>,
) -> Family<V> {
    Family {
        name,
        help,
        unit,
        series,
    }
}

/// The histogram's counts per Prometheus bucket (each bucket's own; the
/// encoder adds them up).
fn histogram_buckets(h: &Histogram) -> Vec<(f64, u64)> {
    let mut below = 0;
    BUCKETS_SECONDS
        .iter()
        .map(|s| (*s, h.count_at_most(s * 1000.0)))
        // The encoder writes `+Inf` for `f64::MAX`.
        .chain(std::iter::once((f64::MAX, h.count)))
        .map(|(le, at_most)| {
            let own = at_most - below;
            below = at_most;
            (le, own)
        })
        .collect()
}

impl Snapshot {
    /// The OpenMetrics text of this snapshot.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        match prometheus_client::encoding::text::encode(&mut out, &registry) {
            Ok(()) => out,
            Err(_) => "# EOF\n".into(),
        }
    }

    fn counters(&self) -> Vec<Family<u64>> {
        let mut jobs = Vec::new();
        let mut intake: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut rescues = Vec::new();
        for (bot, d) in &self.totals {
            for (ending, n) in &d.endings {
                jobs.push((
                    vec![
                        ("bot", bot.clone()),
                        ("outcome", ending.as_str().to_string()),
                    ],
                    *n as u64,
                ));
            }
            for (source, n) in &d.received {
                *intake.entry((bot.clone(), source.clone())).or_default() += n;
            }
            rescues.push((vec![("bot", bot.clone())], d.rescues as u64));
        }
        let intake = intake
            .into_iter()
            .map(|((bot, trigger), n)| (vec![("bot", bot), ("trigger", trigger)], n as u64))
            .collect();
        vec![
            family(
                "clerk_jobs",
                "Jobs finished, by bot and how they ended",
                None,
                jobs,
            ),
            family(
                "clerk_intake_documents",
                "Jobs created, by bot and the kind of trigger (mailbox, folder, schedule, manual)",
                None,
                intake,
            ),
            family(
                "clerk_lease_rescues",
                "Attempts whose worker vanished, found by the lease's expiry and rescued",
                None,
                rescues,
            ),
        ]
    }

    fn gauges(&self) -> Vec<Family<f64>> {
        let depth = self
            .live
            .depth
            .iter()
            .map(|(bot, state, n)| {
                (
                    vec![("bot", bot.clone()), ("state", state.as_str().to_string())],
                    *n as f64,
                )
            })
            .collect();
        let backlog: i64 = self
            .live
            .depth
            .iter()
            .filter(|(_, s, _)| *s == crate::jobs::JobState::WaitingReview)
            .map(|(_, _, n)| n)
            .sum();
        let oldest = self
            .live
            .oldest_review
            .iter()
            .map(|(_, since)| *since)
            .min()
            .map_or(0.0, |since| (self.now - since).max(0) as f64 / 1000.0);
        let paused = self
            .bots
            .iter()
            .map(|b| {
                let p = self.paused.iter().any(|p| &p.bot == b);
                (vec![("bot", b.clone())], f64::from(u8::from(p)))
            })
            .collect();
        vec![
            family(
                "clerk_queue_depth",
                "Jobs not finished, by bot and state",
                None,
                depth,
            ),
            family(
                "clerk_review_backlog",
                "Jobs waiting for review",
                None,
                vec![(vec![], backlog as f64)],
            ),
            family(
                "clerk_review_oldest_age",
                "Age of the oldest job waiting for review (0 when none waits)",
                Some(Unit::Seconds),
                vec![(vec![], oldest)],
            ),
            family(
                "clerk_workers_busy",
                "Workers holding at least one running job",
                None,
                vec![(vec![], self.live.busy_workers.len() as f64)],
            ),
            family(
                "clerk_bot_paused",
                "1 when an operator paused the bot",
                None,
                paused,
            ),
        ]
    }

    fn histograms(&self) -> Vec<Family<&Histogram>> {
        let mut jobs = Vec::new();
        let mut steps = Vec::new();
        for (bot, d) in &self.totals {
            jobs.push((vec![("bot", bot.clone())], &d.cycle));
            for (step, s) in &d.steps {
                let kind = self
                    .kinds
                    .get(&(bot.clone(), step.clone()))
                    .cloned()
                    .unwrap_or_else(|| "unknown".into());
                steps.push((
                    vec![("bot", bot.clone()), ("step", step.clone()), ("kind", kind)],
                    &s.duration,
                ));
            }
        }
        vec![
            family(
                "clerk_job_duration",
                "Time from intake to done of jobs that succeeded",
                Some(Unit::Seconds),
                jobs,
            ),
            family(
                "clerk_step_duration",
                "Time a step run took, by bot, step and kind",
                Some(Unit::Seconds),
                steps,
            ),
        ]
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in self.counters() {
            let mut family =
                encoder.encode_descriptor(f.name, f.help, f.unit.as_ref(), MetricType::Counter)?;
            for (labels, v) in f.series {
                ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        for f in self.gauges() {
            let mut family =
                encoder.encode_descriptor(f.name, f.help, f.unit.as_ref(), MetricType::Gauge)?;
            for (labels, v) in f.series {
                if labels.is_empty() {
                    ConstGauge::new(v).encode(family)?;
                    break;
                }
                ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        for f in self.histograms() {
            let mut family = encoder.encode_descriptor(
                f.name,
                f.help,
                f.unit.as_ref(),
                MetricType::Histogram,
            )?;
            for (labels, h) in f.series {
                family
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(
                        h.sum_ms as f64 / 1000.0,
                        h.count,
                        &histogram_buckets(h),
                        None,
                    )?;
            }
        }
        Ok(())
    }
}

/// How long after a job finished its figures are taken as final for the
/// counters: later commits than this (a batch retried, a clock behind) are
/// not expected.
pub const COUNTED_AFTER_MS: i64 = 5 * 60_000;

/// The counters' sums kept between scrapes, so a scrape reads only what
/// finished since the one before: settled days summed (read again only
/// when a new day settles), and the jobs since that finished more than
/// [`COUNTED_AFTER_MS`] ago.
///
/// A job retried after it finished is counted again when it finishes
/// again: a counter counts endings, and never goes down.
#[derive(Debug, Default)]
pub struct CountedTotals {
    /// The last settled day summed, if any.
    through: Option<i64>,
    /// Whether `settled` and `recent` hold anything yet.
    loaded: bool,
    settled: BTreeMap<String, DayStats>,
    /// Jobs since the settled days that finished before `mark` (Unix ms).
    recent: BTreeMap<String, DayStats>,
    mark: i64,
}

fn add_up(into: &mut BTreeMap<String, DayStats>, day: super::Day) {
    for (bot, mut d) in day {
        // The counters need no failure reasons; keep the sums small.
        d.failures.clear();
        into.entry(bot).or_default().merge(&d);
    }
}

/// Per bot, every day kept summed, as of `now`: settled days and the
/// counted recent jobs from `cache`, the last minutes worked out afresh.
pub async fn totals(
    db: &dyn crate::jobs::StatsStore,
    cache: &tokio::sync::Mutex<CountedTotals>,
    now: i64,
) -> crate::jobs::Result<BTreeMap<String, DayStats>> {
    let last = db.last_settled_day().await?;
    let mut cache = cache.lock().await;
    if !cache.loaded || cache.through != last {
        let mut settled = BTreeMap::new();
        if let Some(last) = last {
            for row in db.daily(i64::MIN, last + 1).await? {
                if !row.settled || row.bot.is_empty() {
                    continue;
                }
                let d: DayStats = serde_json::from_value(row.stats).map_err(|e| {
                    crate::jobs::JobsError::Corrupt(format!("figures of day {}: {e}", row.day))
                })?;
                add_up(&mut settled, BTreeMap::from([(row.bot, d)]));
            }
        }
        *cache = CountedTotals {
            through: last,
            loaded: true,
            settled,
            recent: BTreeMap::new(),
            mark: last.map_or(i64::MIN, |d| (d + 1) * super::DAY_MS),
        };
    }
    let mark = now - COUNTED_AFTER_MS;
    if mark > cache.mark {
        let counted = super::compute_range(db, cache.mark, mark).await?;
        add_up(&mut cache.recent, counted);
        cache.mark = mark;
    }
    let mut totals = cache.settled.clone();
    for (bot, d) in &cache.recent {
        totals.entry(bot.clone()).or_default().merge(d);
    }
    let from = cache.mark;
    drop(cache);
    add_up(&mut totals, super::compute_range(db, from, i64::MAX).await?);
    Ok(totals)
}
