//! What a run asks to be alerted about, and the evidence readers keep for it.
//!
//! This module owns `meta.json`'s `"alerts": {"watch": [KEY, ...], "gpu_idle_after_s": N}`
//! ([`AlertConfig`]: which metrics are watched for non-finite values, and after how long
//! all-idle GPUs raise an alert), the first non-finite value of each metric seen while
//! `events.jsonl` is read ([`NonFiniteSeen`], kept like the step timing), and the GPU idle
//! tracking of `system.jsonl` ([`GpuIdle`]). Without a `watch` list, every metric whose name
//! contains `loss` is watched. The alerts themselves are the wire's `RunAlert`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::events::Event;
use super::records::Meta;
use crate::wire::float::nonfinite_token;

/// The `meta.json` key of the alert configuration.
pub const META_ALERTS_KEY: &str = "alerts";
/// Without a `watch` list, metrics whose name contains this are watched.
pub const DEFAULT_WATCH_SUBSTRING: &str = "loss";
/// The default time all of a run's GPUs must stay idle before `gpu_idle` is raised, seconds.
pub const DEFAULT_GPU_IDLE_AFTER_SECS: f64 = 900.0;
/// A GPU under this utilisation (percent) counts as idle.
pub const GPU_IDLE_UTIL_PERCENT: f64 = 5.0;
/// How many metrics' first non-finite values are kept (a run logging thousands of NaN keys
/// still costs a bounded record).
pub const MAX_NONFINITE_KEYS: usize = 64;
/// At most this many names in a `watch` list are kept.
pub const MAX_WATCHED_KEYS: usize = 256;

/// A run's alert configuration (`meta.json`'s `alerts`). Absent or malformed settings mean
/// the defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertConfig {
    /// Metrics watched for NaN and infinities; `None`: those whose name contains `loss`.
    pub watch: Option<Vec<String>>,
    /// Seconds all GPUs must stay under [`GPU_IDLE_UTIL_PERCENT`] while running.
    pub gpu_idle_after_s: Option<f64>,
}

impl AlertConfig {
    /// The configuration a run's `meta.json` gives (defaults without one; never an error).
    pub fn from_meta(meta: Option<&Meta>) -> AlertConfig {
        let Some(Value::Object(alerts)) = meta.and_then(|m| m.extra.get(META_ALERTS_KEY)) else {
            return AlertConfig::default();
        };
        let watch = match alerts.get("watch") {
            Some(Value::Array(keys)) => Some(
                keys.iter()
                    .filter_map(Value::as_str)
                    .take(MAX_WATCHED_KEYS)
                    .map(str::to_owned)
                    .collect(),
            ),
            _ => None,
        };
        let gpu_idle_after_s = alerts
            .get("gpu_idle_after_s")
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v > 0.0);
        AlertConfig {
            watch,
            gpu_idle_after_s,
        }
    }

    /// The `meta.json` value, or `None` when nothing is set.
    pub fn to_meta_value(&self) -> Option<Value> {
        let mut out = Map::new();
        if let Some(watch) = &self.watch {
            out.insert("watch".into(), Value::from(watch.clone()));
        }
        if let Some(s) = self.gpu_idle_after_s {
            out.insert("gpu_idle_after_s".into(), Value::from(s));
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    /// Whether a metric is watched for non-finite values.
    pub fn watches(&self, key: &str) -> bool {
        match &self.watch {
            Some(keys) => keys.iter().any(|k| k == key),
            None => key.contains(DEFAULT_WATCH_SUBSTRING),
        }
    }

    /// Seconds of all-idle GPUs that raise `gpu_idle`.
    pub fn gpu_idle_after(&self) -> f64 {
        self.gpu_idle_after_s.unwrap_or(DEFAULT_GPU_IDLE_AFTER_SECS)
    }
}

/// A metric's first non-finite value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NonFinitePoint {
    pub step: Option<i64>,
    /// `NaN`, `Infinity` or `-Infinity`.
    pub value: String,
    /// The event's time (`ts`, else `time`).
    pub at: Option<f64>,
}

/// The first non-finite value of each metric (at most [`MAX_NONFINITE_KEYS`] metrics), kept as
/// `events.jsonl` is read incrementally.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NonFiniteSeen {
    #[serde(default)]
    pub first: BTreeMap<String, NonFinitePoint>,
}

impl NonFiniteSeen {
    /// Takes one event into account.
    pub fn observe(&mut self, event: &Event<'_>) {
        let Event::Metrics(m) = event else {
            return;
        };
        for (key, value) in &m.values {
            if value.is_finite() || self.first.contains_key(key.as_ref()) {
                continue;
            }
            if self.first.len() >= MAX_NONFINITE_KEYS {
                return;
            }
            self.first.insert(
                key.to_string(),
                NonFinitePoint {
                    step: m.step,
                    value: nonfinite_token(*value).to_owned(),
                    at: m.ts.or(m.time).filter(|t| t.is_finite()),
                },
            );
        }
    }
}

/// How long a run's GPUs have been idle, kept as `system.jsonl` is read incrementally.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuIdle {
    /// Bytes of `system.jsonl` read (complete lines only).
    #[serde(default)]
    pub offset: u64,
    /// When the current all-idle stretch began (`None`: the last sample had a busy GPU, or no
    /// GPU at all).
    #[serde(default)]
    pub idle_since: Option<f64>,
    /// The time of the last sample read.
    #[serde(default)]
    pub last_at: Option<f64>,
}

impl GpuIdle {
    /// Takes one `system.jsonl` sample (its `ts` and `data`) into account.
    pub fn observe(&mut self, ts: f64, data: &Map<String, Value>) {
        let utils: Vec<f64> = data
            .iter()
            .filter(|(k, _)| k.starts_with("sys/gpu.") && k.ends_with("/util_percent"))
            .filter_map(|(_, v)| v.as_f64())
            .collect();
        let idle = !utils.is_empty() && utils.iter().all(|u| *u < GPU_IDLE_UTIL_PERCENT);
        self.idle_since = if idle {
            Some(self.idle_since.unwrap_or(ts))
        } else {
            None
        };
        self.last_at = Some(ts);
    }

    /// Reads the complete lines of `bytes` (the file from `self.offset` on); returns the bytes
    /// consumed. A line that is not a sample is skipped.
    pub fn read(&mut self, bytes: &[u8]) -> usize {
        let mut consumed = 0;
        while let Some(end) = bytes[consumed..].iter().position(|b| *b == b'\n') {
            let line = &bytes[consumed..consumed + end];
            consumed += end + 1;
            let Ok(Value::Object(sample)) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let (Some(ts), Some(Value::Object(data))) =
                (sample.get("ts").and_then(Value::as_f64), sample.get("data"))
            else {
                continue;
            };
            self.observe(ts, data);
        }
        self.offset += consumed as u64;
        consumed
    }

    /// The start of an idle stretch that lasted at least `after` seconds, if one is going on.
    pub fn idle_for(&self, after: f64) -> Option<f64> {
        let (since, last) = (self.idle_since?, self.last_at?);
        (last - since >= after).then_some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_format::events::MetricsEvent;
    use std::borrow::Cow;

    fn meta(v: Value) -> Meta {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config_reads_meta_and_defaults_to_loss_metrics() {
        let none = AlertConfig::from_meta(None);
        assert!(none.watches("train/loss") && none.watches("val_loss"));
        assert!(!none.watches("acc"));
        assert_eq!(none.gpu_idle_after(), DEFAULT_GPU_IDLE_AFTER_SECS);
        let m = meta(serde_json::json!({"alerts": {"watch": ["acc", 3], "gpu_idle_after_s": 60}}));
        let c = AlertConfig::from_meta(Some(&m));
        assert!(c.watches("acc") && !c.watches("loss"));
        assert_eq!(c.gpu_idle_after(), 60.0);
        let back = meta(serde_json::json!({"alerts": c.to_meta_value().unwrap()}));
        assert_eq!(AlertConfig::from_meta(Some(&back)), c);
        let bad = meta(serde_json::json!({"alerts": {"watch": "loss", "gpu_idle_after_s": -1}}));
        assert_eq!(AlertConfig::from_meta(Some(&bad)), AlertConfig::default());
        assert_eq!(AlertConfig::default().to_meta_value(), None);
    }

    #[test]
    fn the_first_nonfinite_value_of_each_metric_is_kept() {
        let mut seen = NonFiniteSeen::default();
        let event = |step, values: Vec<(&'static str, f64)>| {
            Event::Metrics(MetricsEvent {
                ts: Some(100.0 + step as f64),
                step: Some(step),
                values: values
                    .into_iter()
                    .map(|(k, v)| (Cow::Borrowed(k), v))
                    .collect(),
                ..MetricsEvent::default()
            })
        };
        seen.observe(&event(1, vec![("loss", 1.0)]));
        assert!(seen.first.is_empty());
        seen.observe(&event(2, vec![("loss", f64::NAN), ("lr", f64::INFINITY)]));
        seen.observe(&event(3, vec![("loss", f64::NEG_INFINITY)]));
        assert_eq!(
            seen.first["loss"],
            NonFinitePoint {
                step: Some(2),
                value: "NaN".into(),
                at: Some(102.0)
            }
        );
        assert_eq!(seen.first["lr"].value, "Infinity");
        for i in 0..200 {
            let key: &'static str = Box::leak(format!("k{i}").into_boxed_str());
            seen.observe(&event(4, vec![(key, f64::NAN)]));
        }
        assert_eq!(seen.first.len(), MAX_NONFINITE_KEYS);
    }

    #[test]
    fn gpu_idle_needs_every_gpu_idle_for_the_whole_stretch() {
        let mut g = GpuIdle::default();
        let text = concat!(
            r#"{"ts": 10, "type": "system", "data": {"sys/gpu.0/util_percent": 90, "sys/gpu.1/util_percent": 1}}"#,
            "\n",
            r#"{"ts": 20, "type": "system", "data": {"sys/gpu.0/util_percent": 2, "sys/gpu.1/util_percent": 0}}"#,
            "\n",
            "not json\n",
            r#"{"ts": 50, "type": "system", "data": {"sys/gpu.0/util_percent": 4, "sys/gpu.1/util_percent": 3}}"#,
            "\n",
            r#"{"ts": 60, "type": "sys"#,
        );
        let consumed = g.read(text.as_bytes());
        assert_eq!(consumed as u64, g.offset);
        assert!(
            text[consumed..].starts_with(r#"{"ts": 60"#),
            "a torn line waits"
        );
        assert_eq!(g.idle_since, Some(20.0));
        assert_eq!(g.idle_for(30.0), Some(20.0));
        assert_eq!(g.idle_for(31.0), None);
        g.read(b"{\"ts\": 70, \"type\": \"system\", \"data\": {\"sys/cpu_percent\": 3}}\n");
        assert_eq!(g.idle_since, None, "no GPU is not an idle GPU");
    }
}
