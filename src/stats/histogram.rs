//! Durations kept as a histogram: fixed buckets shared by every day and
//! every process, so days add up and percentiles of a year come from a
//! few hundred numbers instead of a year of jobs.
//!
//! A bucket keeps its count and its sum, and a percentile is the mean of
//! the bucket it falls in: exact when the bucket's durations are alike,
//! and never further off than the bucket is wide (at most a quarter).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bucket bounds in each decade of milliseconds: 1, 1.2, 1.5, … 8, so the
/// usual Prometheus bounds (0.1 s, 0.5 s, 1 s, 2.5 s, 30 s, 1 min, 30 min,
/// 1 h, 2 h) are bounds here too.
const MANTISSAS: [f64; 13] = [
    1.0, 1.2, 1.5, 1.8, 2.0, 2.5, 3.0, 3.6, 4.0, 5.0, 6.0, 7.2, 8.0,
];
/// Decades from 1 ms to 8·10⁹ ms (about three months).
const DECADES: i32 = 10;

/// Upper bound (inclusive, ms) of bucket `i`; the last bucket has none.
pub fn bound(i: usize) -> Option<f64> {
    let decade = (i / MANTISSAS.len()) as i32;
    (decade < DECADES).then(|| MANTISSAS[i % MANTISSAS.len()] * 10f64.powi(decade))
}

/// Every bucket's upper bound, in order.
static BOUNDS: std::sync::LazyLock<Vec<f64>> = std::sync::LazyLock::new(|| {
    (0..MANTISSAS.len() * DECADES as usize)
        .filter_map(bound)
        .collect()
});

/// The bucket a duration falls in: the first whose bound is not below it.
pub fn bucket_of(ms: i64) -> usize {
    let ms = ms.max(0) as f64;
    BOUNDS.partition_point(|b| *b < ms)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub sum_ms: i64,
    /// Bucket index → (count, sum of ms); only buckets that hold something.
    #[serde(default)]
    pub buckets: BTreeMap<usize, (u64, i64)>,
}

impl Histogram {
    pub fn add(&mut self, ms: i64) {
        let ms = ms.max(0);
        self.count += 1;
        self.sum_ms += ms;
        let b = self.buckets.entry(bucket_of(ms)).or_default();
        b.0 += 1;
        b.1 += ms;
    }

    pub fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        for (i, (n, sum)) in &other.buckets {
            let b = self.buckets.entry(*i).or_default();
            b.0 += n;
            b.1 += sum;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `q`-quantile (0 < q ≤ 1) by nearest rank, in ms.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (n, sum) in self.buckets.values() {
            seen += n;
            if seen >= rank && *n > 0 {
                return Some(sum / *n as i64);
            }
        }
        None
    }

    pub fn mean(&self) -> Option<i64> {
        (self.count > 0).then(|| self.sum_ms / self.count as i64)
    }

    /// How many durations are at most `le_ms`, for a cumulative bucket of
    /// a Prometheus histogram; `le_ms` must be one of the bounds here.
    pub fn count_at_most(&self, le_ms: f64) -> u64 {
        self.buckets
            .iter()
            .filter(|(i, _)| bound(**i).is_some_and(|b| b <= le_ms * (1.0 + 1e-9)))
            .map(|(_, (n, _))| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_duration_in_order() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), bucket_of(2));
        let mut last = 0;
        for ms in [1, 2, 10, 999, 1_000, 1_001, 60_000, 3_600_000, i64::MAX] {
            let b = bucket_of(ms);
            assert!(b >= last, "{ms}");
            last = b;
            if let Some(upper) = bound(b) {
                assert!(ms as f64 <= upper);
            }
        }
        // Every Prometheus bound clerk uses is a bound here.
        for s in [
            0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
        ] {
            let ms = s * 1000.0;
            assert!(
                (0..200).any(|i| bound(i).is_some_and(|b| (b - ms).abs() < 1e-6)),
                "{s} s"
            );
        }
    }

    #[test]
    fn percentiles_are_exact_for_alike_durations_and_close_otherwise() {
        let mut h = Histogram::default();
        for ms in [2_000, 2_000, 2_000, 30_000, 600_000] {
            h.add(ms);
        }
        assert_eq!(h.quantile(0.5), Some(2_000));
        assert_eq!(h.quantile(0.95), Some(600_000));
        assert_eq!(h.count_at_most(2_500.0), 3);
        assert_eq!(h.count_at_most(30_000.0), 4);
        let mut wide = Histogram::default();
        for ms in 1..=1000 {
            wide.add(ms * 37);
        }
        let p50 = wide.quantile(0.5).unwrap() as f64;
        assert!((p50 - 18_500.0).abs() / 18_500.0 < 0.15, "{p50}");
    }

    #[test]
    fn days_add_up() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.add(100);
        b.add(5_000);
        b.add(5_000);
        a.merge(&b);
        assert_eq!((a.count, a.sum_ms), (3, 10_100));
        assert_eq!(a.quantile(0.5), Some(5_000));
        let back: Histogram = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }
}
