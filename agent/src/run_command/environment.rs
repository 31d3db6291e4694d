//! What `environment.json` records about where a wrapped command ran: its command line and
//! working directory, the host, git state, Python and its packages, and GPUs.
//!
//! Every probe is optional: a missing tool (no git, no Python, no `nvidia-smi`) is recorded as
//! `null`, never an error, and every probe has a time limit so a hung tool cannot hold up the
//! run's start.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// Longest a single probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Environment variables worth recording (prefixes end in `_`).
const ENV_ALLOW_LIST: [&str; 12] = [
    "CUDA_",
    "NVIDIA_",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "RUNICORN_DIR",
];

/// Collects the environment of `argv` about to run in `cwd`.
pub fn capture(argv: &[String], cwd: &Path) -> Value {
    let python = python_for(argv);
    json!({
        "argv": argv,
        "cwd": cwd.to_string_lossy(),
        "hostname": runicorn_protocol::run_format::process::local_hostname(),
        "platform": runicorn_protocol::run_format::writer::platform_string(),
        "git_info": git_info(cwd),
        "python_executable": python.as_deref(),
        "python_version": python.as_deref().and_then(python_version),
        "pip_packages": python.as_deref().and_then(pip_freeze),
        "gpu_info": gpu_info(),
        "env_variables": env_variables(),
    })
}

/// The Python the command runs: its own program when that is a Python, else `python3`.
fn python_for(argv: &[String]) -> Option<String> {
    let program = argv.first()?;
    let base = Path::new(program).file_name()?.to_string_lossy();
    if base.starts_with("python") {
        Some(program.clone())
    } else {
        Some("python3".to_owned())
    }
}

/// Runs a probe with a time limit; `None` when it is missing, fails or hangs.
fn probe(program: &str, args: &[&str], cwd: Option<&Path>) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text)
            .ok()
            .map(|_| text)
    });
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return reader.join().ok().flatten(),
            Ok(Some(_)) => return None,
            Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
}

fn git_info(cwd: &Path) -> Value {
    let Some(commit) = probe("git", &["rev-parse", "HEAD"], Some(cwd)) else {
        return Value::Null;
    };
    let branch = probe("git", &["rev-parse", "--abbrev-ref", "HEAD"], Some(cwd));
    let dirty = probe("git", &["status", "--porcelain"], Some(cwd)).map(|s| !s.trim().is_empty());
    json!({"commit": commit.trim(), "branch": branch.map(|b| b.trim().to_owned()), "dirty": dirty})
}

fn python_version(python: &str) -> Option<String> {
    probe(
        python,
        &["-c", "import platform; print(platform.python_version())"],
        None,
    )
    .map(|s| s.trim().to_owned())
}

fn pip_freeze(python: &str) -> Option<Value> {
    let text = probe(
        python,
        &["-m", "pip", "freeze", "--disable-pip-version-check"],
        None,
    )?;
    Some(Value::from(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>(),
    ))
}

fn gpu_info() -> Value {
    let Some(text) = probe(
        "nvidia-smi",
        &[
            "--query-gpu=index,name,memory.total,driver_version,uuid",
            "--format=csv,noheader,nounits",
        ],
        None,
    ) else {
        return Value::Null;
    };
    let gpus: Vec<Value> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            (f.len() >= 5).then(|| {
                json!({"index": f[0].parse::<i64>().ok(), "name": f[1],
                       "memory_total_mib": f[2].parse::<i64>().ok(), "driver_version": f[3], "uuid": f[4]})
            })
        })
        .collect();
    Value::from(gpus)
}

fn env_variables() -> Value {
    let mut vars = Map::new();
    for (key, value) in std::env::vars() {
        let wanted = ENV_ALLOW_LIST.iter().any(|allowed| {
            if allowed.ends_with('_') {
                key.starts_with(allowed)
            } else {
                key == *allowed
            }
        });
        if wanted {
            vars.insert(key, Value::String(value.chars().take(500).collect()));
        }
    }
    Value::Object(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_null_not_errors() {
        assert!(probe("definitely-not-a-program-xyz", &[], None).is_none());
        let env = capture(&["sh".into(), "-c".into(), "true".into()], Path::new("/"));
        assert_eq!(env["argv"][0], "sh");
        assert!(env["git_info"].is_null(), "/ is not a git work tree");
        assert!(env.get("gpu_info").is_some());
    }

    #[test]
    fn python_is_taken_from_the_command() {
        assert_eq!(
            python_for(&["/usr/bin/python3.11".into()]).as_deref(),
            Some("/usr/bin/python3.11")
        );
        assert_eq!(python_for(&["bash".into()]).as_deref(), Some("python3"));
    }
}
