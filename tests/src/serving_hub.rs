//! A real `runicorn-hub` process that serves the dashboard (`ui`, `connect`, `demo`), started
//! from a prepared command: it is ready once it prints its `dashboard: URL` line; its stderr is
//! collected on a thread for assertion messages; it is killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{get, Response};

/// How long a hub may take to print its dashboard line.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a hub may take to stop after Ctrl-C.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// A hub process serving the dashboard.
pub struct ServingHub {
    child: Child,
    /// Where the dashboard listens.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl ServingHub {
    /// Spawns `cmd` (stdout discarded, stderr collected) and waits for its `dashboard: URL`.
    pub fn start(mut cmd: Command) -> ServingHub {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runicorn-hub starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("piped stderr");
        let collected = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("dashboard: ") {
                    let _ = tx.send(url.to_owned());
                }
                let mut all = collected.lock().expect("stderr lock");
                all.push_str(&line);
                all.push('\n');
            }
        });
        let Ok(url) = rx.recv_timeout(READY_WITHIN) else {
            let _ = child.kill();
            panic!(
                "no dashboard line:\n{}",
                stderr.lock().expect("stderr lock")
            );
        };
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        ServingHub {
            child,
            addr,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// `GET target`.
    pub fn get(&self, target: &str) -> Response {
        get(self.addr, target)
    }

    /// `GET target`, which must answer `200` with JSON.
    pub fn json(&self, target: &str) -> Value {
        let r = self.get(target);
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        r.json()
    }

    /// Ctrl-C (SIGINT): the hub must stop within 20 s and exit 0; returns its stderr.
    pub fn interrupt(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + STOP_WITHIN;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("Ctrl-C did not stop the hub:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let err = self.stderr();
        assert!(status.success(), "exit {status}:\n{err}");
        err
    }
}

impl Drop for ServingHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
