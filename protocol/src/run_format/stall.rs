//! The `stalled` verdict: a run that is running and alive but has made no new step for longer
//! than its stall limit.
//!
//! This module owns the step timing a reader keeps while it reads `events.jsonl`
//! ([`StepTiming`]: the last new step, its time and a bounded list of recent intervals between
//! new steps), the per-run configuration in `meta.json` (`"stall": {"factor": F, "after_s": S}`,
//! [`StallConfig`]), and the judgement itself ([`stall_evidence`]). The limit is
//! `max(floor, factor × median of the recent intervals)`; with too few intervals for a median,
//! the floor alone.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::events::Event;
use super::records::Meta;

/// How many recent intervals between new steps are kept for the median.
pub const RECENT_STEP_INTERVALS: usize = 50;
/// Below this many intervals there is no median, and the floor alone is the limit.
pub const MIN_INTERVALS_FOR_MEDIAN: usize = 3;
/// The default factor applied to the median step interval.
pub const DEFAULT_STALL_FACTOR: f64 = 5.0;
/// The default floor of the stall limit, in seconds.
pub const DEFAULT_STALL_AFTER_SECS: f64 = 600.0;
/// The `meta.json` key of the stall configuration.
pub const META_STALL_KEY: &str = "stall";

/// When a run's recent new steps arrived, kept as `events.jsonl` is read incrementally.
/// A *new* step is a `metrics` event whose `global_step` is greater than any before it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// The largest `global_step` seen.
    #[serde(default)]
    pub step: Option<i64>,
    /// The time (`ts`, else `time`) of the event that brought that step; `None` when it had none.
    #[serde(default)]
    pub at: Option<f64>,
    /// Seconds between consecutive new steps (both timed), oldest first, at most
    /// [`RECENT_STEP_INTERVALS`].
    #[serde(default)]
    pub intervals: VecDeque<f64>,
}

impl StepTiming {
    /// Takes one event into account.
    pub fn observe(&mut self, event: &Event<'_>) {
        let Event::Metrics(m) = event else {
            return;
        };
        let Some(step) = m.step else {
            return;
        };
        if self.step.is_some_and(|last| step <= last) {
            return;
        }
        self.step = Some(step);
        let at = m.ts.or(m.time).filter(|t| t.is_finite());
        if let (Some(previous), Some(now)) = (self.at, at) {
            // Milliseconds are plenty, and keep the cached list short as text.
            let interval = ((now - previous).max(0.0) * 1000.0).round() / 1000.0;
            if self.intervals.len() == RECENT_STEP_INTERVALS {
                self.intervals.pop_front();
            }
            self.intervals.push_back(interval);
        }
        self.at = at;
    }

    /// The median of the recent intervals, or `None` with fewer than
    /// [`MIN_INTERVALS_FOR_MEDIAN`].
    pub fn median_interval(&self) -> Option<f64> {
        if self.intervals.len() < MIN_INTERVALS_FOR_MEDIAN {
            return None;
        }
        let mut sorted: Vec<f64> = self.intervals.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        Some(if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        })
    }
}

/// A run's stall configuration (`meta.json`'s `stall`). A value that is absent, not a number,
/// not finite or not positive means the default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StallConfig {
    pub factor: Option<f64>,
    pub after_s: Option<f64>,
}

fn usable(v: f64) -> Option<f64> {
    (v.is_finite() && v > 0.0).then_some(v)
}

impl StallConfig {
    /// A configuration from the two settings, each dropped when absurd (≤ 0, NaN, infinite).
    pub fn new(factor: Option<f64>, after_s: Option<f64>) -> StallConfig {
        StallConfig {
            factor: factor.and_then(usable),
            after_s: after_s.and_then(usable),
        }
    }

    /// The configuration a run's `meta.json` gives (defaults without one; never an error).
    pub fn from_meta(meta: Option<&Meta>) -> StallConfig {
        let Some(Value::Object(stall)) = meta.and_then(|m| m.extra.get(META_STALL_KEY)) else {
            return StallConfig::default();
        };
        let number = |key: &str| stall.get(key).and_then(Value::as_f64);
        StallConfig::new(number("factor"), number("after_s"))
    }

    /// The factor applied to the median step interval.
    pub fn factor(&self) -> f64 {
        self.factor.unwrap_or(DEFAULT_STALL_FACTOR)
    }

    /// The floor of the limit, in seconds.
    pub fn floor(&self) -> f64 {
        self.after_s.unwrap_or(DEFAULT_STALL_AFTER_SECS)
    }

    /// The `meta.json` value (`{"factor": F, "after_s": S}` with what is set), or `None` when
    /// nothing is set.
    pub fn to_meta_value(&self) -> Option<Value> {
        let mut out = Map::new();
        if let Some(f) = self.factor {
            out.insert("factor".into(), Value::from(f));
        }
        if let Some(s) = self.after_s {
            out.insert("after_s".into(), Value::from(s));
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    /// The limit for a run with this timing.
    pub fn limit(&self, timing: &StepTiming) -> StallLimit {
        let median = timing.median_interval();
        let floor = self.floor();
        let factor = self.factor();
        StallLimit {
            secs: median.map_or(floor, |m| floor.max(factor * m)),
            factor,
            median,
            floor,
        }
    }
}

/// How long a run may go without a new step, and where that figure comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StallLimit {
    pub secs: f64,
    pub factor: f64,
    /// The median recent step interval; `None` with too few steps.
    pub median: Option<f64>,
    pub floor: f64,
}

/// Why a running run was judged stalled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StallEvidence {
    /// Seconds since the last new step arrived.
    pub silent_secs: f64,
    pub limit: StallLimit,
}

impl std::fmt::Display for StallEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.limit;
        write!(
            f,
            "no new step for {} (limit {}: ",
            duration_text(self.silent_secs),
            duration_text(l.secs)
        )?;
        match l.median {
            Some(m) => write!(
                f,
                "{} × the median step interval {}, floor {})",
                number_text(l.factor),
                duration_text(m),
                duration_text(l.floor)
            ),
            None => write!(
                f,
                "the floor; fewer than {MIN_INTERVALS_FOR_MEDIAN} step intervals for a median)"
            ),
        }
    }
}

/// Judges whether a run that is running and alive is stalled at `now` (seconds since the epoch).
/// A run that never logged a timed step is not judged.
pub fn stall_evidence(
    timing: &StepTiming,
    config: &StallConfig,
    now: f64,
) -> Option<StallEvidence> {
    let at = timing.at?;
    let silent_secs = now - at;
    let limit = config.limit(timing);
    (silent_secs > limit.secs).then_some(StallEvidence { silent_secs, limit })
}

/// A number without a needless fraction: `5`, `2.5`.
fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{}", (v * 100.0).round() / 100.0)
    }
}

/// A duration as people read it: `0.2s`, `45s`, `2m`, `14m 3s`, `3h 5m`.
pub fn duration_text(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return format!("{secs}s");
    }
    if secs < 10.0 && secs.fract() != 0.0 {
        let tenths = (secs * 10.0).round() / 10.0;
        return format!("{}s", number_text(tenths));
    }
    let whole = secs.round() as u64;
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_format::events::MetricsEvent;

    fn step(step: i64, ts: f64) -> Event<'static> {
        Event::Metrics(MetricsEvent {
            ts: Some(ts),
            step: Some(step),
            ..Default::default()
        })
    }

    fn timing(steps: &[(i64, f64)]) -> StepTiming {
        let mut t = StepTiming::default();
        for &(s, ts) in steps {
            t.observe(&step(s, ts));
        }
        t
    }

    #[test]
    fn only_new_steps_count_and_the_list_is_bounded() {
        let t = timing(&[(1, 10.0), (2, 12.0), (2, 13.0), (1, 14.0), (3, 15.0)]);
        assert_eq!(t.step, Some(3));
        assert_eq!(t.at, Some(15.0));
        assert_eq!(Vec::from(t.intervals.clone()), vec![2.0, 3.0]);
        let many: Vec<(i64, f64)> = (0..200).map(|i| (i, i as f64 * 2.0)).collect();
        let t = timing(&many);
        assert_eq!(t.intervals.len(), RECENT_STEP_INTERVALS);
        // Events of other kinds and events without a step change nothing.
        let mut t2 = t.clone();
        t2.observe(&Event::Other {
            kind: "image".into(),
            ts: Some(9e9),
        });
        t2.observe(&Event::Metrics(MetricsEvent {
            ts: Some(9e9),
            ..Default::default()
        }));
        assert_eq!(t2, t);
    }

    #[test]
    fn median_needs_three_intervals() {
        assert_eq!(
            timing(&[(1, 0.0), (2, 1.0), (3, 2.0)]).median_interval(),
            None
        );
        let t = timing(&[(1, 0.0), (2, 1.0), (3, 2.0), (4, 10.0)]);
        assert_eq!(t.median_interval(), Some(1.0));
        let t = timing(&[(1, 0.0), (2, 1.0), (3, 2.0), (4, 10.0), (5, 30.0)]);
        assert_eq!(
            t.median_interval(),
            Some(4.5),
            "mean of the two middle values"
        );
    }

    #[test]
    fn limit_is_the_larger_of_the_floor_and_factor_times_median() {
        // Steps every 120 s: 5 × 120 = 600 equals the default floor.
        let steps: Vec<(i64, f64)> = (0..10).map(|i| (i, i as f64 * 120.0)).collect();
        let t = timing(&steps);
        let last = 9.0 * 120.0;
        let default = StallConfig::default();
        assert_eq!(default.limit(&t).secs, 600.0);
        assert!(stall_evidence(&t, &default, last + 599.0).is_none());
        let e = stall_evidence(&t, &default, last + 843.0).unwrap();
        assert_eq!(
            e.to_string(),
            "no new step for 14m 3s (limit 10m: 5 × the median step interval 2m, floor 10m)"
        );
        // A larger factor moves the limit above the floor.
        let slow = StallConfig::new(Some(10.0), None);
        assert_eq!(slow.limit(&t).secs, 1200.0);
        assert!(stall_evidence(&t, &slow, last + 843.0).is_none());
        // A smaller floor lets the factor decide.
        let quick = StallConfig::new(None, Some(1.0));
        assert_eq!(quick.limit(&t).secs, 600.0);
        let quick = StallConfig::new(Some(2.0), Some(1.0));
        assert_eq!(quick.limit(&t).secs, 240.0);
    }

    #[test]
    fn too_few_steps_use_the_floor_and_untimed_runs_are_not_judged() {
        let t = timing(&[(1, 0.0), (2, 1.0)]);
        let c = StallConfig::new(None, Some(30.0));
        let e = stall_evidence(&t, &c, 32.0).unwrap();
        assert_eq!(e.limit.secs, 30.0);
        assert_eq!(
            e.to_string(),
            "no new step for 31s (limit 30s: the floor; fewer than 3 step intervals for a median)"
        );
        assert!(stall_evidence(&StepTiming::default(), &c, 1e12).is_none());
        // A new step without a time makes the run unjudged until a timed one arrives.
        let mut t = t;
        t.observe(&Event::Metrics(MetricsEvent {
            step: Some(3),
            ..Default::default()
        }));
        assert!(stall_evidence(&t, &c, 1e12).is_none());
    }

    #[test]
    fn a_new_step_clears_the_verdict() {
        let mut t = timing(&[(1, 0.0), (2, 0.2), (3, 0.4), (4, 0.6)]);
        let c = StallConfig::new(Some(5.0), Some(1.0));
        assert!(stall_evidence(&t, &c, 2.0).is_some());
        t.observe(&step(5, 1.9));
        assert!(stall_evidence(&t, &c, 2.0).is_none());
    }

    #[test]
    fn config_comes_from_meta_and_absurd_values_mean_defaults() {
        let meta = |v: Value| -> Meta {
            serde_json::from_value(serde_json::json!({"id": "r", "stall": v})).unwrap()
        };
        let c = StallConfig::from_meta(Some(&meta(
            serde_json::json!({"factor": 3, "after_s": 60.5}),
        )));
        assert_eq!((c.factor(), c.floor()), (3.0, 60.5));
        for absurd in [
            serde_json::json!({"factor": 0, "after_s": -1}),
            serde_json::json!({"factor": "5", "after_s": null}),
            serde_json::json!("fast"),
            serde_json::json!([1, 2]),
        ] {
            let c = StallConfig::from_meta(Some(&meta(absurd.clone())));
            assert_eq!(
                (c.factor(), c.floor()),
                (DEFAULT_STALL_FACTOR, DEFAULT_STALL_AFTER_SECS),
                "{absurd}"
            );
        }
        let c = StallConfig::new(Some(f64::NAN), Some(f64::INFINITY));
        assert_eq!(c, StallConfig::default());
        assert_eq!(StallConfig::from_meta(None), StallConfig::default());
        let only_floor = StallConfig::new(None, Some(1.0));
        assert_eq!(
            only_floor.to_meta_value(),
            Some(serde_json::json!({"after_s": 1.0}))
        );
        assert_eq!(StallConfig::default().to_meta_value(), None);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        for (secs, text) in [
            (0.2, "0.2s"),
            (1.0, "1s"),
            (45.0, "45s"),
            (120.0, "2m"),
            (843.0, "14m 3s"),
            (3600.0, "1h"),
            (11_100.0, "3h 5m"),
        ] {
            assert_eq!(duration_text(secs), text);
        }
    }
}
