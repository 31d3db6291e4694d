//! `runicorn-agent run` as a user runs it: real child processes, real signals, real files.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use runicorn_tests::{agent, agent_run, describe, ls_json, only_run_dir, read_json, wait_until};

#[test]
fn failing_command_is_recorded_failed_with_its_exit_code_and_output() {
    let root = tempfile::tempdir().unwrap();
    let out = agent_run(
        root.path(),
        &[],
        &["sh", "-c", "echo hi; echo oops >&2; exit 3"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi\n",
        "stdout is passed through unchanged"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));

    let dir = only_run_dir(root.path(), "default");
    let status = read_json(&dir.join("status.json"));
    assert_eq!(status["status"], "failed");
    assert_eq!(status["exit_code"], 3);
    assert!(status["ended_at"].as_f64().is_some());
    let logs = std::fs::read_to_string(dir.join("logs.txt")).unwrap();
    assert!(logs.lines().any(|l| l.ends_with("] hi")), "{logs}");
    assert!(logs.lines().any(|l| l.ends_with("] oops")), "{logs}");
    let env = read_json(&dir.join("environment.json"));
    assert_eq!(env["argv"][0], "sh");
    assert!(env["cwd"].as_str().is_some());

    let runs = ls_json(root.path(), &[]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["path"], "default");
}

#[test]
fn successful_command_with_path_alias_and_progress_bar() {
    let root = tempfile::tempdir().unwrap();
    let script = r#"printf 'epoch 1\n'; for p in 10 50 100; do printf '\r%s%%|bar|' $p >&2; done; printf '\n' >&2; printf '\033[32mgreen\033[0m\n'"#;
    let out = agent()
        .args([
            "run",
            "--path",
            "cv/resnet",
            "--alias",
            "baseline",
            "--root",
        ])
        .arg(root.path())
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let dir = only_run_dir(root.path(), "cv/resnet");
    let logs = std::fs::read_to_string(dir.join("logs.txt")).unwrap();
    let lines: Vec<&str> = logs.lines().map(|l| &l[11..]).collect();
    assert!(
        lines.contains(&"100%|bar|"),
        "only the last redraw is kept: {lines:?}"
    );
    assert!(!logs.contains("50%"), "{logs}");
    assert!(
        lines.contains(&"\x1b[32mgreen\x1b[0m"),
        "ANSI colours are kept: {lines:?}"
    );
    let meta = read_json(&dir.join("meta.json"));
    assert_eq!(
        (meta["path"].as_str(), meta["alias"].as_str()),
        (Some("cv/resnet"), Some("baseline"))
    );
    let runs = ls_json(root.path(), &["--path", "cv"]);
    assert_eq!(runs[0]["status"], "finished");
    assert_eq!(runs[0]["alias"], "baseline");
}

#[test]
fn child_sees_the_run_it_belongs_to() {
    let root = tempfile::tempdir().unwrap();
    let out = agent()
        .args(["run", "--run-id", "my-run", "--root"])
        .arg(root.path())
        .args([
            "--",
            "sh",
            "-c",
            "echo \"$RUNICORN_DIR|$RUNICORN_RUN_DIR|$PYTHONUNBUFFERED\"",
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let expected_dir = root.path().join("runs/default/my-run");
    assert_eq!(
        printed,
        format!("{}|{}|1", root.path().display(), expected_dir.display())
    );
}

#[test]
fn missing_command_is_a_failed_run_and_exit_127() {
    let root = tempfile::tempdir().unwrap();
    let out = agent_run(root.path(), &[], &["no-such-program-runicorn-test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-program-runicorn-test") && err.contains("PATH"),
        "{err}"
    );
    assert_eq!(ls_json(root.path(), &[])[0]["status"], "failed");
}

#[test]
fn duplicate_run_id_is_refused_clearly() {
    let root = tempfile::tempdir().unwrap();
    for expect_ok in [true, false] {
        let out = agent()
            .args(["run", "--run-id", "same", "--root"])
            .arg(root.path())
            .args(["--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.success(), expect_ok, "{}", describe(&out));
        if !expect_ok {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("already exists"),
                "{}",
                describe(&out)
            );
        }
    }
}

#[test]
fn sigterm_to_the_agent_reaches_the_command_and_is_recorded() {
    let root = tempfile::tempdir().unwrap();
    let mut child = agent()
        .args(["run", "--root"])
        .arg(root.path())
        .args([
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir_root = root.path().to_owned();
    assert!(
        wait_until(10.0, || {
            std::fs::read_dir(dir_root.join("runs/default"))
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .is_some_and(|e| {
                    std::fs::read_to_string(e.path().join("logs.txt"))
                        .unwrap_or_default()
                        .contains("ready")
                })
        }),
        "the command started"
    );
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "the agent exits with the command's code; stdout: {stdout}"
    );
    assert!(stdout.contains("got-term"));
    let run = &ls_json(root.path(), &[])[0];
    assert_eq!(run["status"], "interrupted", "{run}");
}

#[test]
fn command_killed_by_a_signal_is_killed_and_agent_exits_128_plus_n() {
    let root = tempfile::tempdir().unwrap();
    let out = agent_run(root.path(), &[], &["sh", "-c", "kill -9 $$"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", describe(&out));
    let run = &ls_json(root.path(), &[])[0];
    assert_eq!(run["status"], "killed");
    assert_eq!(run["reason"], "signal: SIGKILL");
}

#[test]
fn agent_killed_with_sigkill_shows_crashed() {
    let root = tempfile::tempdir().unwrap();
    let pid_file = root.path().join("child.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let mut child = agent()
        .args(["run", "--heartbeat", "0.2", "--root"])
        .arg(root.path())
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(10.0, || pid_file.exists()
        && std::fs::read_to_string(&pid_file).unwrap().ends_with('\n')));
    assert_eq!(ls_json(root.path(), &[])[0]["status"], "running");
    child.kill().unwrap();
    child.wait().unwrap();
    let sleeper: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: the orphaned `sleep` is ours to clean up.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
    let run = &ls_json(root.path(), &[])[0];
    assert_eq!(run["status"], "crashed", "{run}");
    assert!(run["reason"].as_str().unwrap().contains("is gone"), "{run}");
    let crashed = ls_json(root.path(), &["--status", "crashed"]);
    assert_eq!(crashed.len(), 1);
    std::thread::sleep(Duration::from_millis(10));
}

/// Mounts a tiny tmpfs (needs root); `None` where this machine does not allow it.
fn tiny_tmpfs(dir: &std::path::Path, size: &str) -> Option<()> {
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then_some(())
}

#[test]
fn full_disk_warns_once_and_the_command_runs_to_the_end() {
    let mount_point = tempfile::tempdir().unwrap();
    if tiny_tmpfs(mount_point.path(), "96k").is_none() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let root = mount_point.path().join("root");
    let script = "i=0; while [ $i -lt 3000 ]; do echo \"line $i: padding padding padding padding padding padding padding\"; i=$((i+1)); done; echo last-line";
    let out = agent()
        .args(["run", "--root"])
        .arg(&root)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    let _ = std::process::Command::new("umount")
        .arg(mount_point.path())
        .status();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        3001,
        "every line reached the terminal"
    );
    assert!(stdout.ends_with("last-line\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings = stderr.matches("could not record").count();
    assert_eq!(
        warnings, 1,
        "one warning, naming the run directory: {stderr}"
    );
    assert!(stderr.contains("No space left"), "{stderr}");
}

#[test]
fn python_sdk_inside_the_wrapper_logs_into_the_same_run() {
    let root = tempfile::tempdir().unwrap();
    let example = runicorn_tests::workspace_root().join("examples/train.py");
    let out = agent()
        .args(["run", "--path", "demo/mnist", "--root"])
        .arg(root.path())
        .arg("--")
        .arg("python3")
        .arg(&example)
        .env("RUNICORN_HEARTBEAT_INTERVAL", "0.5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let runs = ls_json(root.path(), &[]);
    assert_eq!(
        runs.len(),
        1,
        "the SDK joined the wrapper's run instead of making its own: {runs:?}"
    );
    let run = &runs[0];
    assert_eq!(run["status"], "finished");
    assert_eq!(run["path"], "demo/mnist");
    assert_eq!(run["last_step"], 50);
    assert_eq!(run["points"], 150);
    assert_eq!(run["keys"], serde_json::json!(["acc", "loss", "lr"]));
    let dir = only_run_dir(root.path(), "demo/mnist");
    let logs = std::fs::read_to_string(dir.join("logs.txt")).unwrap();
    let progress_lines = logs.lines().filter(|l| l.contains("|####")).count();
    assert_eq!(
        progress_lines, 1,
        "50 redraws of the bar are one log line: {logs}"
    );
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["best_metric_name"], "acc");
    let status = read_json(&dir.join("status.json"));
    assert_eq!(
        status["pid"].as_i64(),
        read_json(&dir.join("meta.json"))["pid"].as_i64(),
        "the wrapper owns the status"
    );
}

#[test]
fn environment_records_git_state_and_gpus() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(work.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap();
        assert!(ok.status.success(), "git {args:?}: {}", describe(&ok));
        String::from_utf8_lossy(&ok.stdout).trim().to_owned()
    };
    git(&["init", "-q", "-b", "exp-branch"]);
    std::fs::write(work.path().join("train.py"), "print(1)\n").unwrap();
    git(&["add", "train.py"]);
    git(&["commit", "-q", "-m", "first"]);
    let head = git(&["rev-parse", "HEAD"]);
    std::fs::write(work.path().join("train.py"), "print(2)\n").unwrap();
    // This machine has no GPU: a stand-in nvidia-smi prints what the real one prints for
    // `--query-gpu=… --format=csv,noheader,nounits`, so the parsing is what is tested.
    let bin = tempfile::tempdir().unwrap();
    let smi = bin.path().join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\necho '0, NVIDIA A100-SXM4-80GB, 81920, 535.104.05, GPU-1111'\necho '1, NVIDIA A100-SXM4-80GB, 81920, 535.104.05, GPU-2222'\n").unwrap();
    std::fs::set_permissions(&smi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = agent_run(root.path(), &[], &["sh", "-c", "true"])
        .current_dir(work.path())
        .env("PATH", path)
        .env("CUDA_VISIBLE_DEVICES", "0,1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let env = read_json(&only_run_dir(root.path(), "default").join("environment.json"));
    assert_eq!(env["git_info"]["commit"], head.as_str());
    assert_eq!(env["git_info"]["branch"], "exp-branch");
    assert_eq!(env["git_info"]["dirty"], true);
    assert_eq!(env["gpu_info"].as_array().map(Vec::len), Some(2));
    assert_eq!(env["gpu_info"][1]["name"], "NVIDIA A100-SXM4-80GB");
    assert_eq!(env["gpu_info"][1]["memory_total_mib"], 81920);
    assert_eq!(env["env_variables"]["CUDA_VISIBLE_DEVICES"], "0,1");
    assert_eq!(env["cwd"], work.path().to_string_lossy().as_ref());
}

#[test]
fn closed_terminal_output_does_not_stop_the_log_or_the_command() {
    let root = tempfile::tempdir().unwrap();
    let agent_bin = runicorn_tests::binary("runicorn-agent");
    let pipeline = format!(
        "'{}' run --root '{}' -- sh -c 'i=0; while [ $i -lt 5000 ]; do echo line-$i; i=$((i+1)); done' | head -n 1",
        agent_bin.display(),
        root.path().display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &pipeline])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "line-0\n",
        "{}",
        describe(&out)
    );
    let dir = only_run_dir(root.path(), "default");
    let logs = std::fs::read_to_string(dir.join("logs.txt")).unwrap();
    assert_eq!(
        logs.lines().count(),
        5000,
        "every line is in the log after `head` went away"
    );
    assert!(logs.ends_with("] line-4999\n"));
    assert_eq!(read_json(&dir.join("status.json"))["status"], "finished");
}
