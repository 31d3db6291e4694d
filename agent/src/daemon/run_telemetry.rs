//! The resident agent's telemetry of the runs it did not start (issue 15, item 2): every
//! `--telemetry-interval`, each running run of the root whose writer is a live process of this
//! host (the pid, start time and host `status.json` records, as the run's SDK or the Rust
//! writer write them) gets one sample of its process tree and GPUs appended to its
//! `system.jsonl`, the lines `runicorn-agent run` writes for the runs it wraps.
//!
//! Never two writers: a run `runicorn-agent run` created (`meta.json`'s `writer` names it) is
//! left to its wrapper, and so is a run whose `system.jsonl` someone else writes (fresher than
//! two intervals when first seen, or grown since our last line; taken up again after a minute
//! of quiet, as after a daemon restart). One `RunSampler` per run is
//! kept while the run runs (CPU % needs the previous reading) and dropped when it ends. The
//! host's process table is read once per round and each run's tree derived from it. A
//! failure is said once per run in the daemon's log and never stops the daemon.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use runicorn_protocol::run_format::process::local_hostname;

use crate::run_index::feed::RunningRun;
use crate::serve_command::Warm;
use crate::telemetry::nvidia_smi::NvidiaSmi;
use crate::telemetry::process_tree::{ProcessId, ProcessTable};
use crate::telemetry::sampler::{HostGpus, RunSampler, SamplerConfig};
use crate::telemetry::system_file::{epoch_seconds, system_line, SystemFile, SYSTEM_FILE};

/// What `meta.json`'s `writer` starts with in a run `runicorn-agent run` created: its wrapper
/// writes the run's telemetry itself.
const WRAPPER_WRITER: &str = "runicorn-agent/";

/// A run left to another writer is taken up again once its `system.jsonl` has been quiet this
/// long (and two of our intervals): the other writer has stopped, e.g. the daemon before a
/// restart was the one writing.
const QUIET_BEFORE_RESUMING: Duration = Duration::from_secs(60);

/// Starts the sampling thread of the daemon of `warm`'s root.
pub fn spawn(warm: Arc<Warm>, period: Duration, nvidia_smi: NvidiaSmi) -> std::io::Result<()> {
    let mut runs = RunTelemetry::new(warm.root.clone(), local_hostname(), period, nvidia_smi);
    std::thread::Builder::new()
        .name("run-telemetry".into())
        .spawn(move || {
            let mut next = Instant::now() + period;
            let mut index_warned = false;
            loop {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                let now = Instant::now();
                while next <= now {
                    next += period;
                }
                // The lock is held only to read the rows; sampling happens after.
                let running = warm.index().running_runs();
                match running {
                    Ok(running) => {
                        index_warned = false;
                        runs.tick(&running, now);
                    }
                    Err(e) if !index_warned => {
                        index_warned = true;
                        eprintln!(
                            "runicorn-agent daemon: telemetry: reading the running runs: {e}; \
                             tried again every interval"
                        );
                    }
                    Err(_) => {}
                }
            }
        })?;
    Ok(())
}

/// A process named by pid and start time.
type Writer = (u32, u64);

/// What the daemon does with one running run.
enum Followed {
    /// Sampled into its `system.jsonl`.
    Sampling {
        sampler: Box<RunSampler>,
        file: SystemFile,
        /// The file's length after our last line (`None`: none written yet).
        written_len: Option<u64>,
        /// A failure has been said in the log (once per run).
        warned: bool,
    },
    /// Its `system.jsonl` has another writer: left alone while it runs.
    Left,
}

/// The runs followed, by run directory (relative to the root).
pub struct RunTelemetry {
    root: PathBuf,
    hostname: String,
    period: Duration,
    nvidia_smi: NvidiaSmi,
    runs: HashMap<String, (Writer, Followed)>,
    gpu_warned: bool,
}

impl RunTelemetry {
    pub fn new(root: PathBuf, hostname: String, period: Duration, nvidia_smi: NvidiaSmi) -> Self {
        RunTelemetry {
            root,
            hostname,
            period,
            nvidia_smi,
            runs: HashMap::new(),
            gpu_warned: false,
        }
    }

    /// The writer of `run` when the daemon may sample it: on this host, named by pid and start
    /// time, and not under `runicorn-agent run`.
    fn samplable(&self, run: &RunningRun) -> Option<Writer> {
        if run.host.as_deref() != Some(self.hostname.as_str()) {
            return None;
        }
        if run
            .writer
            .as_deref()
            .is_some_and(|w| w.starts_with(WRAPPER_WRITER))
        {
            return None;
        }
        let pid = u32::try_from(run.pid?).ok().filter(|&p| p > 0)?;
        Some((pid, run.start_ticks?))
    }

    /// One round: every samplable run of `running` sampled (a new one only read, to start its
    /// CPU count), and the runs no longer running forgotten.
    pub fn tick(&mut self, running: &[RunningRun], now: Instant) {
        let mut current = HashSet::new();
        let mut wanted: Vec<(&RunningRun, Writer)> = Vec::new();
        for run in running {
            if let Some(writer) = self.samplable(run) {
                current.insert(run.dir.as_str());
                wanted.push((run, writer));
            }
        }
        self.runs.retain(|dir, _| current.contains(dir.as_str()));
        let sampling = wanted.iter().any(|(run, writer)| {
            matches!(self.runs.get(&run.dir), Some((w, Followed::Sampling { .. })) if w == writer)
        });
        // nvidia-smi once for all runs, and only when some run will write a line; the host's
        // process table once for all runs, and only when some run is to be read.
        let gpus = sampling.then(|| self.query_gpus()).flatten();
        let table = (!wanted.is_empty())
            .then(ProcessTable::read)
            .unwrap_or_default();
        for (run, writer) in wanted {
            let known = self.runs.get(&run.dir).filter(|(w, _)| *w == writer);
            let quiet = match known {
                None => Some(self.period * 2),
                Some((_, Followed::Left)) => Some((self.period * 2).max(QUIET_BEFORE_RESUMING)),
                Some((_, Followed::Sampling { .. })) => None,
            };
            if let Some(quiet) = quiet {
                if let Some(followed) = self.start(run, writer, &table, now, quiet) {
                    self.runs.insert(run.dir.clone(), (writer, followed));
                } else {
                    self.runs.remove(&run.dir);
                }
                continue;
            }
            let dir = self.root.join(&run.dir);
            let Some((_, followed)) = self.runs.get_mut(&run.dir) else {
                continue;
            };
            if sample_into(followed, &dir, &table, now, gpus.as_ref()) == Step::Ended {
                self.runs.remove(&run.dir);
            }
        }
    }

    /// The GPUs of the host, or `None` (said once while it lasts).
    fn query_gpus(&mut self) -> Option<HostGpus> {
        match HostGpus::query(&self.nvidia_smi) {
            Ok(gpus) => {
                self.gpu_warned = false;
                Some(gpus)
            }
            Err(e) => {
                if !self.gpu_warned {
                    self.gpu_warned = true;
                    eprintln!(
                        "runicorn-agent daemon: telemetry: cannot read the GPUs: {e}; samples go \
                         on without GPU figures while this lasts"
                    );
                }
                None
            }
        }
    }

    /// Starts following a run: `None` when its writer is not the live process recorded, `Left`
    /// when its `system.jsonl` was written less than `quiet` ago (by someone else).
    fn start(
        &self,
        run: &RunningRun,
        (pid, ticks): Writer,
        table: &ProcessTable,
        now: Instant,
        quiet: Duration,
    ) -> Option<Followed> {
        let mut sampler =
            RunSampler::for_process(table.process(pid), SamplerConfig { nvidia_smi: None });
        if sampler.root()
            != Some(ProcessId {
                pid,
                start_ticks: ticks,
            })
        {
            return None; // gone, or its pid is another process's now
        }
        let dir = self.root.join(&run.dir);
        if written_lately(&dir.join(SYSTEM_FILE), quiet) {
            if matches!(self.runs.get(&run.dir), Some((_, Followed::Left))) {
                return Some(Followed::Left); // said already
            }
            eprintln!(
                "runicorn-agent daemon: telemetry: {} already has a fresh {SYSTEM_FILE} from \
                 another writer; leaving it to that writer",
                dir.display()
            );
            return Some(Followed::Left);
        }
        if sampler.sample_from(table, now, None).tree.ended {
            return None;
        }
        Some(Followed::Sampling {
            sampler: Box::new(sampler),
            file: SystemFile::new(&dir),
            written_len: None,
            warned: false,
        })
    }

    #[cfg(test)]
    fn is_left(&self, dir: &str) -> bool {
        matches!(self.runs.get(dir), Some((_, Followed::Left)))
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Going,
    Ended,
}

/// One sample of a followed run appended to its file.
fn sample_into(
    followed: &mut Followed,
    dir: &Path,
    table: &ProcessTable,
    now: Instant,
    gpus: Option<&HostGpus>,
) -> Step {
    let Followed::Sampling {
        sampler,
        file,
        written_len,
        warned,
    } = followed
    else {
        return Step::Going;
    };
    let path = dir.join(SYSTEM_FILE);
    if let Some(len) = *written_len {
        if file_len(&path).is_some_and(|now_len| now_len != len) {
            eprintln!(
                "runicorn-agent daemon: telemetry: {} is written by another writer too; leaving \
                 it to that writer",
                path.display()
            );
            *followed = Followed::Left;
            return Step::Going;
        }
    }
    let sample = sampler.sample_from(table, now, gpus);
    if sample.tree.ended {
        return Step::Ended;
    }
    let points = sample.points();
    if points.is_empty() {
        return Step::Going;
    }
    match file.append(&system_line(epoch_seconds(), &points)) {
        Ok(()) => {
            *written_len = file_len(&path);
        }
        Err(e) => {
            *written_len = None;
            if !*warned {
                *warned = true;
                eprintln!("runicorn-agent daemon: telemetry: {e}; tried again every interval");
            }
        }
    }
    Step::Going
}

/// The length of a file (not through a link), `None` when there is none.
fn file_len(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.len())
}

/// Whether `path` was modified less than `within` ago.
fn written_lately(path: &Path, within: Duration) -> bool {
    let Ok(modified) = std::fs::symlink_metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    SystemTime::now()
        .duration_since(modified)
        .map_or(true, |age| age < within)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::nvidia_smi::Program;
    use crate::telemetry::test_support::BusyChild;

    /// A writer burning one core, killed when dropped, and its id.
    fn busy() -> (BusyChild, ProcessId) {
        let child = BusyChild::start();
        let id = child.process_id();
        (child, id)
    }

    fn run(dir: &str, id: ProcessId, host: &str, writer: &str) -> RunningRun {
        RunningRun {
            dir: dir.into(),
            path: String::new(),
            run_id: dir.into(),
            host: Some(host.into()),
            pid: Some(i64::from(id.pid)),
            start_ticks: Some(id.start_ticks),
            writer: Some(writer.into()),
        }
    }

    fn lines(root: &Path, dir: &str) -> usize {
        std::fs::read_to_string(root.join(dir).join(SYSTEM_FILE)).map_or(0, |t| t.lines().count())
    }

    #[test]
    fn only_live_sdk_runs_of_this_host_are_sampled_and_foreign_files_left_alone() {
        let root = tempfile::tempdir().expect("temp dir");
        for dir in ["sdk", "wrapped", "elsewhere", "reused", "shared"] {
            std::fs::create_dir(root.path().join(dir)).expect("mkdir");
        }
        let (_busy, id) = busy();
        let reused = ProcessId {
            pid: id.pid,
            start_ticks: id.start_ticks + 1,
        };
        let no_gpus = NvidiaSmi {
            program: Program::Search(std::ffi::OsString::new()),
            timeout: Duration::from_secs(2),
        };
        let mut telemetry = RunTelemetry::new(
            root.path().to_owned(),
            "here".into(),
            Duration::from_millis(100),
            no_gpus,
        );
        let running = [
            run("sdk", id, "here", "runicorn-rs-python/0.1.0"),
            run("wrapped", id, "here", "runicorn-agent/0.1.0"),
            run("elsewhere", id, "there", "runicorn-rs-python/0.1.0"),
            run("reused", reused, "here", "runicorn-rs-python/0.1.0"),
            run("shared", id, "here", "runicorn-rs-python/0.1.0"),
        ];
        let start = Instant::now();
        telemetry.tick(&running, start);
        std::thread::sleep(Duration::from_millis(150));
        telemetry.tick(&running, start + Duration::from_millis(150));
        // Someone else appends to "shared" between two of our lines.
        std::fs::OpenOptions::new()
            .append(true)
            .open(root.path().join("shared").join(SYSTEM_FILE))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{}\n"))
            .expect("append");
        std::thread::sleep(Duration::from_millis(150));
        telemetry.tick(&running, start + Duration::from_millis(300));

        assert_eq!(
            lines(root.path(), "sdk"),
            2,
            "one line per tick after the first"
        );
        let text = std::fs::read_to_string(root.path().join("sdk").join(SYSTEM_FILE)).expect("r");
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let cpu = value["data"]["sys/cpu_percent"].as_f64().expect("a CPU %");
            assert!(cpu > 10.0, "a busy writer: {line}");
            assert!(value["data"]["sys/rss_mib"].as_f64().is_some(), "{line}");
        }
        for dir in ["wrapped", "elsewhere", "reused"] {
            assert_eq!(lines(root.path(), dir), 0, "{dir} is not sampled");
        }
        assert_eq!(lines(root.path(), "shared"), 2, "ours stopped once it grew");
        assert!(telemetry.is_left("shared"));

        // The run ended: forgotten.
        telemetry.tick(&[], start + Duration::from_millis(450));
        assert!(telemetry.runs.is_empty());
    }

    #[test]
    fn a_fresh_file_of_another_writer_is_left_alone_until_it_goes_quiet() {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join("run")).expect("mkdir");
        std::fs::write(root.path().join("run").join(SYSTEM_FILE), "{}\n").expect("write");
        let (_busy, id) = busy();
        let mut telemetry = RunTelemetry::new(
            root.path().to_owned(),
            "here".into(),
            Duration::from_secs(10),
            NvidiaSmi {
                program: Program::Search(std::ffi::OsString::new()),
                timeout: Duration::from_secs(2),
            },
        );
        let running = [run("run", id, "here", "runicorn-rs-python/0.1.0")];
        telemetry.tick(&running, Instant::now());
        telemetry.tick(&running, Instant::now());
        assert!(telemetry.is_left("run"));
        assert_eq!(lines(root.path(), "run"), 1);

        // The other writer went quiet (say, the daemon before a restart): taken up again.
        let two_minutes_ago = SystemTime::now() - Duration::from_secs(120);
        std::fs::File::options()
            .append(true)
            .open(root.path().join("run").join(SYSTEM_FILE))
            .and_then(|f| f.set_modified(two_minutes_ago))
            .expect("set mtime");
        telemetry.tick(&running, Instant::now());
        assert!(!telemetry.is_left("run"));
        std::thread::sleep(Duration::from_millis(50));
        telemetry.tick(&running, Instant::now());
        assert_eq!(
            lines(root.path(), "run"),
            2,
            "one line of ours after the old one"
        );
    }

    #[test]
    fn a_writer_that_ended_is_dropped() {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join("run")).expect("mkdir");
        let (busy, id) = busy();
        let mut telemetry = RunTelemetry::new(
            root.path().to_owned(),
            "here".into(),
            Duration::from_millis(100),
            NvidiaSmi {
                program: Program::Search(std::ffi::OsString::new()),
                timeout: Duration::from_secs(2),
            },
        );
        let running = [run("run", id, "here", "runicorn-rs-python/0.1.0")];
        telemetry.tick(&running, Instant::now());
        assert_eq!(telemetry.runs.len(), 1);
        drop(busy);
        telemetry.tick(&running, Instant::now());
        assert!(telemetry.runs.is_empty(), "the sampler is dropped");
        telemetry.tick(&running, Instant::now());
        assert!(
            telemetry.runs.is_empty(),
            "a dead writer is not followed again"
        );
        assert_eq!(lines(root.path(), "run"), 0);
    }

    #[test]
    fn the_gpus_a_run_uses_are_in_its_lines() {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join("run")).expect("mkdir");
        let (_busy, id) = busy();
        // The stand-in nvidia-smi answering with the 1-GPU host's recording, the run's pid in it.
        let smi = tempfile::tempdir().expect("temp dir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvidia-smi");
        std::fs::copy(fixtures.join("stand-in.sh"), smi.path().join("nvidia-smi")).expect("copy");
        for file in ["query-gpu.csv", "query-compute-apps.csv"] {
            let text = std::fs::read_to_string(fixtures.join("host-1gpu").join(file))
                .expect("a fixture")
                .replace("{RUN_PID}", &id.pid.to_string());
            std::fs::write(smi.path().join(file), text).expect("write");
        }
        let mut telemetry = RunTelemetry::new(
            root.path().to_owned(),
            "here".into(),
            Duration::from_millis(100),
            NvidiaSmi {
                program: Program::Path(smi.path().join("nvidia-smi")),
                timeout: Duration::from_secs(5),
            },
        );
        let running = [run("run", id, "here", "runicorn-rs-python/0.1.0")];
        telemetry.tick(&running, Instant::now());
        std::thread::sleep(Duration::from_millis(100));
        telemetry.tick(&running, Instant::now());
        let text = std::fs::read_to_string(root.path().join("run").join(SYSTEM_FILE)).expect("r");
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one line");
        let data = &value["data"];
        assert_eq!(
            data["sys/gpu.0/run_mem_mib"].as_f64(),
            Some(17702.0),
            "{text}"
        );
        assert!(data["sys/gpu.0/util_percent"].as_f64().is_some(), "{text}");
        assert!(data["sys/cpu_percent"].as_f64().is_some(), "{text}");
    }
}
