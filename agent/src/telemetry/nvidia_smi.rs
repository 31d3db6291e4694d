//! The host's NVIDIA GPUs and the processes using them, as `nvidia-smi` reports them.
//!
//! Two queries, both in nvidia-smi's CSV form without header or units
//! (`--format=csv,noheader,nounits`; the fields are those of `nvidia-smi --help-query-gpu` and
//! `--help-query-compute-apps`):
//! - `--query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw`
//!   gives one `GpuState` per GPU (memory in MiB, temperature in °C, power in W, use in %);
//! - `--query-compute-apps=pid,gpu_uuid,used_memory` gives one `ComputeApp` per process and
//!   GPU it uses. Its pids are the host's: an agent in a container with a pid namespace of its
//!   own sees other pids, and its runs match no GPU.
//!
//! A value nvidia-smi does not know (`[N/A]`, `[Not Supported]`, `N/A`, empty) is `None`.
//! Each query runs under a time limit (`NvidiaSmi::timeout`, 2 s by default): a hung
//! nvidia-smi (a wedged driver) is killed with its process group and reported, and the caller
//! never waits longer. No `nvidia-smi` on the PATH means a host without NVIDIA GPUs: no GPUs,
//! not an error; any other failure is an `NvidiaSmiError` that says what failed.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The GPU query's fields, in the order `GpuState` is parsed from.
pub const GPU_QUERY: &str = "--query-gpu=index,uuid,name,utilization.gpu,memory.used,\
                             memory.total,temperature.gpu,power.draw";
/// The compute-apps query's fields, in the order `ComputeApp` is parsed from.
pub const APPS_QUERY: &str = "--query-compute-apps=pid,gpu_uuid,used_memory";
/// The output format both queries ask for.
pub const CSV_FORMAT: &str = "--format=csv,noheader,nounits";
/// How long one query may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

const MIB: u64 = 1024 * 1024;

/// One GPU as `--query-gpu` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuState {
    /// nvidia-smi's index (the host's numbering, not `CUDA_VISIBLE_DEVICES`').
    pub index: u32,
    /// `GPU-…`, stable across reboots and the key compute apps name their GPU by.
    pub uuid: String,
    pub name: String,
    pub util_percent: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    pub mem_total_bytes: Option<u64>,
    pub temp_c: Option<f64>,
    pub power_w: Option<f64>,
}

/// One process using one GPU, as `--query-compute-apps` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeApp {
    pub pid: u32,
    pub gpu_uuid: String,
    pub used_memory_bytes: Option<u64>,
}

/// What went wrong running or reading `nvidia-smi`.
#[derive(Debug, thiserror::Error)]
pub enum NvidiaSmiError {
    #[error("could not start {program}: {source}; check that it is an executable nvidia-smi")]
    Start {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{program} {query} did not answer within {timeout:?} and was killed; the NVIDIA driver \
         may be hung (run `nvidia-smi` by hand to see)"
    )]
    TimedOut {
        program: PathBuf,
        query: String,
        timeout: Duration,
    },
    #[error("{program} {query} failed ({status}): {message}")]
    Failed {
        program: PathBuf,
        query: String,
        status: ExitStatus,
        /// What nvidia-smi printed (it prints its errors on stdout), trimmed.
        message: String,
    },
    #[error("could not read the output of {program} {query}: {source}")]
    Read {
        program: PathBuf,
        query: String,
        source: std::io::Error,
    },
    #[error(
        "{program} {query} printed a line that is not the CSV asked for ({reason}): {line:?}; \
         please report it with the output of `nvidia-smi {query} {CSV_FORMAT}`"
    )]
    Unexpected {
        program: PathBuf,
        query: String,
        line: String,
        reason: String,
    },
}

/// Where `nvidia-smi` is.
#[derive(Debug, Clone)]
pub enum Program {
    /// Searched for in this PATH-style list of directories at each query; not found: no GPUs.
    Search(OsString),
    /// This file; a missing file is an error (it was asked for).
    Path(PathBuf),
}

/// How to run `nvidia-smi`.
#[derive(Debug, Clone)]
pub struct NvidiaSmi {
    pub program: Program,
    /// Longest one query may take before it is killed.
    pub timeout: Duration,
}

impl Default for NvidiaSmi {
    /// `nvidia-smi` on this process's PATH, 2 s per query.
    fn default() -> Self {
        NvidiaSmi {
            program: Program::Search(std::env::var_os("PATH").unwrap_or_default()),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A query started and not yet read, so two can run at once.
struct Running<'a> {
    smi: &'a NvidiaSmi,
    program: PathBuf,
    query: &'static str,
    child: Child,
    outputs: mpsc::Receiver<(bool, std::io::Result<Vec<u8>>)>,
    deadline: Instant,
    /// The child has been waited for: its pid may belong to another process now.
    reaped: bool,
}

impl Drop for Running<'_> {
    /// A query dropped unfinished (the other one failed) is killed and reaped, not left behind.
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
        }
    }
}

impl NvidiaSmi {
    /// Every GPU of the host; empty when there is no nvidia-smi.
    // Kept for the resident agent's host view (issue 15); `run` asks both queries at once.
    #[allow(dead_code)]
    pub fn gpus(&self) -> Result<Vec<GpuState>, NvidiaSmiError> {
        match self.start(GPU_QUERY)? {
            None => Ok(Vec::new()),
            Some(running) => running.finish().and_then(|(program, text)| {
                parse_lines(&text, parse_gpu)
                    .map_err(|(line, reason)| unexpected(program, GPU_QUERY, line, reason))
            }),
        }
    }

    /// Every process using a GPU; empty when there is no nvidia-smi.
    // Kept for the resident agent's host view (issue 15); `run` asks both queries at once.
    #[allow(dead_code)]
    pub fn compute_apps(&self) -> Result<Vec<ComputeApp>, NvidiaSmiError> {
        match self.start(APPS_QUERY)? {
            None => Ok(Vec::new()),
            Some(running) => running
                .finish()
                .and_then(|(program, text)| parse_apps(program, &text)),
        }
    }

    /// Both queries, run at the same time (so both together take at most one timeout).
    pub fn gpus_and_apps(&self) -> Result<(Vec<GpuState>, Vec<ComputeApp>), NvidiaSmiError> {
        let Some(gpus) = self.start(GPU_QUERY)? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let apps = self.start(APPS_QUERY);
        // Read the GPUs first even when the second query could not start: its child is reaped.
        let (program, text) = gpus.finish()?;
        let states = parse_lines(&text, parse_gpu)
            .map_err(|(line, reason)| unexpected(program, GPU_QUERY, line, reason))?;
        let apps = match apps? {
            None => Vec::new(),
            Some(running) => {
                let (program, text) = running.finish()?;
                parse_apps(program, &text)?
            }
        };
        Ok((states, apps))
    }

    /// The program to run, `None` when a PATH search finds none.
    fn resolve(&self) -> Option<PathBuf> {
        match &self.program {
            Program::Path(path) => Some(path.clone()),
            Program::Search(dirs) => std::env::split_paths(dirs)
                .map(|dir| dir.join("nvidia-smi"))
                .find(|candidate| is_executable(candidate)),
        }
    }

    /// Starts one query; `None` when there is no nvidia-smi to run.
    fn start(&self, query: &'static str) -> Result<Option<Running<'_>>, NvidiaSmiError> {
        let Some(program) = self.resolve() else {
            return Ok(None);
        };
        let deadline = Instant::now() + self.timeout;
        let mut child = Command::new(&program)
            .args([query, CSV_FORMAT])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own, so a timeout kills whatever it started too.
            .process_group(0)
            .spawn()
            .map_err(|source| NvidiaSmiError::Start {
                program: program.clone(),
                source,
            })?;
        let (sender, outputs) = mpsc::channel();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let mut running = Running {
            smi: self,
            program,
            query,
            child,
            outputs,
            deadline,
            reaped: false,
        };
        let readers = read_in_background(stdout, true, &sender)
            .and_then(|()| read_in_background(stderr, false, &sender));
        match readers {
            Ok(()) => Ok(Some(running)),
            Err(source) => Err(running.read_error(source)),
        }
    }
}

/// Reads `pipe` to its end on a thread of its own and sends the bytes, tagged `is_stdout`.
fn read_in_background<R: Read + Send + 'static>(
    pipe: Option<R>,
    is_stdout: bool,
    sender: &mpsc::Sender<(bool, std::io::Result<Vec<u8>>)>,
) -> std::io::Result<()> {
    let Some(mut pipe) = pipe else {
        return Ok(());
    };
    let sender = sender.clone();
    std::thread::Builder::new()
        .name("nvidia-smi output".to_owned())
        .spawn(move || {
            let mut bytes = Vec::new();
            let result = pipe.read_to_end(&mut bytes).map(|_| bytes);
            // The receiver is gone when the query timed out: nobody wants the bytes.
            let _ = sender.send((is_stdout, result));
        })
        .map(|_| ())
}

impl Running<'_> {
    /// Waits for the query until its deadline; its stdout, or the error it is.
    fn finish(mut self) -> Result<(PathBuf, String), NvidiaSmiError> {
        let (mut stdout, mut stderr) = (None, None);
        while stdout.is_none() || stderr.is_none() {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.outputs.recv_timeout(left) {
                Ok((true, result)) => stdout = Some(result),
                Ok((false, result)) => stderr = Some(result),
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(self.timed_out()),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // Both pipes are closed: the process has exited or is about to.
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= self.deadline => return Err(self.timed_out()),
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(source) => return Err(self.read_error(source)),
            }
        };
        self.reaped = true;
        let stdout = match stdout.unwrap_or_else(|| Ok(Vec::new())) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(source) => return Err(self.read_error(source)),
        };
        if !status.success() {
            let stderr = stderr.and_then(Result::ok).unwrap_or_default();
            let message = [stdout.trim(), String::from_utf8_lossy(&stderr).trim()]
                .into_iter()
                .filter(|text| !text.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            return Err(NvidiaSmiError::Failed {
                program: self.program.clone(),
                query: self.query.to_owned(),
                status,
                message: if message.is_empty() {
                    "it printed nothing".to_owned()
                } else {
                    message
                },
            });
        }
        Ok((self.program.clone(), stdout))
    }

    /// Kills the query's whole process group and reaps the child.
    fn kill_group(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions. The child is not reaped yet, so its
            // pid (the group's id) cannot have been given to another process.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
        self.reaped = true;
    }

    fn timed_out(&mut self) -> NvidiaSmiError {
        self.kill_group();
        NvidiaSmiError::TimedOut {
            program: self.program.clone(),
            query: self.query.to_owned(),
            timeout: self.smi.timeout,
        }
    }

    fn read_error(&mut self, source: std::io::Error) -> NvidiaSmiError {
        if !self.reaped {
            self.kill_group();
        }
        NvidiaSmiError::Read {
            program: self.program.clone(),
            query: self.query.to_owned(),
            source,
        }
    }
}

fn unexpected(program: PathBuf, query: &str, line: String, reason: String) -> NvidiaSmiError {
    NvidiaSmiError::Unexpected {
        program,
        query: query.to_owned(),
        line,
        reason,
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Parses each non-empty line; the first line that does not parse, with why.
fn parse_lines<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, (String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| parse(line).map_err(|reason| (line.to_owned(), reason)))
        .collect()
}

fn parse_apps(program: PathBuf, text: &str) -> Result<Vec<ComputeApp>, NvidiaSmiError> {
    // Older drivers print a sentence instead of nothing when no process uses a GPU.
    let text: String = text
        .lines()
        .filter(|line| !line.trim().to_ascii_lowercase().starts_with("no running"))
        .collect::<Vec<_>>()
        .join("\n");
    parse_lines(&text, parse_app)
        .map_err(|(line, reason)| unexpected(program, APPS_QUERY, line, reason))
}

/// One line of the GPU query. The name comes third and is the one free-text field, so it is
/// whatever lies between the first two fields and the last five.
fn parse_gpu(line: &str) -> Result<GpuState, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 8 {
        return Err(format!("8 fields expected, {} found", fields.len()));
    }
    let tail = &fields[fields.len() - 5..];
    let index = fields[0]
        .parse()
        .map_err(|_| format!("the index {:?} is not a number", fields[0]))?;
    let uuid = fields[1].to_owned();
    if uuid.is_empty() {
        return Err("the uuid is empty".to_owned());
    }
    Ok(GpuState {
        index,
        uuid,
        name: fields[2..fields.len() - 5].join(", "),
        util_percent: number(tail[0], "utilization.gpu")?,
        mem_used_bytes: mib(tail[1], "memory.used")?,
        mem_total_bytes: mib(tail[2], "memory.total")?,
        temp_c: number(tail[3], "temperature.gpu")?,
        power_w: number(tail[4], "power.draw")?,
    })
}

fn parse_app(line: &str) -> Result<ComputeApp, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [pid, gpu_uuid, used_memory] = fields[..] else {
        return Err(format!("3 fields expected, {} found", fields.len()));
    };
    Ok(ComputeApp {
        pid: pid
            .parse()
            .map_err(|_| format!("the pid {pid:?} is not a number"))?,
        gpu_uuid: gpu_uuid.to_owned(),
        used_memory_bytes: mib(used_memory, "used_memory")?,
    })
}

/// A number nvidia-smi may not know (`None`); a unit it printed anyway is dropped.
fn number(field: &str, name: &str) -> Result<Option<f64>, String> {
    let unknown = [
        "",
        "N/A",
        "[N/A]",
        "[Not Supported]",
        "Not Supported",
        "[Unknown Error]",
    ];
    if unknown.iter().any(|u| field.eq_ignore_ascii_case(u)) {
        return Ok(None);
    }
    let digits = ["MiB", "W", "%", "C"]
        .iter()
        .find_map(|unit| field.strip_suffix(unit))
        .unwrap_or(field)
        .trim();
    match digits.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(Some(value)),
        _ => Err(format!("{name} {field:?} is not a number")),
    }
}

/// A size in MiB, as bytes.
fn mib(field: &str, name: &str) -> Result<Option<u64>, String> {
    Ok(number(field, name)?.map(|value| (value.max(0.0) * MIB as f64).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A directory holding an executable `nvidia-smi` shell script with `body`.
    fn stand_in(body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nvidia-smi");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write stand-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    /// `dir` first, then this process's PATH.
    fn search_first(dir: &Path) -> NvidiaSmi {
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        NvidiaSmi {
            program: Program::Search(std::env::join_paths(dirs).expect("a PATH")),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    #[test]
    fn no_nvidia_smi_on_the_path_is_no_gpus() {
        let empty = tempfile::tempdir().expect("temp dir");
        let smi = NvidiaSmi {
            program: Program::Search(empty.path().as_os_str().to_owned()),
            timeout: DEFAULT_TIMEOUT,
        };
        assert!(smi.gpus().expect("no GPUs").is_empty());
        assert!(smi.compute_apps().expect("no apps").is_empty());
        let (gpus, apps) = smi.gpus_and_apps().expect("nothing");
        assert!(gpus.is_empty() && apps.is_empty());
    }

    #[test]
    fn a_named_program_that_is_missing_is_an_error() {
        let smi = NvidiaSmi {
            program: Program::Path("/nonexistent/nvidia-smi".into()),
            timeout: DEFAULT_TIMEOUT,
        };
        let err = smi.gpus().expect_err("missing");
        assert!(matches!(err, NvidiaSmiError::Start { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/nvidia-smi"), "{err}");
    }

    #[test]
    fn a_hung_nvidia_smi_is_killed_at_the_timeout() {
        let dir = stand_in("echo $$ > \"$(dirname \"$0\")/pid\"\nsleep 10\necho 0, GPU-x, late");
        let smi = search_first(dir.path());
        let started = Instant::now();
        let err = smi.gpus_and_apps().expect_err("a hung nvidia-smi");
        let waited = started.elapsed();
        assert!(matches!(err, NvidiaSmiError::TimedOut { .. }), "{err}");
        assert!(
            err.to_string().contains("did not answer within 2s"),
            "{err}"
        );
        assert!(waited >= DEFAULT_TIMEOUT, "returned early: {waited:?}");
        assert!(
            waited < DEFAULT_TIMEOUT + Duration::from_millis(1500),
            "{waited:?}"
        );
        let pid = std::fs::read_to_string(dir.path().join("pid")).expect("the stand-in ran");
        let pid = pid.trim();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the hung stand-in {pid} is still there"
        );
        // Its `sleep` child went with it: nothing of the group is left running (a zombie
        // waiting for init to reap it has stopped).
        let group: u32 = pid.parse().expect("a pid");
        let deadline = Instant::now() + Duration::from_secs(2);
        while !running_in_group(group).is_empty() {
            assert!(
                Instant::now() < deadline,
                "still running in group {group}: {:?}",
                running_in_group(group)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pids of the processes of group `group` that are not zombies.
    fn running_in_group(group: u32) -> Vec<u32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            // Fields 3 (state) and 5 (process group) of proc(5).
            let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
            if fields.get(2) == Some(&group.to_string().as_str()) && fields[0] != "Z" {
                pids.push(pid);
            }
        }
        pids
    }

    #[test]
    fn a_driver_failure_is_an_error_that_quotes_nvidia_smi() {
        let message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA \
                       driver. Make sure that the latest NVIDIA driver is installed and running.";
        let dir = stand_in(&format!("echo \"{message}\"\nexit 9"));
        let err = search_first(dir.path())
            .gpus()
            .expect_err("a failing nvidia-smi");
        assert!(matches!(err, NvidiaSmiError::Failed { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(message), "{text}");
        assert!(text.contains("exit status: 9"), "{text}");
        assert!(text.contains(GPU_QUERY), "{text}");
    }

    #[test]
    fn output_that_is_not_the_csv_asked_for_is_an_error() {
        let dir = stand_in("echo 'Usage: nvidia-smi [OPTION1 [ARG1]] ...'");
        let err = search_first(dir.path()).gpus().expect_err("not CSV");
        assert!(matches!(err, NvidiaSmiError::Unexpected { .. }), "{err}");
        assert!(err.to_string().contains("8 fields expected"), "{err}");
    }

    #[test]
    fn unknown_values_are_none_and_units_are_converted() {
        let gpu =
            parse_gpu("3, GPU-abc, Tesla V100-SXM2-16GB, [Not Supported], 1024, 16384, 41, [N/A]")
                .expect("a GPU line");
        assert_eq!(gpu.index, 3);
        assert_eq!(gpu.name, "Tesla V100-SXM2-16GB");
        assert_eq!(gpu.util_percent, None);
        assert_eq!(gpu.mem_used_bytes, Some(1024 * MIB));
        assert_eq!(gpu.mem_total_bytes, Some(16384 * MIB));
        assert_eq!(gpu.temp_c, Some(41.0));
        assert_eq!(gpu.power_w, None);
        let gpu = parse_gpu("0, GPU-d, Name, With, Commas, 5 %, 10 MiB, N/A, , 70.25 W")
            .expect("a GPU line with units and a comma in its name");
        assert_eq!(gpu.name, "Name, With, Commas");
        assert_eq!(gpu.util_percent, Some(5.0));
        assert_eq!(gpu.mem_used_bytes, Some(10 * MIB));
        assert_eq!((gpu.mem_total_bytes, gpu.temp_c), (None, None));
        assert_eq!(gpu.power_w, Some(70.25));
        assert!(parse_gpu("0, GPU-d, Name, lots, 1, 2, 3, 4").is_err());
        let app = parse_app("4242, GPU-abc, [N/A]").expect("an app line");
        assert_eq!((app.pid, app.used_memory_bytes), (4242, None));
        assert!(parse_app("4242, GPU-abc").is_err());
        let none = parse_apps(PathBuf::new(), "No running processes found\n").expect("none");
        assert!(none.is_empty());
    }
}
