//! Raising a run's alerts while the feed scans it, and keeping them in the index.
//!
//! Each scan that computes a run's state derives the alerts its state shows now: `stalled`
//! and `crashed` from the derived status, `failed` from `status.json`, `nonfinite` from the
//! first NaN or infinity of each watched metric (`EventProgress::nonfinite`), `gpu_idle` from
//! `system.jsonl` (read incrementally, [`GpuIdle`]). An alert whose id the run already has is
//! not raised again; new ones join the run's raised alerts ([`RunAlerts`]), which are stored with
//! its cached state (`run_cache.alerts`) and sent with every announced state, so an alert
//! survives the run resuming and the agent restarting.

use std::io::{Read, Seek, SeekFrom};

use runicorn_protocol::run_format::alerts::GPU_IDLE_UTIL_PERCENT;
use runicorn_protocol::run_format::safe_read::open_regular;
use runicorn_protocol::run_format::{AlertConfig, GpuIdle, RunLocation, RunStatus};
use runicorn_protocol::wire::{
    bounded_message, RunAlert, RunChange, ALERT_CRASHED, ALERT_FAILED, ALERT_GPU_IDLE,
    ALERT_NONFINITE, ALERT_STALLED, MAX_ALERTS_PER_RUN,
};
use serde::{Deserialize, Serialize};

use super::CachedRun;

/// The telemetry file `runicorn-agent run` writes beside the run's events.
const SYSTEM_FILE: &str = "system.jsonl";
/// At most this much of `system.jsonl` is read per scan (the rest at the next).
const SYSTEM_READ_CHUNK: u64 = 1 << 20;

/// A run's raised alerts and the evidence kept between scans for them (stored as JSON in
/// `run_cache.alerts`; the non-finite values live with the event progress).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct RunAlerts {
    /// Every alert raised, oldest first, at most `MAX_ALERTS_PER_RUN`.
    #[serde(default)]
    pub raised: Vec<RunAlert>,
    /// How far `system.jsonl` was read, and the GPUs' current idle stretch.
    #[serde(default)]
    pub gpu: GpuIdle,
}

/// Raises the alerts `head` (the run's state just computed from `cache`) shows at `now`, and
/// reads on in `system.jsonl` while the run is live. Returns whether `cache` changed.
pub(super) fn raise(loc: &RunLocation, cache: &mut CachedRun, head: &RunChange, now: f64) -> bool {
    let status = RunStatus::from_name(&head.status);
    let live = status.is_some_and(|s| s.is_live());
    let mut changed = false;
    if live {
        changed |= read_system(loc, &mut cache.alerts.gpu);
    }
    let found = derive(cache, head, live, now);
    for alert in found {
        if cache.alerts.raised.len() >= MAX_ALERTS_PER_RUN {
            break;
        }
        if cache.alerts.raised.iter().any(|a| a.id == alert.id) {
            continue;
        }
        cache.alerts.raised.push(alert);
        changed = true;
    }
    changed
}

/// The alerts a run's state shows now (some may have been raised before).
fn derive(cache: &CachedRun, head: &RunChange, live: bool, now: f64) -> Vec<RunAlert> {
    let mut out = Vec::new();
    let alert = |id: String, kind: &str, message: String| RunAlert {
        id,
        kind: kind.to_owned(),
        raised_at: now,
        message: bounded_message(&message),
        key: None,
        step: None,
        value: None,
    };
    let reason = head.reason.as_deref().unwrap_or("no reason given");
    if head.status == RunStatus::Stalled.as_str() {
        let step = cache.progress.steps.step.or(head.events.last_step);
        let id = match step {
            Some(s) => format!("{ALERT_STALLED}@{s}"),
            None => format!("{ALERT_STALLED}@none"),
        };
        out.push(RunAlert {
            step,
            ..alert(id, ALERT_STALLED, format!("stalled: {reason}"))
        });
    }
    if head.status == RunStatus::Crashed.as_str() {
        // Raised at the run's last sign of life, when known: a crash found by a first scan of
        // an old root is old news (the hub lists it without notifying).
        let status = cache.records.status.as_ref();
        let last_alive = [
            status.and_then(|s| s.heartbeat_at),
            status.and_then(|s| s.started_at),
            head.events.last_event_at,
        ]
        .into_iter()
        .flatten()
        .filter(|t| t.is_finite())
        .reduce(f64::max);
        out.push(RunAlert {
            raised_at: last_alive.map_or(now, |t| t.min(now)),
            ..alert(
                ALERT_CRASHED.to_owned(),
                ALERT_CRASHED,
                format!("crashed: {reason}"),
            )
        });
    }
    let written_failed = cache
        .records
        .status
        .as_ref()
        .is_some_and(|s| RunStatus::parse(&s.status) == RunStatus::Failed);
    if written_failed && head.status == RunStatus::Failed.as_str() {
        let code = cache
            .records
            .status
            .as_ref()
            .and_then(|s| s.exit_code)
            .map(|c| format!(" (exit code {c})"))
            .unwrap_or_default();
        let why = head.reason.as_deref().unwrap_or("the run ended failed");
        out.push(RunAlert {
            // When it ended, when known: an old failure found by a first scan is old news.
            raised_at: head.ended_at.filter(|t| t.is_finite()).unwrap_or(now),
            ..alert(
                ALERT_FAILED.to_owned(),
                ALERT_FAILED,
                format!("failed{code}: {why}"),
            )
        });
    }
    let config = AlertConfig::from_meta(cache.records.meta.as_ref());
    for (key, point) in &cache.progress.nonfinite.first {
        if !config.watches(key) {
            continue;
        }
        let at = point
            .step
            .map(|s| format!(" at step {s}"))
            .unwrap_or_default();
        out.push(RunAlert {
            key: Some(key.clone()),
            step: point.step,
            value: Some(point.value.clone()),
            raised_at: point.at.unwrap_or(now),
            ..alert(
                format!("{ALERT_NONFINITE}:{key}"),
                ALERT_NONFINITE,
                format!("{key} is {}{at}", point.value),
            )
        });
    }
    let after = config.gpu_idle_after();
    if let Some(since) = cache.alerts.gpu.idle_for(after).filter(|_| live) {
        out.push(alert(
            format!("{ALERT_GPU_IDLE}@{}", since.floor() as i64),
            ALERT_GPU_IDLE,
            format!(
                "every GPU of the run under {GPU_IDLE_UTIL_PERCENT} % utilisation for {:.0}s (limit {after:.0}s)",
                cache.alerts.gpu.last_at.unwrap_or(since) - since
            ),
        ));
    }
    out
}

/// Reads the complete lines `system.jsonl` gained since the last scan (a file that shrank is
/// read again from the start; one that cannot be read is left for the next scan). Returns
/// whether anything was read.
fn read_system(loc: &RunLocation, gpu: &mut GpuIdle) -> bool {
    let path = loc.dir.join(SYSTEM_FILE);
    let Ok(mut file) = open_regular(&path, &loc.root()) else {
        return false;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    if len < gpu.offset {
        *gpu = GpuIdle::default();
    }
    if len == gpu.offset || file.seek(SeekFrom::Start(gpu.offset)).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    if file.take(SYSTEM_READ_CHUNK).read_to_end(&mut buf).is_err() {
        return false;
    }
    gpu.read(&buf) > 0
}

#[cfg(test)]
mod tests {
    use super::super::feed::{Feed, ScanScope};
    use super::super::RunIndex;
    use runicorn_protocol::run_format::{
        LivenessContext, RunOutcome, RunSpec, RunWriter, StallConfig,
    };
    use runicorn_protocol::wire::RunAlert;
    use std::path::Path;
    use std::sync::Mutex;

    fn alerts_now(root: &Path) -> Vec<RunAlert> {
        let index = Mutex::new(RunIndex::open(root).unwrap());
        let mut feed = Feed::new(root);
        feed.scan(&index, ScanScope::All, &LivenessContext::here_and_now())
            .unwrap();
        let page = index.lock().unwrap().feed_page(0, 100, false).unwrap();
        page.entries
            .into_iter()
            .filter_map(|e| e.state)
            .flat_map(|s| s.alerts)
            .collect()
    }

    fn ids(alerts: &[RunAlert]) -> Vec<&str> {
        alerts.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn a_stall_is_raised_once_and_outlives_the_run_resuming() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test");
        spec.stall = StallConfig::new(None, Some(1.0));
        // Steps long ago: stalled now.
        spec.clock_offset = -100.0;
        let mut w = RunWriter::create(&spec).unwrap();
        for _ in 0..3 {
            w.log_metrics(&[("loss", 1.0)], None, None).unwrap();
        }
        w.flush().unwrap();
        let first = alerts_now(t.path());
        assert_eq!(ids(&first), ["stalled@3"]);
        assert_eq!(first[0].step, Some(3));
        assert!(
            first[0].message.starts_with("stalled: no new step"),
            "{first:?}"
        );
        // Scanned again by a new process: the same alert, raised at the same moment.
        assert_eq!(alerts_now(t.path()), first);
        // The run steps again (running), then ends: the stall is still on record.
        w.advance_clock(100.0);
        w.log_metrics(&[("loss", 0.5)], None, None).unwrap();
        w.flush().unwrap();
        assert_eq!(alerts_now(t.path()), first);
        w.finish(RunOutcome::finished()).unwrap();
        assert_eq!(alerts_now(t.path()), first);
    }

    #[test]
    fn nonfinite_values_of_watched_metrics_raise_one_alert_each() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test");
        spec.run_id = Some("default-watch".into());
        let mut w = RunWriter::create(&spec).unwrap();
        w.log_metrics(&[("train/loss", 1.0), ("acc", f64::NAN)], None, None)
            .unwrap();
        w.log_metrics(&[("train/loss", f64::NAN)], None, None)
            .unwrap();
        w.log_metrics(&[("train/loss", f64::INFINITY)], None, None)
            .unwrap();
        w.finish(RunOutcome::finished()).unwrap();
        let alerts = alerts_now(t.path());
        assert_eq!(ids(&alerts), ["nonfinite:train/loss"], "acc is not watched");
        let a = &alerts[0];
        assert_eq!(
            (a.key.as_deref(), a.step, a.value.as_deref()),
            (Some("train/loss"), Some(2), Some("NaN"))
        );
        assert_eq!(a.message, "train/loss is NaN at step 2");

        let mut spec = RunSpec::new(t.path(), "test");
        spec.run_id = Some("watch-acc".into());
        spec.alerts.watch = Some(vec!["acc".into()]);
        let mut w = RunWriter::create(&spec).unwrap();
        w.log_metrics(
            &[("loss", f64::NAN), ("acc", f64::NEG_INFINITY)],
            None,
            None,
        )
        .unwrap();
        w.finish(RunOutcome::finished()).unwrap();
        let alerts = alerts_now(t.path());
        assert_eq!(ids(&alerts), ["nonfinite:train/loss", "nonfinite:acc"]);
        assert_eq!(alerts[1].value.as_deref(), Some("-Infinity"));
    }

    #[test]
    fn a_failed_run_raises_failed() {
        let t = tempfile::tempdir().unwrap();
        let mut w = RunWriter::create(&RunSpec::new(t.path(), "test")).unwrap();
        w.finish(RunOutcome {
            status: runicorn_protocol::run_format::RunStatus::Failed,
            exit_code: Some(1),
            signal: None,
            reason: Some("CUDA out of memory".into()),
        })
        .unwrap();
        let alerts = alerts_now(t.path());
        assert_eq!(ids(&alerts), ["failed"]);
        assert!(
            alerts[0].message.contains("CUDA out of memory"),
            "{alerts:?}"
        );
        let ended = w.status().ended_at.unwrap();
        assert_eq!(alerts[0].raised_at, ended, "raised when it ended");
    }

    #[test]
    fn a_crash_is_raised_at_the_last_sign_of_life() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/p/gone");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), r#"{"id":"gone","path":"p"}"#).unwrap();
        // A writer on this host whose process is gone (pid above the kernel's maximum).
        let host = runicorn_protocol::run_format::LivenessContext::here_and_now().hostname;
        let status = serde_json::json!({"status": "running", "pid": 4_999_999, "host": host,
            "started_at": 1000.0, "heartbeat_at": 1500.0, "heartbeat_interval": 10.0});
        std::fs::write(dir.join("status.json"), status.to_string()).unwrap();
        let alerts = alerts_now(t.path());
        assert_eq!(ids(&alerts), ["crashed"], "{alerts:?}");
        assert_eq!(alerts[0].raised_at, 1500.0);
        assert!(alerts[0].message.starts_with("crashed: "), "{alerts:?}");
    }

    #[test]
    fn idle_gpus_of_a_live_run_raise_gpu_idle() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test");
        spec.alerts.gpu_idle_after_s = Some(60.0);
        let w = RunWriter::create(&spec).unwrap();
        let mut lines = String::new();
        for (ts, util) in [(1000, 80), (1010, 2), (1040, 0), (1069, 1)] {
            lines.push_str(&format!(
                "{{\"ts\": {ts}, \"type\": \"system\", \"data\": {{\"sys/gpu.0/util_percent\": {util}, \"sys/gpu.1/util_percent\": 0}}}}\n"
            ));
        }
        std::fs::write(w.dir().join("system.jsonl"), &lines).unwrap();
        assert_eq!(ids(&alerts_now(t.path())), Vec::<&str>::new(), "59s idle");
        lines.push_str("{\"ts\": 1071, \"type\": \"system\", \"data\": {\"sys/gpu.0/util_percent\": 3, \"sys/gpu.1/util_percent\": 4}}\n");
        std::fs::write(w.dir().join("system.jsonl"), &lines).unwrap();
        let alerts = alerts_now(t.path());
        assert_eq!(ids(&alerts), ["gpu_idle@1010"]);
        assert!(alerts[0].message.contains("61s"), "{alerts:?}");
    }
}
