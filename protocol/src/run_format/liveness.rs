//! Deciding whether a run that says `running` is really running.
//!
//! On the owner's own host the process table decides: the owning process is gone (or its pid
//! now belongs to a newer process) means crashed, and a live owner means running even when its
//! heartbeat is late (a stopped or suspended process is not dead). Elsewhere the heartbeat
//! decides: older than three intervals means crashed, a fresher one alive. A run from another
//! host without heartbeats (upstream's) cannot be judged and keeps its written status (and is
//! never judged `stalled` either: only a run known to be alive can be).

use super::process;
use super::records::{Meta, RunStatus, StatusRecord};

/// How many heartbeat intervals may pass before a run counts as crashed.
pub const MISSED_HEARTBEATS_FOR_CRASH: f64 = 3.0;

/// What a reader knows about the place it reads on.
#[derive(Debug, Clone)]
pub struct LivenessContext {
    pub hostname: String,
    /// Seconds since the Unix epoch.
    pub now: f64,
}

impl LivenessContext {
    pub fn here_and_now() -> Self {
        LivenessContext {
            hostname: process::local_hostname(),
            now: unix_now(),
        }
    }
}

/// Seconds since the Unix epoch, as a float (the run format's time unit).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Why a run that says running was judged crashed.
#[derive(Debug, Clone, PartialEq)]
pub enum CrashEvidence {
    ProcessGone { pid: i64 },
    PidReused { pid: i64 },
    HeartbeatStale { age_secs: f64, interval_secs: f64 },
}

impl std::fmt::Display for CrashEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrashEvidence::ProcessGone { pid } => write!(f, "process {pid} is gone"),
            CrashEvidence::PidReused { pid } => {
                write!(f, "pid {pid} now belongs to another process")
            }
            CrashEvidence::HeartbeatStale {
                age_secs,
                interval_secs,
            } => {
                write!(
                    f,
                    "no heartbeat for {age_secs:.0}s (interval {interval_secs:.0}s)"
                )
            }
        }
    }
}

/// What the best evidence says of a run whose `status.json` says `running`.
#[derive(Debug, Clone, PartialEq)]
pub enum Liveness {
    /// Its owner was found in this host's process table, or its heartbeat is fresh.
    Alive,
    /// Nothing can tell (another host, no heartbeat: upstream's runs); it keeps its status.
    Unjudged,
    Crashed(CrashEvidence),
}

/// Judges a run's effective status from its records.
pub fn effective_status(
    status: &StatusRecord,
    meta: Option<&Meta>,
    ctx: &LivenessContext,
) -> (RunStatus, Option<CrashEvidence>) {
    let written = RunStatus::parse(&status.status);
    if written != RunStatus::Running {
        return (written, None);
    }
    match judge_liveness(status, meta, ctx) {
        Liveness::Crashed(evidence) => (RunStatus::Crashed, Some(evidence)),
        Liveness::Alive | Liveness::Unjudged => (RunStatus::Running, None),
    }
}

/// Judges whether the writer of a run that says `running` is alive (see the module's rules).
pub fn judge_liveness(
    status: &StatusRecord,
    meta: Option<&Meta>,
    ctx: &LivenessContext,
) -> Liveness {
    let host = status
        .host
        .as_deref()
        .or(meta.and_then(|m| m.hostname.as_deref()));
    let pid = status.pid.or(meta.and_then(|m| m.pid));
    if let (Some(host), Some(pid)) = (host, pid) {
        if host == ctx.hostname {
            if !process::pid_alive(pid) {
                return Liveness::Crashed(CrashEvidence::ProcessGone { pid });
            }
            if let (Some(expected), Ok(pid32)) = (status.proc_start_ticks, u32::try_from(pid)) {
                if let Some(actual) = process::proc_start_ticks(pid32) {
                    if actual != expected {
                        return Liveness::Crashed(CrashEvidence::PidReused { pid });
                    }
                }
            }
            // The owner is alive on this host: a late heartbeat means it is stopped (Ctrl-Z),
            // suspended or busy, not dead.
            return Liveness::Alive;
        }
    }
    if let (Some(at), Some(interval)) = (status.heartbeat_at, status.heartbeat_interval) {
        if interval > 0.0 {
            let age = ctx.now - at;
            if age > MISSED_HEARTBEATS_FOR_CRASH * interval {
                return Liveness::Crashed(CrashEvidence::HeartbeatStale {
                    age_secs: age,
                    interval_secs: interval,
                });
            }
            return Liveness::Alive;
        }
    }
    Liveness::Unjudged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> StatusRecord {
        StatusRecord {
            status: "running".into(),
            ..Default::default()
        }
    }

    #[test]
    fn terminal_statuses_are_kept() {
        let ctx = LivenessContext::here_and_now();
        let st = StatusRecord {
            status: "finished".into(),
            pid: Some(-1),
            ..Default::default()
        };
        assert_eq!(effective_status(&st, None, &ctx).0, RunStatus::Finished);
    }

    #[test]
    fn dead_pid_on_this_host_is_crashed() {
        let ctx = LivenessContext::here_and_now();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i64;
        child.wait().unwrap();
        let st = StatusRecord {
            pid: Some(pid),
            host: Some(ctx.hostname.clone()),
            ..running()
        };
        assert_eq!(
            effective_status(&st, None, &ctx).1,
            Some(CrashEvidence::ProcessGone { pid })
        );
        // The same pid on another host cannot be judged.
        let st = StatusRecord {
            host: Some("elsewhere".into()),
            ..st
        };
        assert_eq!(effective_status(&st, None, &ctx).0, RunStatus::Running);
        // Upstream: hostname and pid only in meta.json.
        let meta = Meta {
            hostname: Some(ctx.hostname.clone()),
            pid: Some(pid),
            ..Default::default()
        };
        assert_eq!(
            effective_status(&running(), Some(&meta), &ctx).0,
            RunStatus::Crashed
        );
    }

    #[test]
    fn live_pid_with_other_start_time_is_reused() {
        let ctx = LivenessContext::here_and_now();
        let me = std::process::id();
        let Some(ticks) = process::proc_start_ticks(me) else {
            return;
        };
        let st = StatusRecord {
            pid: Some(me as i64),
            host: Some(ctx.hostname.clone()),
            proc_start_ticks: Some(ticks),
            ..running()
        };
        assert_eq!(effective_status(&st, None, &ctx).0, RunStatus::Running);
        let st = StatusRecord {
            proc_start_ticks: Some(ticks + 1),
            ..st
        };
        assert_eq!(effective_status(&st, None, &ctx).0, RunStatus::Crashed);
    }

    #[test]
    fn live_owner_on_this_host_wins_over_a_late_heartbeat() {
        let ctx = LivenessContext::here_and_now();
        let st = StatusRecord {
            pid: Some(std::process::id() as i64),
            host: Some(ctx.hostname.clone()),
            heartbeat_at: Some(ctx.now - 1000.0),
            heartbeat_interval: Some(1.0),
            ..running()
        };
        assert_eq!(effective_status(&st, None, &ctx).0, RunStatus::Running);
    }

    #[test]
    fn stale_heartbeat_from_another_host_is_crashed() {
        let ctx = LivenessContext {
            hostname: "here".into(),
            now: 1000.0,
        };
        let st = StatusRecord {
            host: Some("gpu-9".into()),
            pid: Some(1),
            heartbeat_at: Some(971.0),
            heartbeat_interval: Some(10.0),
            ..running()
        };
        assert_eq!(effective_status(&st, None, &ctx).0, RunStatus::Running);
        let st = StatusRecord {
            heartbeat_at: Some(969.0),
            ..st
        };
        assert!(matches!(
            effective_status(&st, None, &ctx).1,
            Some(CrashEvidence::HeartbeatStale { .. })
        ));
    }

    #[test]
    fn only_evidence_makes_a_run_alive() {
        let ctx = LivenessContext {
            hostname: "here".into(),
            now: 1000.0,
        };
        assert_eq!(judge_liveness(&running(), None, &ctx), Liveness::Unjudged);
        let far = StatusRecord {
            host: Some("gpu-9".into()),
            pid: Some(1),
            ..running()
        };
        assert_eq!(judge_liveness(&far, None, &ctx), Liveness::Unjudged);
        let beating = StatusRecord {
            heartbeat_at: Some(990.0),
            heartbeat_interval: Some(10.0),
            ..far
        };
        assert_eq!(judge_liveness(&beating, None, &ctx), Liveness::Alive);
        let here = LivenessContext::here_and_now();
        let me = StatusRecord {
            pid: Some(std::process::id() as i64),
            host: Some(here.hostname.clone()),
            ..running()
        };
        assert_eq!(judge_liveness(&me, None, &here), Liveness::Alive);
    }
}
