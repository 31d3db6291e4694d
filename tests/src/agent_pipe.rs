//! Talking to `runicorn-agent serve --stdio` as the hub does: the real binary with piped
//! stdin/stdout, frames written and read with the protocol crate, answers read on a thread so a
//! test can wait for them with a timeout, stderr collected for assertion messages.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runicorn_protocol::wire::{
    read_frame, write_frame, Body, ChangeBatch, ChangesRequest, Cursor, Envelope, Hello, LogBatch,
    LogRequest, LogWanted, PointBatch, PointsRequest, PointsWanted, DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_NAME, PROTOCOL_VERSION,
};

/// How long a test waits for an answer before failing.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `runicorn-agent serve --stdio`.
pub struct AgentPipe {
    pub child: Child,
    stdin: Option<ChildStdin>,
    frames: Receiver<Envelope>,
    stderr: Arc<Mutex<String>>,
    next_id: u64,
    /// Notices that arrived while waiting for answers.
    pub notices: VecDeque<Envelope>,
    /// The agent's `hello`, once the handshake is done.
    pub hello: Option<Hello>,
}

/// The `hello` a hub sends.
pub fn hub_hello(versions: Vec<u32>) -> Hello {
    Hello {
        protocol: PROTOCOL_NAME.into(),
        versions,
        capabilities: vec![],
        software: "runicorn-tests/0".into(),
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        root: None,
        host: None,
        epoch: None,
    }
}

impl AgentPipe {
    /// Starts the agent on `root` with extra arguments and environment, without a handshake.
    pub fn spawn(root: &Path, extra: &[&str], env: &[(&str, &str)]) -> AgentPipe {
        AgentPipe::spawn_command(crate::agent(), root, extra, env)
    }

    /// Like [`AgentPipe::spawn`], with the agent's command given (another build of the agent).
    pub fn spawn_command(
        mut cmd: Command,
        root: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> AgentPipe {
        cmd.args(["serve", "--stdio", "--root"])
            .arg(root)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the agent starts");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(env) = read_frame(&mut stdout, DEFAULT_MAX_FRAME_BYTES) {
                if tx.send(env).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        AgentPipe {
            stdin: child.stdin.take(),
            child,
            frames,
            stderr,
            next_id: 1,
            notices: VecDeque::new(),
            hello: None,
        }
    }

    /// Starts the agent and completes the handshake.
    pub fn start(root: &Path, extra: &[&str], env: &[(&str, &str)]) -> AgentPipe {
        AgentPipe::handshake(AgentPipe::spawn(root, extra, env))
    }

    /// Completes the handshake of an agent started with [`AgentPipe::spawn`] or
    /// [`AgentPipe::spawn_command`].
    pub fn handshake(mut pipe: AgentPipe) -> AgentPipe {
        match pipe.request(Body::Hello(hub_hello(vec![PROTOCOL_VERSION]))) {
            Body::Hello(h) => pipe.hello = Some(h),
            other => panic!("expected hello, got {other:?}\n{}", pipe.stderr()),
        }
        pipe
    }

    /// The agent's epoch (after the handshake).
    pub fn epoch(&self) -> String {
        self.hello
            .as_ref()
            .and_then(|h| h.epoch.clone())
            .expect("handshake done")
    }

    /// What the agent printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a message with a new id; returns the id.
    pub fn send(&mut self, body: Body) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let stdin = self.stdin.as_mut().expect("stdin open");
        write_frame(stdin, &Envelope { id, body }, DEFAULT_MAX_FRAME_BYTES).expect("frame sent");
        id
    }

    /// Writes raw bytes to the agent's stdin.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("bytes sent");
        stdin.flush().expect("flushed");
    }

    /// The next frame from the agent, if one comes within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Option<Envelope> {
        self.frames.recv_timeout(timeout).ok()
    }

    /// Sends a request and waits for the answer carrying its id (notices are kept aside).
    pub fn request(&mut self, body: Body) -> Body {
        let id = self.send(body);
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(env) = self.recv(left) else {
                panic!("no answer to request {id}\n--- stderr\n{}", self.stderr());
            };
            if env.id == id {
                return env.body;
            }
            assert!(
                matches!(env.body, Body::Notice(_)),
                "unexpected frame while waiting for {id}: {env:?}"
            );
            self.notices.push_back(env);
        }
    }

    /// Waits for a notice (one already received counts).
    pub fn wait_notice(&mut self, timeout: Duration) -> Option<Cursor> {
        if let Some(env) = self.notices.pop_front() {
            if let Body::Notice(n) = env.body {
                return Some(n.cursor);
            }
        }
        match self.recv(timeout)?.body {
            Body::Notice(n) => Some(n.cursor),
            other => panic!("unexpected frame while waiting for a notice: {other:?}"),
        }
    }

    /// One `changes` request.
    pub fn changes(&mut self, since: Option<Cursor>, max_runs: u32) -> ChangeBatch {
        match self.request(Body::Changes(ChangesRequest { since, max_runs })) {
            Body::ChangeBatch(b) => b,
            other => panic!("expected change_batch, got {other:?}\n{}", self.stderr()),
        }
    }

    /// `changes` until `more` is false; returns every batch.
    pub fn changes_all(&mut self, since: Option<Cursor>, max_runs: u32) -> Vec<ChangeBatch> {
        let mut batches = vec![self.changes(since, max_runs)];
        while let Some(last) = batches.last().filter(|b| b.more) {
            let cursor = last.cursor.clone();
            batches.push(self.changes(Some(cursor), max_runs));
        }
        batches
    }

    /// One `points` request.
    pub fn points(&mut self, runs: Vec<PointsWanted>, max_bytes: u64) -> Body {
        self.request(Body::Points(PointsRequest { runs, max_bytes }))
    }

    /// One `points` request that must succeed.
    pub fn point_batch(&mut self, runs: Vec<PointsWanted>, max_bytes: u64) -> PointBatch {
        match self.points(runs, max_bytes) {
            Body::PointBatch(b) => b,
            other => panic!("expected point_batch, got {other:?}"),
        }
    }

    /// One `log` request, for exact bytes (as the hub asks).
    pub fn log(&mut self, runs: Vec<LogWanted>, max_bytes: u64) -> Body {
        self.request(Body::Log(LogRequest {
            runs,
            max_bytes,
            exact: true,
        }))
    }

    /// One `log` request that must succeed.
    pub fn log_batch(&mut self, runs: Vec<LogWanted>, max_bytes: u64) -> LogBatch {
        match self.log(runs, max_bytes) {
            Body::LogBatch(b) => b,
            other => panic!("expected log_batch, got {other:?}"),
        }
    }

    /// Closes the agent's stdin (the hub going away).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the agent to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for AgentPipe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
