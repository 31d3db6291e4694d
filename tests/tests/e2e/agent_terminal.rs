//! `runicorn-agent run` at a real terminal: Ctrl-C typed at a pseudo-terminal reaches the
//! command once (the agent does not send it a second time) and the run is `interrupted`.
//! Python's `pty` module provides the terminal.

use std::process::Command;

use runicorn_tests::{binary, ls_json};

const DRIVER: &str = r#"
import os, pty, sys, time
agent, root = sys.argv[1], sys.argv[2]
script = "trap 'echo got-int; n=$((n+1)); echo count=$n' INT; n=0; echo ready; i=0; while [ $i -lt 30 ]; do sleep 0.05; i=$((i+1)); done; exit $n"
pid, fd = pty.fork()
if pid == 0:
    os.execv(agent, [agent, "run", "--root", root, "--", "sh", "-c", script])
out = b""
deadline = time.time() + 20
sent = False
while time.time() < deadline:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    if b"ready" in out and not sent:
        os.write(fd, b"\x03")
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nEXIT=%d\n" % os.waitstatus_to_exitcode(status))
"#;

#[test]
fn ctrl_c_at_the_terminal_reaches_the_command_once() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .args(["-c", DRIVER])
        .arg(binary("runicorn-agent"))
        .arg(root.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("got-int"), "the command saw Ctrl-C: {text}");
    assert!(
        text.contains("count=1") && !text.contains("count=2"),
        "exactly once: {text}"
    );
    assert!(
        text.contains("EXIT=1"),
        "the agent exits with the command's code: {text}"
    );
    let run = &ls_json(root.path(), &[])[0];
    assert_eq!(run["status"], "interrupted", "{run}");
}
