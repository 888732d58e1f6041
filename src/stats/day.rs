//! One day of one bot, rolled up: what came in, how what finished ended,
//! how long it took and where the time went, review effort, and why jobs
//! failed. Days add up to any period.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::histogram::Histogram;
use crate::jobs::{Ending, JobFact, Received, StepFact};

/// Failure reasons kept per day and bot (the most frequent).
const REASONS_KEPT: usize = 20;
/// Example jobs kept per failure reason.
const EXAMPLES_KEPT: usize = 3;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayStats {
    /// Jobs created, by source (`mailbox`, `folder`, `schedule`, `manual`).
    #[serde(default)]
    pub received: BTreeMap<String, i64>,
    /// Jobs finished, by how they ended.
    #[serde(default)]
    pub endings: BTreeMap<Ending, i64>,
    /// Intake to done, of jobs that succeeded.
    #[serde(default)]
    pub cycle: Histogram,
    /// The parts of the cycle of jobs that succeeded.
    #[serde(default)]
    pub queue: Histogram,
    #[serde(default)]
    pub run: Histogram,
    /// Waiting for a reviewer, of jobs that went to review.
    #[serde(default)]
    pub review: Histogram,
    /// Finished jobs that went to review.
    #[serde(default)]
    pub reviewed: i64,
    /// Review actions on them (claims, corrections, decisions).
    #[serde(default)]
    pub review_actions: i64,
    /// Attempts lost with their worker and rescued.
    #[serde(default)]
    pub rescues: i64,
    #[serde(default)]
    pub failures: Vec<FailureReason>,
    /// Per step name: runs, failures and durations.
    #[serde(default)]
    pub steps: BTreeMap<String, StepStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureReason {
    /// The reason with numbers taken out, so alike failures count as one.
    pub key: String,
    /// One of the messages, as it was.
    pub message: String,
    pub ending: Option<Ending>,
    pub count: i64,
    /// A few of the jobs it happened to.
    pub examples: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub runs: i64,
    pub failed: i64,
    pub duration: Histogram,
}

impl DayStats {
    pub fn add_received(&mut self, r: &Received) {
        *self.received.entry(r.source.clone()).or_default() += r.count;
    }

    pub fn add_fact(&mut self, f: &JobFact) {
        *self.endings.entry(f.ending).or_default() += 1;
        if f.ending.is_success() {
            self.cycle.add(f.cycle_ms());
            self.queue.add(f.queue_ms);
            self.run.add(f.run_ms);
        }
        if f.reviews > 0 {
            self.reviewed += 1;
            self.review.add(f.review_ms);
        }
        self.review_actions += f.review_actions;
        self.rescues += f.rescues;
        if let Some(error) = &f.error {
            self.add_failure(FailureReason {
                key: reason_key(error),
                message: first_line(error),
                ending: Some(f.ending),
                count: 1,
                examples: vec![f.id],
            });
        }
    }

    pub fn add_step(&mut self, s: &StepFact) {
        let st = self.steps.entry(s.step.clone()).or_default();
        st.runs += 1;
        if !s.succeeded {
            st.failed += 1;
        }
        st.duration.add(s.ms);
    }

    fn add_failure(&mut self, r: FailureReason) {
        match self
            .failures
            .iter_mut()
            .find(|x| x.key == r.key && x.ending == r.ending)
        {
            Some(x) => {
                x.count += r.count;
                for id in r.examples {
                    if x.examples.len() < EXAMPLES_KEPT && !x.examples.contains(&id) {
                        x.examples.push(id);
                    }
                }
            }
            None => self.failures.push(r),
        }
    }

    /// Keep what a stored day needs: the most frequent reasons only.
    pub fn trim(&mut self) {
        self.failures
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
        self.failures.truncate(REASONS_KEPT);
    }

    pub fn merge(&mut self, o: &DayStats) {
        for (k, v) in &o.received {
            *self.received.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.endings {
            *self.endings.entry(*k).or_default() += v;
        }
        self.cycle.merge(&o.cycle);
        self.queue.merge(&o.queue);
        self.run.merge(&o.run);
        self.review.merge(&o.review);
        self.reviewed += o.reviewed;
        self.review_actions += o.review_actions;
        self.rescues += o.rescues;
        for r in &o.failures {
            self.add_failure(r.clone());
        }
        for (name, s) in &o.steps {
            let st = self.steps.entry(name.clone()).or_default();
            st.runs += s.runs;
            st.failed += s.failed;
            st.duration.merge(&s.duration);
        }
    }

    pub fn documents_in(&self) -> i64 {
        self.received.values().sum()
    }

    pub fn ended(&self, e: Ending) -> i64 {
        self.endings.get(&e).copied().unwrap_or(0)
    }

    /// Jobs that finished, cancelled ones apart: what rates are out of.
    pub fn decided(&self) -> i64 {
        self.endings
            .iter()
            .filter(|(e, _)| **e != Ending::Cancelled)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn succeeded(&self) -> i64 {
        self.ended(Ending::StraightThrough) + self.ended(Ending::Touched)
    }

    pub fn exceptions(&self) -> i64 {
        Ending::EXCEPTIONS.iter().map(|e| self.ended(*e)).sum()
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// A failure's reason for counting alike ones together: its first line
/// with every run of digits as `#` (attempt counts, ids, amounts).
fn reason_key(s: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in first_line(s).chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(id: i64, ending: Ending, error: Option<&str>) -> JobFact {
        JobFact {
            id,
            bot: "b".into(),
            created_at: 0,
            finished_at: 10_000,
            ending,
            queue_ms: 1_000,
            run_ms: 9_000,
            review_ms: 0,
            reviews: 0,
            review_actions: 0,
            rescues: 0,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn alike_failures_count_as_one_reason_with_examples() {
        let mut d = DayStats::default();
        for id in 1..=5 {
            d.add_fact(&fact(
                id,
                Ending::TransientExhausted,
                Some(&format!(
                    "attempts exhausted ({id} of 5): connection refused"
                )),
            ));
        }
        d.add_fact(&fact(9, Ending::Business, Some("no template matched")));
        d.add_fact(&fact(10, Ending::StraightThrough, None));
        d.trim();
        assert_eq!(d.failures.len(), 2);
        assert_eq!(d.failures[0].count, 5);
        assert_eq!(d.failures[0].examples, vec![1, 2, 3]);
        assert_eq!(
            d.failures[0].key,
            "attempts exhausted (# of #): connection refused"
        );
        assert_eq!((d.decided(), d.succeeded(), d.exceptions()), (7, 1, 6));
        assert_eq!(d.cycle.count, 1);
    }

    #[test]
    fn days_merge_into_a_period() {
        let mut a = DayStats::default();
        a.add_fact(&fact(1, Ending::StraightThrough, None));
        a.add_received(&Received {
            bot: "b".into(),
            source: "folder".into(),
            count: 2,
        });
        let mut b = a.clone();
        b.add_fact(&fact(2, Ending::Rejected, Some("wrong vendor")));
        a.merge(&b);
        assert_eq!(a.documents_in(), 4);
        assert_eq!(a.ended(Ending::StraightThrough), 2);
        assert_eq!(a.ended(Ending::Rejected), 1);
        assert_eq!(a.cycle.count, 2);
    }
}
