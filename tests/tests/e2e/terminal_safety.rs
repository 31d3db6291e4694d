//! Terminal output is safe (issue 9, item 5): strings from a run directory or a remote (run
//! paths, aliases, statuses, skipped names and reasons) reach the terminal with their control
//! characters made visible (`runicorn_cli::safe`), so a run name cannot rewrite the user's
//! terminal. `runicorn-agent ls` and `runicorn-hub ls`/`remotes` in table mode print no raw
//! ESC, BEL, C1 control or bidi override, and the names stay recognisable.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_tests::hub::{agent_path, connect_local, hub, show};
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::{agent, workspace_root};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` to its end, killing it (and failing) past [`TIMEOUT`].
fn run(cmd: &mut Command) -> Output {
    runicorn_tests::output_within(cmd, TIMEOUT)
}

/// The raw sequences that must never reach a terminal, if any is in `bytes`: ESC, BEL, other
/// C0 controls but newline, DEL, C1 controls (UTF-8 `c2 80`–`c2 9f`) and bidi overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069).
fn raw_controls(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.char_indices()
        .filter(|&(_, c)| {
            (c.is_control() && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .map(|(i, c)| format!("U+{:04X} at byte {i}", c as u32))
        .collect()
}

fn assert_terminal_safe(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let found = raw_controls(bytes);
        assert!(
            found.is_empty(),
            "{what} {stream}: raw {found:?}\n{}",
            show(out)
        );
    }
}

fn set_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// A root with one plain run and hostile ones: an alias with an OSC title sequence and BEL, a
/// status with a CSI and a C1 CSI, tags with bidi overrides, and a path with ESC sequences.
fn hostile_root(root: &Path) {
    let mut ids = Vec::new();
    for (i, path) in ["plain", "osc", "csi", "bidi"].into_iter().enumerate() {
        let mut spec = RunSpec::new(root, "terminal-test");
        spec.path = Some(path.to_owned());
        spec.run_id = Some(format!("run{i}"));
        let mut w = RunWriter::create(&spec).unwrap();
        w.log_metrics(&[("loss", 1.0)], None, None).unwrap();
        w.finish(RunOutcome::finished()).unwrap();
        ids.push(w.dir().to_owned());
    }
    set_json(&ids[1].join("meta.json"), |m| {
        m["alias"] = "\u{1b}]0;pwned-title\u{7}osc-alias".into();
        m["tags"] = serde_json::json!(["\u{1b}[2Jclear", "\u{7}bell"]);
    });
    set_json(&ids[2].join("status.json"), |s| {
        s["status"] = "finished\u{1b}[8m\u{9b}31m".into();
    });
    set_json(&ids[2].join("meta.json"), |m| {
        m["alias"] = "csi\u{1b}[1A\u{1b}[Kalias\u{7f}".into();
    });
    set_json(&ids[3].join("meta.json"), |m| {
        m["alias"] = "\u{202e}bidi-alias\u{202c}\u{2066}x\u{2069}".into();
        m["tags"] = serde_json::json!(["\u{202d}tag"]);
    });
    // A path segment that holds an escape sequence, in the folder name and in meta.json.
    let evil = "esc\u{1b}[31mred\u{1b}]8;;http://x\u{7}";
    let from = root.join("runs/plain");
    let to = root.join("runs").join(evil);
    copy_dir(&from, &to);
    let run_dir = std::fs::read_dir(&to)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let new_dir = to.join("run9");
    std::fs::rename(&run_dir, &new_dir).unwrap();
    set_json(&new_dir.join("meta.json"), |m| {
        m["path"] = evil.into();
        m["id"] = "run9".into();
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn ls_of_agent_and_hub_prints_no_raw_control_sequences() {
    let root = tempfile::tempdir().unwrap();
    hostile_root(root.path());

    // runicorn-agent ls, table mode.
    let out = run(agent().arg("ls").arg("--root").arg(root.path()));
    assert!(out.status.success(), "{}", show(&out));
    assert_terminal_safe("runicorn-agent ls", &out);
    let table = String::from_utf8_lossy(&out.stdout);
    for visible in [
        "\\x1b]0;pwned-title\\x07osc-alias",
        "csi\\x1b[1A\\x1b[Kalias\\x7f",
        "\\u{202e}bidi-alias\\u{202c}",
    ] {
        assert!(table.contains(visible), "{visible:?} in:\n{table}");
    }
    // --json stays JSON: serde escapes the control characters, the values are intact.
    let out = run(agent()
        .args(["ls", "--json"])
        .arg("--root")
        .arg(root.path()));
    assert!(!out.stdout.contains(&0x1b), "{}", show(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["alias"] == "\u{1b}]0;pwned-title\u{7}osc-alias"));

    // runicorn-hub: sync, then ls in table mode.
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let out = run(
        connect_local(home.path(), hub_dir.path(), root.path(), &agent_path())
            .args(["--name", "gpu", "--once", "--no-ui"]),
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_terminal_safe("runicorn-hub connect", &out);
    let out = run(hub(home.path(), hub_dir.path()).arg("ls"));
    assert!(out.status.success(), "{}", show(&out));
    assert_terminal_safe("runicorn-hub ls", &out);
    let table = String::from_utf8_lossy(&out.stdout);
    for visible in [
        "\\x1b]0;pwned-title\\x07osc-alias",
        "csi\\x1b[1A\\x1b[Kalias\\x7f",
        "\\u{202e}bidi-alias\\u{202c}",
        "plain",
    ] {
        assert!(table.contains(visible), "{visible:?} in:\n{table}");
    }
    let out = run(hub(home.path(), hub_dir.path()).args(["ls", "--json"]));
    assert!(!out.stdout.contains(&0x1b), "{}", show(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["tags"] == serde_json::json!(["\u{202d}tag"])));
}

#[test]
fn remotes_and_sync_messages_print_no_raw_control_sequences() {
    // An agent whose skipped names and reasons hold OSC, BEL, CSI and a bidi override.
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let broken_agent = workspace_root().join("tests/support/broken_agent.py");
    let out = run(
        connect_local(home.path(), hub_dir.path(), root.path(), &broken_agent)
            .args(["--name", "odd", "--once", "--no-ui"])
            .env("BROKEN_AGENT_MODE", "mixed"),
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_terminal_safe("runicorn-hub connect", &out);
    let out = run(hub(home.path(), hub_dir.path()).arg("remotes"));
    assert_terminal_safe("runicorn-hub remotes", &out);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("runs/\\x1b]0;owned\\x07bell\\u{202e}"),
        "the name stays recognisable:\n{table}"
    );
    assert!(table.contains("a control character \\x1b[2J"), "{table}");
    // --json keeps the values (escaped by JSON, not by the terminal helper).
    let out = run(hub(home.path(), hub_dir.path()).args(["remotes", "--json"]));
    assert!(!out.stdout.contains(&0x1b));
    let remotes: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(remotes[0]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["name"] == "runs/\u{1b}]0;owned\u{7}bell\u{202e}"));

    // An agent whose error output holds escape sequences: the hub's error quotes it safely.
    let out = run(
        connect_local(home.path(), hub_dir.path(), root.path(), &broken_agent)
            .args(["--name", "noisy", "--once", "--no-ui"])
            .env("BROKEN_AGENT_MODE", "invalid")
            .env(
                "BROKEN_AGENT_STDERR",
                "\u{1b}]0;pwned\u{7}\u{1b}[2Jnoise\u{9b}1m",
            ),
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert_terminal_safe("runicorn-hub connect (broken agent)", &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\\x1b]0;pwned\\x07\\x1b[2Jnoise"), "{err}");
}
