//! The run's telemetry while `runicorn-agent run` runs its command: the command-line options
//! that set it up (`TelemetryArgs`, resolved to a `TelemetrySettings`), and the thread that
//! samples the command's process tree and GPUs (`crate::telemetry`) every interval and appends
//! one line per sample to `<run>/system.jsonl` (`SystemFile`; the format is docs/run-format.md,
//! "`system.jsonl`").
//!
//! Telemetry is tracking: a line that cannot be written is reported once through the run's
//! `TrackingProblems` (and tried again at the next sample), a failing nvidia-smi is reported
//! once and the samples go on without GPU figures, and neither ever touches the command.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runicorn_cli::warning_label;

use super::TrackingProblems;
use crate::telemetry::nvidia_smi::{NvidiaSmi, Program};
use crate::telemetry::sampler::{RunSampler, SamplerConfig};

/// The environment variable read when `--telemetry-interval` is not given.
pub const ENV_TELEMETRY_INTERVAL: &str = "RUNICORN_TELEMETRY_INTERVAL";
/// Seconds between samples when neither the option nor the environment says.
pub const DEFAULT_INTERVAL_SECS: f64 = 10.0;
/// The shortest interval: a shorter one is raised to this.
pub const MIN_INTERVAL_SECS: f64 = 0.1;
/// The file of the run the samples are appended to.
pub const SYSTEM_FILE: &str = "system.jsonl";

/// Values are written rounded to this many decimals (`ts` to the millisecond).
const DECIMALS: i32 = 3;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TelemetryArgs {
    /// Seconds between telemetry samples (CPU, memory and I/O of the command's processes, and
    /// the GPUs they use) appended to system.jsonl; 0 turns telemetry off [default:
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

/// A value rounded to `DECIMALS` decimals (huge values, which have none, as they are).
fn rounded(value: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    if value.abs() < 1e12 {
        (value * scale).round() / scale
    } else {
        value
    }
}

/// A value as JSON: rounded, whole numbers without a fraction (`3`, not `3.0`); `None` when
/// not finite.
fn json_value(value: f64) -> Option<String> {
    let value = rounded(value);
    if !value.is_finite() {
        return None;
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        // Exact: a whole number below 2^53 converts to i64 without loss.
        return Some((value as i64).to_string());
    }
    serde_json::Number::from_f64(value).map(|n| n.to_string())
}

/// One `system.jsonl` line, `\n`-terminated: `{"ts": …, "type": "system", "data": {…}}` with
/// the points in their order. A non-finite value is left out.
pub fn system_line(ts: f64, points: &[(String, f64)]) -> String {
    let ts =
        serde_json::Number::from_f64(rounded(ts)).map_or_else(|| "0".to_owned(), |n| n.to_string());
    let mut line = format!("{{\"ts\": {ts}, \"type\": \"system\", \"data\": {{");
    let mut first = true;
    for (key, value) in points {
        let Some(value) = json_value(*value) else {
            continue;
        };
        if !first {
            line.push_str(", ");
        }
        first = false;
        line.push_str(&serde_json::Value::String(key.clone()).to_string());
        line.push_str(": ");
        line.push_str(&value);
    }
    line.push_str("}}\n");
    line
}

/// Why a sample could not be appended.
#[derive(Debug, thiserror::Error)]
#[error("cannot append a telemetry sample to {}: {source}", path.display())]
pub struct SystemFileError {
    path: PathBuf,
    source: std::io::Error,
}

/// `<run>/system.jsonl`, appended to one line at a time.
///
/// The file is opened for each line (append, create, never through a symbolic link), so a
/// file removed or made writable again is picked up at the next sample. Each line is one
/// `write`; when one stops short (a full disk), the next line starts with a `\n` so that only
/// the torn line is lost to readers.
#[derive(Debug)]
pub struct SystemFile {
    path: PathBuf,
    torn: bool,
}

impl SystemFile {
    pub fn new(run_dir: &Path) -> Self {
        SystemFile {
            path: run_dir.join(SYSTEM_FILE),
            torn: false,
        }
    }

    /// Appends `line` (one `\n`-terminated line).
    pub fn append(&mut self, line: &str) -> Result<(), SystemFileError> {
        let error = |source| SystemFileError {
            path: self.path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(error)?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        if self.torn {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(line.as_bytes());
        let written = loop {
            match file.write(&bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match written {
            Ok(n) if n == bytes.len() => {
                self.torn = false;
                Ok(())
            }
            Ok(n) => {
                self.torn |= n > 0;
                Err(error(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("only {n} of {} bytes were written", bytes.len()),
                )))
            }
            Err(e) => Err(error(e)),
        }
    }
}

/// The sampling thread of a run; `stop` ends it and waits for it.
pub struct TelemetryThread {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl TelemetryThread {
    /// Starts sampling the process tree under `root_pid` (the command, not yet waited for) into
    /// `<run_dir>/system.jsonl`; `None` when telemetry is off or the thread cannot start (said
    /// on stderr; the command runs untracked by telemetry).
    pub fn start(
        settings: &TelemetrySettings,
        root_pid: u32,
        run_dir: &Path,
        tracking: TrackingProblems,
    ) -> Option<TelemetryThread> {
        let period = settings.interval?;
        // Made here, before the command can be reaped, so that its pid is still its own.
        let sampler = RunSampler::new(
            root_pid,
            SamplerConfig {
                nvidia_smi: Some(settings.nvidia_smi.clone()),
            },
        );
        let file = SystemFile::new(run_dir);
        let run_dir = run_dir.to_owned();
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("runicorn-telemetry".into())
            .spawn(move || {
                sample_until_stopped(sampler, file, period, &stopped, &tracking, &run_dir)
            });
        match spawned {
            Ok(thread) => Some(TelemetryThread { stop, thread }),
            Err(err) => {
                eprintln!(
                    "{}: runicorn could not start its telemetry thread ({err}); the command runs \
                     without system.jsonl",
                    warning_label()
                );
                None
            }
        }
    }

    /// Stops sampling; once this returns, nothing more is written (a sample under way is
    /// finished first, which takes at most nvidia-smi's timeout).
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The thread's loop: a first reading of the tree at once (no line: it only starts the CPU
/// count), then one sample and one line every `period` (ticks missed by a slow sample are
/// skipped), until `stopped` is dropped or the command's process is gone.
fn sample_until_stopped(
    mut sampler: RunSampler,
    mut file: SystemFile,
    period: Duration,
    stopped: &mpsc::Receiver<()>,
    tracking: &TrackingProblems,
    run_dir: &Path,
) {
    let start = Instant::now();
    if sampler.sample_with(start, None).tree.ended {
        return;
    }
    let mut gpu_warned = false;
    let mut next = start + period;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match stopped.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stopped (or the sender gone): the command has ended.
            _ => return,
        }
        let now = Instant::now();
        while next <= now {
            next += period;
        }
        let sample = sampler.sample(now);
        if sample.tree.ended {
            return;
        }
        if let Some(error) = &sample.gpu_error {
            if !gpu_warned {
                gpu_warned = true;
                eprintln!(
                    "{}: runicorn could not read the GPUs for the run in {}: {error}; its \
                     telemetry goes on without GPU figures while this lasts, and the command \
                     keeps running",
                    warning_label(),
                    run_dir.display()
                );
            }
        }
        let points = sample.points();
        if points.is_empty() {
            continue;
        }
        tracking.report(file.append(&system_line(epoch_seconds(), &points)));
    }
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

    #[test]
    fn a_line_is_the_documented_json_object() {
        let points = vec![
            ("sys/cpu_percent".to_owned(), 153.234_567),
            ("sys/rss_mib".to_owned(), 812.5),
            ("sys/procs".to_owned(), 3.0),
            ("sys/gpu.2/util_percent".to_owned(), f64::NAN),
            ("sys/gpu.2/mem_used_mib".to_owned(), 30211.0),
        ];
        let line = system_line(1_795_696_136.312_345, &points);
        assert!(line.ends_with("}}\n") && !line[..line.len() - 1].contains('\n'));
        assert!(
            line.starts_with("{\"ts\": 1795696136.312, \"type\": \"system\""),
            "{line}"
        );
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["type"], "system");
        let data = value["data"].as_object().expect("an object");
        assert_eq!(data.len(), 4, "the NaN is left out: {line}");
        assert_eq!(data["sys/cpu_percent"], 153.235);
        assert_eq!(data["sys/rss_mib"], 812.5);
        assert_eq!(
            data["sys/procs"], 3,
            "a whole number is written without a fraction"
        );
        assert!(line.contains("\"sys/procs\": 3,"), "{line}");
        assert_eq!(data["sys/gpu.2/mem_used_mib"].as_f64(), Some(30211.0));
        assert_eq!(
            system_line(5.0, &[]),
            "{\"ts\": 5.0, \"type\": \"system\", \"data\": {}}\n"
        );
    }

    #[test]
    fn lines_are_appended_and_a_failure_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut file = SystemFile::new(dir.path());
        file.append("{\"a\": 1}\n").expect("append");
        file.append("{\"a\": 2}\n").expect("append");
        let text = std::fs::read_to_string(dir.path().join(SYSTEM_FILE)).expect("read");
        assert_eq!(text, "{\"a\": 1}\n{\"a\": 2}\n");

        let gone = dir.path().join("no-such-run");
        let error = SystemFile::new(&gone)
            .append("{}\n")
            .expect_err("no directory");
        assert!(
            error.to_string().contains("no-such-run/system.jsonl"),
            "{error}"
        );
    }

    #[test]
    fn a_link_in_place_of_the_file_is_not_followed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "").expect("write");
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("mkdir");
        std::os::unix::fs::symlink(&outside, run.join(SYSTEM_FILE)).expect("symlink");
        assert!(SystemFile::new(&run).append("{}\n").is_err());
        assert_eq!(std::fs::read_to_string(&outside).expect("read"), "");
    }

    #[test]
    fn a_torn_line_is_ended_before_the_next_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut file = SystemFile::new(dir.path());
        std::fs::write(dir.path().join(SYSTEM_FILE), "{\"torn\": ").expect("write");
        file.torn = true;
        file.append("{\"a\": 1}\n").expect("append");
        let text = std::fs::read_to_string(dir.path().join(SYSTEM_FILE)).expect("read");
        assert_eq!(text, "{\"torn\": \n{\"a\": 1}\n");
        assert!(!file.torn);
    }

    /// A command burning one core, killed when dropped (a failing test leaves nothing behind).
    struct Busy(std::process::Child);

    impl Drop for Busy {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_thread_samples_a_busy_command_and_stops_when_asked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Busy(
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("start sh"),
        );
        let settings = TelemetrySettings {
            interval: Some(Duration::from_millis(100)),
            nvidia_smi: NvidiaSmi {
                program: Program::Search(std::ffi::OsString::new()),
                timeout: Duration::from_secs(2),
            },
        };
        let tracking = TrackingProblems::new(dir.path().to_owned());
        let thread = TelemetryThread::start(&settings, child.0.id(), dir.path(), tracking)
            .expect("telemetry is on");
        let path = dir.path().join(SYSTEM_FILE);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&path).map_or(0, |t| t.lines().count()) < 3 {
            assert!(Instant::now() < deadline, "no three samples in 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        thread.stop();
        let text = std::fs::read_to_string(&path).expect("read");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            text,
            "nothing is written once stopped, though the command still runs"
        );
        drop(child);
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
            assert!(
                value["data"]["sys/cpu_percent"].as_f64().is_some(),
                "{line}"
            );
            assert_eq!(value["data"]["sys/procs"].as_f64(), Some(1.0), "{line}");
        }
    }
}
