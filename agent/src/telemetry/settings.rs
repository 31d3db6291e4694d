//! The telemetry options shared by `runicorn-agent run` and `runicorn-agent daemon`:
//! `--telemetry-interval` (else `$RUNICORN_TELEMETRY_INTERVAL`, else 10 s; 0 turns it off),
//! `--no-telemetry` and `--nvidia-smi`, resolved to a `TelemetrySettings`.

use std::path::PathBuf;
use std::time::Duration;

use runicorn_cli::warning_label;

use super::nvidia_smi::{NvidiaSmi, Program};

/// The environment variable read when `--telemetry-interval` is not given.
pub const ENV_TELEMETRY_INTERVAL: &str = "RUNICORN_TELEMETRY_INTERVAL";
/// Seconds between samples when neither the option nor the environment says.
pub const DEFAULT_INTERVAL_SECS: f64 = 10.0;
/// The shortest interval: a shorter one is raised to this.
pub const MIN_INTERVAL_SECS: f64 = 0.1;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TelemetryArgs {
    /// Seconds between telemetry samples (CPU, memory and I/O of the run's processes, and the
    /// GPUs they use) appended to the run's system.jsonl; 0 turns telemetry off [default:
    /// $RUNICORN_TELEMETRY_INTERVAL, else 10]
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub telemetry_interval: Option<f64>,
    /// Record no telemetry (no system.jsonl)
    #[arg(long, conflicts_with = "telemetry_interval")]
    pub no_telemetry: bool,
    /// The nvidia-smi to ask for the GPUs [default: nvidia-smi on PATH; none there: no GPUs]
    #[arg(long, value_name = "PATH")]
    pub nvidia_smi: Option<PathBuf>,
}

/// Reads `--telemetry-interval`: a finite number of seconds, at least 0.
fn parse_interval(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs),
        _ => Err(format!(
            "{text:?} is not a number of seconds (0 or more; 0 turns telemetry off)"
        )),
    }
}

/// What the telemetry thread does, once the options and the environment are read.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `None`: telemetry is off.
    pub interval: Option<Duration>,
    pub nvidia_smi: NvidiaSmi,
}

impl TelemetryArgs {
    /// The settings, with `$RUNICORN_TELEMETRY_INTERVAL` standing in for a missing
    /// `--telemetry-interval`. An unusable environment value is warned about and the default
    /// used.
    pub fn settings(&self) -> TelemetrySettings {
        let env = std::env::var(ENV_TELEMETRY_INTERVAL).ok();
        let (interval, problem) =
            resolve_interval(self.telemetry_interval, self.no_telemetry, env.as_deref());
        if let Some(problem) = problem {
            eprintln!("{}: {problem}", warning_label());
        }
        let mut nvidia_smi = NvidiaSmi::default();
        if let Some(path) = &self.nvidia_smi {
            nvidia_smi.program = Program::Path(path.clone());
        }
        TelemetrySettings {
            interval,
            nvidia_smi,
        }
    }
}

/// The interval from the option, else the environment, else the default; `None` when off.
/// The second value says why an environment value was not used.
fn resolve_interval(
    flag: Option<f64>,
    no_telemetry: bool,
    env: Option<&str>,
) -> (Option<Duration>, Option<String>) {
    if no_telemetry {
        return (None, None);
    }
    let (secs, problem) = match (flag, env.map(str::trim).filter(|v| !v.is_empty())) {
        (Some(secs), _) => (secs, None),
        (None, None) => (DEFAULT_INTERVAL_SECS, None),
        (None, Some(text)) => match parse_interval(text) {
            Ok(secs) => (secs, None),
            Err(why) => (
                DEFAULT_INTERVAL_SECS,
                Some(format!(
                    "{ENV_TELEMETRY_INTERVAL}: {why}; sampling every {DEFAULT_INTERVAL_SECS} s \
                     (set it to a number of seconds, or 0 to turn telemetry off)"
                )),
            ),
        },
    };
    if secs == 0.0 {
        return (None, problem);
    }
    (
        Some(Duration::from_secs_f64(secs.max(MIN_INTERVAL_SECS))),
        problem,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Option<Duration>) -> Option<f64> {
        d.map(|d| d.as_secs_f64())
    }

    #[test]
    fn the_interval_comes_from_the_option_then_the_environment_then_the_default() {
        // (option, --no-telemetry, environment, interval wanted, warned about the environment)
        type Case<'a> = (Option<f64>, bool, Option<&'a str>, Option<f64>, bool);
        let cases: [Case; 11] = [
            (None, false, None, Some(10.0), false),
            (Some(2.5), false, Some("7"), Some(2.5), false),
            (None, false, Some("7"), Some(7.0), false),
            (None, false, Some(" 0.5 "), Some(0.5), false),
            (None, false, Some(""), Some(10.0), false),
            (Some(0.0), false, None, None, false),
            (None, false, Some("0"), None, false),
            (Some(0.01), false, None, Some(0.1), false),
            (Some(5.0), true, None, None, false),
            (None, false, Some("soon"), Some(10.0), true),
            (None, false, Some("-3"), Some(10.0), true),
        ];
        for (flag, off, env, want, warned) in cases {
            let (interval, problem) = resolve_interval(flag, off, env);
            assert_eq!(secs(interval), want, "{flag:?} {off} {env:?}");
            assert_eq!(
                problem.is_some(),
                warned,
                "{flag:?} {off} {env:?}: {problem:?}"
            );
            if let Some(problem) = problem {
                assert!(problem.contains(ENV_TELEMETRY_INTERVAL), "{problem}");
            }
        }
        for bad in ["-1", "NaN", "inf", "ten"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_interval("0.3"), Ok(0.3));
    }
}
