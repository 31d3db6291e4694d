//! `runicorn-agent run` recording the command's telemetry in `system.jsonl`: a real CPU-burning
//! process tree, GPUs from the stand-in `nvidia-smi` of the agent's tests with the run's own
//! pids put in, telemetry turned off, and tracking failures (a failing nvidia-smi, a file that
//! cannot be written, a run directory made read-only) that never touch the command.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use runicorn_tests::{agent_run, describe, only_run_dir, output_within, read_json, workspace_root};
use serde_json::{Map, Value};

/// Longest any one scenario's `runicorn-agent run` may take.
const LIMIT: Duration = Duration::from_secs(60);

/// One line of `system.jsonl`, checked against the format: `ts`, `type` `system`, `data` of
/// numbers only.
struct Sample {
    ts: f64,
    data: Map<String, Value>,
}

impl Sample {
    fn get(&self, key: &str) -> Option<f64> {
        self.data.get(key).and_then(Value::as_f64)
    }

    fn gpu_keys(&self) -> Vec<&str> {
        self.data
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("sys/gpu."))
            .collect()
    }
}

/// Every line of the run's `system.jsonl`, each checked; the file ends with a whole line.
fn samples(run_dir: &Path) -> Vec<Sample> {
    let path = run_dir.join("system.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.ends_with('\n'), "a torn last line: {text:?}");
    text.lines()
        .map(|line| {
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_eq!(value["type"], "system", "{line}");
            let data = value["data"]
                .as_object()
                .cloned()
                .expect("data is an object");
            assert!(!data.is_empty(), "a line without points: {line}");
            for (key, v) in &data {
                assert!(key.starts_with("sys/"), "{key} in {line}");
                assert!(v.as_f64().is_some_and(f64::is_finite), "{key} in {line}");
            }
            Sample {
                ts: value["ts"].as_f64().expect("ts is a number"),
                data,
            }
        })
        .collect()
}

/// The run's `ended_at`, with its status checked.
fn ended_at(run_dir: &Path, status: &str, exit_code: i64) -> f64 {
    let record = read_json(&run_dir.join("status.json"));
    assert_eq!(record["status"], status, "{record}");
    assert_eq!(record["exit_code"], exit_code, "{record}");
    record["ended_at"].as_f64().expect("ended_at")
}

fn run(root: &Path, options: &[&str], script: &str, env: &[(&str, &Path)]) -> Output {
    let mut cmd = agent_run(root, options, &["sh", "-c", script]);
    for (name, value) in env {
        cmd.env(name, value);
    }
    output_within(&mut cmd, LIMIT)
}

/// A command that burns one core in a child for about two seconds, then exits with `code`
/// (`$STOP` is a file path the command creates to stop the child).
fn burning(code: i32) -> String {
    format!(
        "sh -c 'while [ ! -e \"$STOP\" ]; do :; done' & sleep 2; touch \"$STOP\"; wait; exit {code}"
    )
}

fn epoch_in(file: &Path) -> f64 {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.trim().parse().expect("date +%s.%N")
}

#[test]
fn a_cpu_burning_child_shows_in_the_samples() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let stop = scratch.path().join("stop");
    let out = run(
        root.path(),
        &["--telemetry-interval", "0.3"],
        &burning(0),
        &[("STOP", &stop)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let dir = only_run_dir(root.path(), "default");
    let ended = ended_at(&dir, "finished", 0);
    let samples = samples(&dir);
    assert!(samples.len() >= 3, "{} samples in ~2 s", samples.len());
    for pair in samples.windows(2) {
        assert!(
            pair[0].ts < pair[1].ts,
            "ts goes up: {} {}",
            pair[0].ts,
            pair[1].ts
        );
    }
    assert!(
        samples.iter().all(|s| s.ts <= ended),
        "no sample after ended_at {ended}"
    );
    let cpu: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.get("sys/cpu_percent"))
        .collect();
    assert!(cpu.iter().any(|&c| c > 20.0), "the burning child: {cpu:?}");
    assert!(
        samples
            .iter()
            .all(|s| s.get("sys/rss_mib").is_some_and(|m| m > 0.0)),
        "memory in every sample"
    );
    let procs: Vec<f64> = samples.iter().filter_map(|s| s.get("sys/procs")).collect();
    assert!(
        procs.iter().any(|&p| p >= 2.0),
        "sh and its child: {procs:?}"
    );
    assert!(samples.iter().all(|s| s.get("sys/threads").is_some()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("could not"), "{stderr}");
}

/// A directory holding the stand-in nvidia-smi and the 8-GPU host's recorded answers, with no
/// compute apps until the command puts its own pids in (`template` keeps the placeholders).
fn eight_gpu_stand_in() -> (tempfile::TempDir, PathBuf) {
    let fixtures = workspace_root().join("agent/tests/fixtures/nvidia-smi");
    let dir = tempfile::tempdir().unwrap();
    let smi = dir.path().join("nvidia-smi");
    std::fs::copy(fixtures.join("stand-in.sh"), &smi).unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(
        fixtures.join("host-8gpu/query-gpu.csv"),
        dir.path().join("query-gpu.csv"),
    )
    .unwrap();
    std::fs::write(dir.path().join("query-compute-apps.csv"), "").unwrap();
    let template = dir.path().join("apps.template");
    std::fs::copy(fixtures.join("host-8gpu/query-compute-apps.csv"), &template).unwrap();
    (dir, template)
}

#[test]
fn the_gpus_the_run_uses_come_from_nvidia_smi_on_the_path() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (smi, template) = eight_gpu_stand_in();
    let stop = scratch.path().join("stop");
    let ready = scratch.path().join("ready");
    // The run's root pid ($$) and its burning child's are put into the recorded answer, the
    // way nvidia-smi would list them: the root on GPU 2, the child on GPU 5.
    let script = r#"sh -c 'while [ ! -e "$STOP" ]; do :; done' & child=$!
sed -e "s/{RUN_PID}/$$/" -e "s/{RUN_CHILD_PID}/$child/" "$TEMPLATE" > "$SMI/apps.tmp"
mv "$SMI/apps.tmp" "$SMI/query-compute-apps.csv"
date +%s.%N > "$READY"
sleep 2; touch "$STOP"; wait"#;
    let path = std::env::join_paths(std::iter::once(smi.path().to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let out = run(
        root.path(),
        &["--telemetry-interval", "0.3"],
        script,
        &[
            ("STOP", &stop),
            ("READY", &ready),
            ("SMI", smi.path()),
            ("TEMPLATE", &template),
            ("PATH", Path::new(&path)),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("could not"), "{stderr}");
    let dir = only_run_dir(root.path(), "default");
    let ended = ended_at(&dir, "finished", 0);
    let samples = samples(&dir);
    let since = epoch_in(&ready);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.ts > since).collect();
    assert!(
        after.len() >= 2,
        "{} samples after the pids were in",
        after.len()
    );
    for sample in &after {
        let expect = [
            ("sys/gpu.2/util_percent", 87.0),
            ("sys/gpu.2/mem_used_mib", 45690.0),
            ("sys/gpu.2/mem_total_mib", 81920.0),
            ("sys/gpu.2/run_mem_mib", 45274.0),
            ("sys/gpu.2/temp_c", 55.0),
            ("sys/gpu.2/power_w", 301.44),
            ("sys/gpu.5/mem_used_mib", 40402.0),
            ("sys/gpu.5/run_mem_mib", 39472.0),
        ];
        for (key, value) in expect {
            assert_eq!(sample.get(key), Some(value), "{key} in {:?}", sample.data);
        }
    }
    for sample in &samples {
        assert!(
            sample
                .gpu_keys()
                .iter()
                .all(|k| k.starts_with("sys/gpu.2/") || k.starts_with("sys/gpu.5/")),
            "only the run's GPUs: {:?}",
            sample.gpu_keys()
        );
        assert!(sample.ts <= ended);
    }
}

#[test]
fn telemetry_turned_off_writes_no_file() {
    let cases: [(&[&str], Option<&str>); 3] = [
        (&["--no-telemetry"], None),
        (&["--telemetry-interval", "0"], Some("0.1")),
        (&[], Some("0")),
    ];
    for (options, env) in cases {
        let root = tempfile::tempdir().unwrap();
        let mut cmd = agent_run(root.path(), options, &["sh", "-c", "sleep 0.6"]);
        if let Some(env) = env {
            cmd.env("RUNICORN_TELEMETRY_INTERVAL", env);
        }
        let out = output_within(&mut cmd, LIMIT);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{options:?}: {}",
            describe(&out)
        );
        let dir = only_run_dir(root.path(), "default");
        assert!(dir.join("status.json").exists());
        assert!(
            !dir.join("system.jsonl").exists(),
            "{options:?} {env:?}: telemetry is off"
        );
    }

    // The environment's interval is used when the option is absent.
    let root = tempfile::tempdir().unwrap();
    let mut cmd = agent_run(root.path(), &[], &["sh", "-c", "sleep 1"]);
    cmd.env("RUNICORN_TELEMETRY_INTERVAL", "0.2");
    let out = output_within(&mut cmd, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(samples(&only_run_dir(root.path(), "default")).len() >= 2);

    // A bad interval is refused before anything runs.
    let root = tempfile::tempdir().unwrap();
    let out = output_within(
        &mut agent_run(root.path(), &["--telemetry-interval=-1"], &["true"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--telemetry-interval"),
        "{}",
        describe(&out)
    );
    assert!(!root.path().join("runs").exists(), "no run was made");
}

#[test]
fn a_failing_nvidia_smi_is_warned_about_once_and_sampling_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let smi = scratch.path().join("broken-nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it couldn'\"'\"'t communicate with the NVIDIA driver.'\nexit 9\n",
    )
    .unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let smi_arg = smi.to_str().unwrap();
    let out = run(
        root.path(),
        &["--telemetry-interval", "0.2", "--nvidia-smi", smi_arg],
        "sleep 1.5; exit 4",
        &[],
    );
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("could not read the GPUs").count(),
        1,
        "one warning: {stderr}"
    );
    assert!(
        stderr.contains("couldn't communicate with the NVIDIA driver"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning"),
        "the agent's warning label: {stderr}"
    );
    let dir = only_run_dir(root.path(), "default");
    ended_at(&dir, "failed", 4);
    let samples = samples(&dir);
    assert!(samples.len() >= 3, "{} samples", samples.len());
    assert!(samples
        .iter()
        .all(|s| s.get("sys/procs").is_some() && s.gpu_keys().is_empty()));
}

#[test]
fn a_system_file_that_cannot_be_written_is_warned_about_once() {
    // A directory in place of system.jsonl: every append fails, as root too.
    let root = tempfile::tempdir().unwrap();
    let out = run(
        root.path(),
        &["--telemetry-interval", "1"],
        "mkdir \"$RUNICORN_RUN_DIR/system.jsonl\"; sleep 3.5; exit 3",
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("could not record").count(),
        1,
        "one warning: {stderr}"
    );
    assert!(
        stderr.contains("system.jsonl"),
        "the file is named: {stderr}"
    );
    let dir = only_run_dir(root.path(), "default");
    ended_at(&dir, "failed", 3);
    assert!(dir.join("system.jsonl").is_dir());
}

#[test]
fn a_run_directory_made_read_only_keeps_the_exit_code_and_warns_once() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: root writes into a read-only directory; run as another user");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mark = scratch.path().join("read-only-at");
    let out = run(
        root.path(),
        &["--telemetry-interval", "0.3"],
        "chmod a-w \"$RUNICORN_RUN_DIR\"; date +%s.%N > \"$MARK\"; sleep 1.5; exit 3",
        &[("MARK", &mark)],
    );
    let dir = only_run_dir(root.path(), "default");
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("could not record").count(),
        1,
        "one warning: {stderr}"
    );
    let read_only_at = epoch_in(&mark);
    if dir.join("system.jsonl").exists() {
        for sample in samples(&dir) {
            assert!(sample.ts < read_only_at, "a line written after the chmod");
        }
    }
}

#[test]
fn a_metadata_only_export_carries_the_samples() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = run(
        root.path(),
        &["--telemetry-interval", "0.2"],
        "sleep 1",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let dir = only_run_dir(root.path(), "default");
    assert!(samples(&dir).len() >= 2);

    let file = work.path().join("meta.rbundle");
    let mut export = runicorn_tests::agent();
    export
        .args(["export", "--metadata-only", "--root"])
        .arg(root.path())
        .arg("-o")
        .arg(&file);
    let out = output_within(&mut export, LIMIT);
    assert!(out.status.success(), "{}", describe(&out));
    let dest = work.path().join("landed");
    std::fs::create_dir(&dest).unwrap();
    let read = runicorn_bundle::read_bundle(
        std::fs::File::open(&file).unwrap(),
        &dest,
        &runicorn_bundle::Limits::default(),
    )
    .unwrap();
    let member = read
        .members
        .iter()
        .find(|m| m.root_path.ends_with("/system.jsonl"))
        .expect("system.jsonl is a member");
    assert!(member.location.is_some(), "carried, not only listed");
    let run_rel = dir.strip_prefix(root.path()).unwrap();
    let landed = runicorn_bundle::ReadBundle::source_root(&dest, 0)
        .join(run_rel)
        .join("system.jsonl");
    assert_eq!(
        std::fs::read(landed).unwrap(),
        std::fs::read(dir.join("system.jsonl")).unwrap()
    );
}
