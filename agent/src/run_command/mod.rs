//! `runicorn-agent run -- CMD…`: runs a command as a tracked run.
//!
//! It creates the run (`meta.json`, a running `status.json`), starts the command with
//! `RUNICORN_DIR`/`RUNICORN_RUN_DIR` set so an SDK inside joins the run, tees the command's
//! stdout and stderr to the terminal and to `logs.txt`, records `environment.json`, keeps a
//! heartbeat in `status.json` (and the run's stall and alert settings in `meta.json`), samples the command's processes and GPUs into `system.jsonl`
//! (`telemetry`), passes signals on, and at the end records how the command exited.
//! The agent is the owner of the run's status; tracking problems (a full disk) are reported once
//! and never stop or fail the command.

mod console_lines;
mod environment;
mod signals;
mod telemetry;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use runicorn_protocol::run_format::{
    heartbeat_interval_from_env, AlertConfig, RunOutcome, RunSpec, RunStatus, RunWriter,
    StallConfig, ENV_RUN_DIR, ENV_STORAGE_ROOT,
};

use crate::root_args::RootArgs;
use console_lines::ConsoleLines;
use runicorn_cli::warning_label;
use signals::{signal_name, SignalForwarder};
use telemetry::{TelemetryArgs, TelemetryThread};

/// How long the agent waits for output still buffered in the pipes after the command exits (a
/// background grandchild can hold them open forever).
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the agent waits for the environment probes after the command exits.
const ENVIRONMENT_WAIT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub root: RootArgs,
    /// Run path to file the run under, e.g. `cv/resnet` [default: default]
    #[arg(long, value_name = "P")]
    pub path: Option<String>,
    /// A human-friendly name for the run, shown beside its id
    #[arg(long, value_name = "A")]
    pub alias: Option<String>,
    /// Use this run id instead of a fresh `YYYYMMDD_HHMMSS_xxxxxx`
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Seconds between heartbeats in status.json [default: $RUNICORN_HEARTBEAT_INTERVAL, else 10]
    #[arg(long, value_name = "SECS")]
    pub heartbeat: Option<f64>,
    /// Mark the run `stalled` when no new step arrived for this many times its median step
    /// interval (recorded in meta.json) [default: 5]
    #[arg(long, value_name = "F", value_parser = positive_number)]
    pub stall_factor: Option<f64>,
    /// ... but never before this many seconds without a new step: the floor of the stall limit,
    /// and the whole limit while the run has made fewer than 4 steps [default: 600]
    #[arg(long, value_name = "SECS", value_parser = positive_number)]
    pub stall_after: Option<f64>,
    /// Raise an alert when this metric logs NaN or an infinity (repeat for several; recorded in
    /// meta.json) [default: every metric whose name contains `loss`]
    #[arg(long = "watch", value_name = "KEY")]
    pub watch: Vec<String>,
    /// Raise an alert when every GPU the run uses stays under 5 % utilisation for this many
    /// seconds while it runs (recorded in meta.json) [default: 900]
    #[arg(long, value_name = "SECS", value_parser = positive_number)]
    pub gpu_idle_after: Option<f64>,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Do not print the run's id and final status on stderr
    #[arg(long, short)]
    pub quiet: bool,
    /// The command to run and its arguments (after `--`)
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// A finite number above zero (the stall options).
fn positive_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a number above 0, got {text:?}")),
    }
}

/// Runs the command; returns the exit code the agent should exit with.
pub fn wrap_command(args: RunArgs) -> anyhow::Result<u8> {
    let root = args.root.resolve();
    let heartbeat_interval = args
        .heartbeat
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or_else(heartbeat_interval_from_env);
    let mut spec = RunSpec::new(&root, concat!("runicorn-agent/", env!("CARGO_PKG_VERSION")));
    spec.path = args.path.clone();
    spec.alias = args.alias.clone();
    spec.run_id = args.run_id.clone();
    spec.heartbeat_interval = heartbeat_interval;
    spec.stall = StallConfig::new(args.stall_factor, args.stall_after);
    spec.alerts = AlertConfig {
        watch: (!args.watch.is_empty()).then(|| args.watch.clone()),
        gpu_idle_after_s: args.gpu_idle_after,
    };
    let telemetry_settings = args.telemetry.settings();
    let writer = RunWriter::create(&spec).with_context(|| {
        format!(
            "cannot create a run under {} (pick another storage root with --root or RUNICORN_DIR)",
            root.display()
        )
    })?;
    let run_dir = writer.dir().to_owned();
    let run_label = format!(
        "{} ({})",
        writer.id(),
        if writer.run_path().is_empty() {
            "/"
        } else {
            writer.run_path()
        }
    );
    let writer = Arc::new(Mutex::new(writer));
    let tracking = TrackingProblems::new(run_dir.clone());
    if !args.quiet {
        eprintln!("runicorn: run {run_label} in {}", run_dir.display());
    }

    let (forwarder, child_slot) =
        SignalForwarder::install().context("installing signal handlers")?;
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env(ENV_STORAGE_ROOT, &root)
        .env(ENV_RUN_DIR, &run_dir)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        // Python buffers a piped stdout in 8 KiB blocks: the terminal and the log would lag.
        command.env("PYTHONUNBUFFERED", "1");
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            forwarder.stop();
            let reason = format!("cannot start {:?}: {err}", args.command[0]);
            let outcome = RunOutcome {
                status: RunStatus::Failed,
                exit_code: Some(127),
                signal: None,
                reason: Some(reason.clone()),
            };
            tracking.report(lock(&writer).finish(outcome));
            eprintln!(
                "{}: {reason} (is it installed and on PATH?); the run {run_label} is recorded as failed",
                runicorn_cli::error_label()
            );
            // 127 is what shells and `env` exit with when a command cannot be found.
            return Ok(127);
        }
    };
    child_slot.set(child.id());
    let telemetry =
        TelemetryThread::start(&telemetry_settings, child.id(), &run_dir, tracking.clone());

    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let environment =
        spawn_environment_capture(args.command.clone(), cwd, writer.clone(), tracking.clone());
    let (drained_tx, drained_rx) = mpsc::channel();
    let mut tees = 0;
    let streams: [(Option<ChildOutput>, TerminalOutput); 2] = [
        (
            child.stdout.take().map(|s| Box::new(s) as ChildOutput),
            Box::new(std::io::stdout()),
        ),
        (
            child.stderr.take().map(|s| Box::new(s) as ChildOutput),
            Box::new(std::io::stderr()),
        ),
    ];
    for (source, terminal) in streams {
        if let Some(source) = source {
            spawn_tee(
                source,
                terminal,
                writer.clone(),
                tracking.clone(),
                drained_tx.clone(),
            );
            tees += 1;
        }
    }
    drop(drained_tx);
    let heartbeat = spawn_heartbeat(heartbeat_interval, writer.clone(), tracking.clone());

    let exit = wait_for_child(&mut child);
    heartbeat.stop();
    // Before the final status: no sample is written after it.
    if let Some(telemetry) = telemetry {
        telemetry.stop();
    }
    for _ in 0..tees {
        if drained_rx.recv_timeout(OUTPUT_DRAIN_TIMEOUT).is_err() {
            break;
        }
    }
    let stop_signal = forwarder.stop_signal_received();
    forwarder.stop();
    let _ = environment.recv_timeout(ENVIRONMENT_WAIT);

    let (outcome, code) = match exit {
        Ok(status) => outcome_of(status, stop_signal),
        Err(err) => (
            RunOutcome {
                status: RunStatus::Failed,
                exit_code: None,
                signal: None,
                reason: Some(format!("waiting for the command failed: {err}")),
            },
            1,
        ),
    };
    let status_text = outcome.status.to_string();
    let reason = outcome.reason.clone();
    tracking.report(lock(&writer).finish(outcome));
    if !args.quiet {
        match reason {
            Some(r) => eprintln!("runicorn: run {run_label} {status_text} ({r})"),
            None => eprintln!("runicorn: run {run_label} {status_text}"),
        }
    }
    Ok(code)
}

/// One of the command's output pipes, and where the agent echoes it.
type ChildOutput = Box<dyn Read + Send>;
type TerminalOutput = Box<dyn Write + Send>;

/// Maps the command's exit to the run's final status and the agent's exit code.
fn outcome_of(status: ExitStatus, stop_signal: Option<i32>) -> (RunOutcome, u8) {
    if let Some(sig) = status.signal() {
        let run_status = if sig == libc::SIGINT {
            RunStatus::Interrupted
        } else {
            RunStatus::Killed
        };
        let outcome = RunOutcome {
            status: run_status,
            exit_code: None,
            signal: Some(sig),
            reason: Some(format!("signal: {}", signal_name(sig))),
        };
        return (
            outcome,
            128u8.saturating_add(u8::try_from(sig).unwrap_or(0)),
        );
    }
    let code = status.code().unwrap_or(1);
    let (run_status, reason) = match (code, stop_signal) {
        (0, _) => (RunStatus::Finished, None),
        (_, Some(sig)) => (
            RunStatus::Interrupted,
            Some(format!("exit code {code} after {}", signal_name(sig))),
        ),
        _ => (RunStatus::Failed, Some(format!("exit code {code}"))),
    };
    let outcome = RunOutcome {
        status: run_status,
        exit_code: Some(code),
        signal: None,
        reason,
    };
    (outcome, u8::try_from(code & 0xff).unwrap_or(1))
}

fn wait_for_child(child: &mut Child) -> std::io::Result<ExitStatus> {
    loop {
        match child.wait() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Locks the writer; a panicked holder leaves it usable (its state is only buffers and records).
fn lock(writer: &Mutex<RunWriter>) -> MutexGuard<'_, RunWriter> {
    writer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reports the first tracking failure on stderr, then stays quiet: the command keeps running.
#[derive(Clone)]
struct TrackingProblems {
    warned: Arc<AtomicBool>,
    run_dir: PathBuf,
}

impl TrackingProblems {
    fn new(run_dir: PathBuf) -> Self {
        TrackingProblems {
            warned: Arc::new(AtomicBool::new(false)),
            run_dir,
        }
    }

    fn report<T, E: std::fmt::Display>(&self, result: Result<T, E>) {
        if let Err(err) = result {
            if !self.warned.swap(true, Ordering::SeqCst) {
                eprintln!(
                    "{}: runicorn could not record to {}: {err}; the command keeps running, further tracking errors are not shown",
                    warning_label(),
                    self.run_dir.display()
                );
            }
        }
    }
}

fn spawn_tee(
    mut source: impl Read + Send + 'static,
    terminal: impl Write + Send + 'static,
    writer: Arc<Mutex<RunWriter>>,
    tracking: TrackingProblems,
    drained: mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        let mut terminal = Some(terminal);
        let mut lines = ConsoleLines::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut stamped = Vec::with_capacity(64 * 1024);
        let stamp_line = |line: &[u8], stamped: &mut Vec<u8>| {
            stamped.extend_from_slice(
                chrono::Local::now()
                    .format("[%H:%M:%S] ")
                    .to_string()
                    .as_bytes(),
            );
            stamped.extend_from_slice(line);
            stamped.push(b'\n');
        };
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let chunk = &buf[..n];
            if let Some(t) = terminal.as_mut() {
                // A closed terminal (`| head`) must not stop the log or the command.
                if t.write_all(chunk).and_then(|()| t.flush()).is_err() {
                    terminal = None;
                }
            }
            stamped.clear();
            lines.feed(chunk, |line| stamp_line(line, &mut stamped));
            if !stamped.is_empty() {
                let mut w = lock(&writer);
                tracking.report(w.append_log_bytes(&stamped).and_then(|()| w.flush()));
            }
        }
        stamped.clear();
        lines.finish(|line| stamp_line(line, &mut stamped));
        if !stamped.is_empty() {
            let mut w = lock(&writer);
            tracking.report(w.append_log_bytes(&stamped).and_then(|()| w.flush()));
        }
        let _ = drained.send(());
    });
}

/// Records the environment in the background; the returned channel says when it is written.
fn spawn_environment_capture(
    argv: Vec<String>,
    cwd: PathBuf,
    writer: Arc<Mutex<RunWriter>>,
    tracking: TrackingProblems,
) -> mpsc::Receiver<()> {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let env = environment::capture(&argv, &cwd);
        tracking.report(lock(&writer).write_environment(&env));
        let _ = done_tx.send(());
    });
    done_rx
}

/// The heartbeat thread; dropping the stop sender wakes it at once.
struct Heartbeat {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Heartbeat {
    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn spawn_heartbeat(
    interval: f64,
    writer: Arc<Mutex<RunWriter>>,
    tracking: TrackingProblems,
) -> Heartbeat {
    let (stop, stopped) = mpsc::channel::<()>();
    let period = Duration::from_secs_f64(interval);
    let thread = std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
            tracking.report(lock(&writer).heartbeat());
        }
    });
    Heartbeat { stop, thread }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_statuses() {
        let (o, c) = outcome_of(ExitStatus::from_raw(0), None);
        assert_eq!((o.status, c), (RunStatus::Finished, 0));
        let (o, c) = outcome_of(ExitStatus::from_raw(3 << 8), None);
        assert_eq!((o.status, o.exit_code, c), (RunStatus::Failed, Some(3), 3));
        let (o, c) = outcome_of(ExitStatus::from_raw(3 << 8), Some(libc::SIGTERM));
        assert_eq!((o.status, c), (RunStatus::Interrupted, 3));
        let (o, c) = outcome_of(ExitStatus::from_raw(libc::SIGKILL), None);
        assert_eq!((o.status, o.signal, c), (RunStatus::Killed, Some(9), 137));
        let (o, c) = outcome_of(ExitStatus::from_raw(libc::SIGINT), None);
        assert_eq!((o.status, c), (RunStatus::Interrupted, 130));
    }

    #[test]
    fn stall_options_take_positive_numbers_only() {
        assert_eq!(positive_number("2.5"), Ok(2.5));
        assert_eq!(positive_number(" 600 "), Ok(600.0));
        for bad in ["0", "-1", "NaN", "inf", "ten"] {
            let err = positive_number(bad).unwrap_err();
            assert!(err.contains("above 0"), "{bad}: {err}");
        }
    }
}
