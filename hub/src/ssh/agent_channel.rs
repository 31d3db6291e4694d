//! `runicorn-agent` on the server, over an exec channel: the POSIX `sh` command that finds it
//! (explicit path, the remote PATH, `~/.runicorn/bin`), its stdin/stdout as async streams, its
//! stderr kept in the background (last 8 KiB), its exit status, and the message telling the
//! user how to install it when it is missing (`runicorn-hub connect HOST --install-agent`).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

use super::connect::{signal_text, Shared, SshSession};
use super::error::SshError;
use super::target::SshTarget;

/// How much of the agent's stderr is kept.
const STDERR_TAIL: usize = 8 * 1024;
/// Stdout chunks buffered between the channel and the reader (each at most one SSH packet).
const STDOUT_QUEUE: usize = 64;
/// Where the agent is looked for when it is not on the remote PATH (relative to `$HOME`).
pub const AGENT_HOME_PATH: &str = ".runicorn/bin/runicorn-agent";

/// Quotes `word` for a POSIX shell (unchanged when it needs no quoting).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command line that starts the agent on the server. With `agent_path`, that program
/// (`~/` is the remote home); without, `runicorn-agent` from the PATH of a non-interactive
/// shell, else `$HOME/.runicorn/bin/runicorn-agent`, else exit 127 with a message on stderr.
pub fn agent_command(agent_path: Option<&str>, args: &[String]) -> String {
    let quoted_args: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    let program = match agent_path {
        Some(path) => match path.strip_prefix("~/") {
            Some(rest) => format!("\"$HOME\"/{}", shell_quote(rest)),
            None => shell_quote(path),
        },
        None => {
            // One line, no `!`, no single quotes: survives csh and fish login shells too.
            let script = format!(
                "a=$(command -v runicorn-agent 2>/dev/null); case \"$a\" in /*) ;; \
                 *) a=\"$HOME/{AGENT_HOME_PATH}\";; esac; \
                 if [ -x \"$a\" ]; then exec \"$a\" \"$@\"; fi; \
                 echo \"runicorn-agent: not found on the PATH nor at $HOME/{AGENT_HOME_PATH}\" >&2; \
                 exit 127"
            );
            format!("sh -c {} runicorn-agent", shell_quote(&script))
        }
    };
    let mut command = format!("exec {program}");
    for arg in quoted_args {
        command.push(' ');
        command.push_str(&arg);
    }
    command
}

/// When the agent could not be started (exit 127/126), the message that tells the user how to
/// install it; `None` for any other outcome.
pub fn missing_agent_message(
    target: &SshTarget,
    status: Option<u32>,
    stderr: &str,
) -> Option<String> {
    let not_found = status == Some(127) || stderr.contains("runicorn-agent: not found");
    let not_executable = status == Some(126);
    if !not_found && !not_executable {
        return None;
    }
    let (ssh_dest, scp_dest, port_ssh, port_scp) = if target.alias != target.host {
        (
            target.alias.clone(),
            target.alias.clone(),
            String::new(),
            String::new(),
        )
    } else {
        let dest = format!("{}@{}", target.user, target.host);
        let (p, cap_p) = if target.port == 22 {
            (String::new(), String::new())
        } else {
            (
                format!("-p {} ", target.port),
                format!("-P {} ", target.port),
            )
        };
        (dest.clone(), dest, p, cap_p)
    };
    let detail = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(" ({})", l.trim()))
        .unwrap_or_default();
    let problem = if not_executable {
        format!(
            "runicorn-agent on {} cannot be executed{detail}: it may be built for another \
             platform, or lack the execute permission",
            target.host
        )
    } else {
        format!("runicorn-agent is not installed on {}{detail}", target.host)
    };
    Some(format!(
        "{problem}. Install it: `runicorn-hub connect {port_ssh}{ssh_dest} --install-agent` \
         uploads the agent that comes with this hub to ~/{AGENT_HOME_PATH}; or by hand, copy \
         the portable agent (`bash scripts/build-agent.sh`: x86_64 Linux, glibc 2.17 or newer) \
         there: `ssh {port_ssh}{ssh_dest} mkdir -p .runicorn/bin && scp \
         {port_scp}target/portable/runicorn-agent {scp_dest}:.runicorn/bin/`; or put it on the \
         PATH of non-interactive shells on the server; or pass --agent PATH to name where it is."
    ))
}

/// The agent's state as the background task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitState {
    Running,
    /// Exited with a status, or `None` (killed by a signal, or the connection was lost).
    Ended(Option<u32>),
}

/// Watches a running agent: its stderr tail and exit status. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentMonitor {
    stderr: Arc<Mutex<VecDeque<u8>>>,
    exit: watch::Receiver<ExitState>,
}

impl AgentMonitor {
    /// The last ~8 KiB the agent wrote to stderr (lossy UTF-8).
    pub fn stderr_tail(&self) -> String {
        match self.stderr.lock() {
            Ok(tail) => {
                let (a, b) = tail.as_slices();
                let mut bytes = Vec::with_capacity(a.len() + b.len());
                bytes.extend_from_slice(a);
                bytes.extend_from_slice(b);
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Err(_) => String::new(),
        }
    }

    /// The exit status, waiting up to `wait` for the agent to end. `None` if it is still
    /// running, was killed by a signal, or the connection was lost.
    pub async fn exit_status(&self, wait: Duration) -> Option<u32> {
        let mut exit = self.exit.clone();
        let ended = tokio::time::timeout(wait, exit.wait_for(|s| *s != ExitState::Running)).await;
        match ended {
            Ok(Ok(state)) => match *state {
                ExitState::Ended(status) => status,
                ExitState::Running => None,
            },
            _ => match *self.exit.borrow() {
                ExitState::Ended(status) => status,
                ExitState::Running => None,
            },
        }
    }

    /// True once the agent's channel has ended.
    pub fn has_ended(&self) -> bool {
        *self.exit.borrow() != ExitState::Running
    }
}

/// The agent's stdout. Reads end with an error (not a clean end of file) when the connection
/// is lost before the agent closed its output. Dropping it closes the channel.
#[derive(Debug)]
pub struct AgentStdout {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl AsyncRead for AgentStdout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pos >= this.chunk.len() {
            match ready!(this.rx.poll_recv(cx)) {
                Some(Ok(chunk)) => {
                    this.chunk = chunk;
                    this.pos = 0;
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
        let available = &this.chunk[this.pos..];
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// The agent's stdin; shutting it down sends end-of-file.
pub struct AgentStdin {
    inner: Pin<Box<dyn AsyncWrite + Send + Sync>>,
}

impl std::fmt::Debug for AgentStdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentStdin")
    }
}

impl AsyncWrite for AgentStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}

/// A running `runicorn-agent`: read its stdout and write its stdin through this value (it is
/// `AsyncRead + AsyncWrite`), or take them apart with `into_parts`.
#[derive(Debug)]
pub struct AgentChannel {
    stdout: AgentStdout,
    stdin: AgentStdin,
    monitor: AgentMonitor,
}

impl AgentChannel {
    /// (stdout reader, stdin writer, monitor for stderr and the exit status).
    pub fn into_parts(self) -> (AgentStdout, AgentStdin, AgentMonitor) {
        (self.stdout, self.stdin, self.monitor)
    }

    /// A monitor that stays usable after `into_parts`.
    pub fn monitor(&self) -> AgentMonitor {
        self.monitor.clone()
    }

    /// The last ~8 KiB of the agent's stderr.
    pub fn stderr_tail(&self) -> String {
        self.monitor.stderr_tail()
    }

    /// The agent's exit status, waiting up to `wait` for it to end.
    pub async fn exit_status(&self, wait: Duration) -> Option<u32> {
        self.monitor.exit_status(wait).await
    }

    /// Starts the background task that owns the channel's read side.
    fn spawn(
        read: ChannelReadHalf,
        write: ChannelWriteHalf<Msg>,
        pending: Vec<ChannelMsg>,
        target: String,
        shared: Arc<Shared>,
    ) -> AgentChannel {
        let (stdout_tx, rx) = mpsc::channel(STDOUT_QUEUE);
        let (exit_tx, exit) = watch::channel(ExitState::Running);
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let stdin = AgentStdin {
            inner: Box::pin(write.make_writer()),
        };
        let pump = Pump {
            read,
            write,
            stdout: Some(stdout_tx),
            stderr: Arc::clone(&stderr),
            exit: exit_tx,
            target,
            shared,
        };
        tokio::spawn(pump.run(pending));
        AgentChannel {
            stdout: AgentStdout {
                rx,
                chunk: Vec::new(),
                pos: 0,
            },
            stdin,
            monitor: AgentMonitor { stderr, exit },
        }
    }
}

impl AsyncRead for AgentChannel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for AgentChannel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

/// The background task: routes channel messages to stdout, the stderr tail and the exit state.
struct Pump {
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    stdout: Option<mpsc::Sender<io::Result<Vec<u8>>>>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    exit: watch::Sender<ExitState>,
    target: String,
    shared: Arc<Shared>,
}

impl Pump {
    async fn run(mut self, pending: Vec<ChannelMsg>) {
        let mut finished = false;
        for msg in pending {
            if self.handle(msg).await {
                finished = true;
                break;
            }
        }
        while !finished {
            let msg = match &self.stdout {
                Some(tx) => {
                    let tx = tx.clone();
                    tokio::select! {
                        msg = self.read.wait() => msg,
                        () = tx.closed() => {
                            // The reader is gone: close the channel, keep draining.
                            self.stdout = None;
                            let _ = self.write.close().await;
                            continue;
                        }
                    }
                }
                None => self.read.wait().await,
            };
            match msg {
                Some(msg) => finished = self.handle(msg).await,
                None => break,
            }
        }
        if !finished {
            // The channel vanished without closing: the connection is gone.
            let reason = self
                .shared
                .reason()
                .unwrap_or_else(|| "the connection was closed".to_string());
            let message = format!("SSH connection to {} lost: {reason}", self.target);
            self.note_stderr(format!("\n[runicorn-hub] {message}\n").as_bytes());
            if let Some(tx) = self.stdout.take() {
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        message,
                    )))
                    .await;
            }
        }
        self.exit.send_if_modified(|state| {
            let running = *state == ExitState::Running;
            if running {
                *state = ExitState::Ended(None);
            }
            running
        });
    }

    /// Handles one message; true when the channel is closed.
    async fn handle(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::Data { data } => {
                if let Some(tx) = &self.stdout {
                    if tx.send(Ok(data.to_vec())).await.is_err() {
                        self.stdout = None;
                        let _ = self.write.close().await;
                    }
                }
            }
            ChannelMsg::ExtendedData { data, .. } => self.note_stderr(&data),
            ChannelMsg::ExitStatus { exit_status } => {
                self.exit.send_replace(ExitState::Ended(Some(exit_status)));
            }
            ChannelMsg::ExitSignal {
                signal_name,
                error_message,
                ..
            } => {
                let text = format!(
                    "\n[runicorn-hub] runicorn-agent on {} was killed by signal {} {}\n",
                    self.target,
                    signal_text(&signal_name),
                    error_message
                );
                self.note_stderr(text.as_bytes());
                self.exit.send_replace(ExitState::Ended(None));
            }
            ChannelMsg::Eof => self.stdout = None,
            ChannelMsg::Close => {
                self.stdout = None;
                return true;
            }
            _ => {}
        }
        false
    }

    fn note_stderr(&self, bytes: &[u8]) {
        if let Ok(text) = std::str::from_utf8(bytes) {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::debug!("agent on {}: {line}", self.target);
            }
        }
        if let Ok(mut tail) = self.stderr.lock() {
            let bytes = &bytes[bytes.len().saturating_sub(STDERR_TAIL)..];
            let overflow = (tail.len() + bytes.len()).saturating_sub(STDERR_TAIL);
            let drop_len = overflow.min(tail.len());
            tail.drain(..drop_len);
            tail.extend(bytes);
        }
    }
}

impl SshSession {
    /// Starts `runicorn-agent ARGS…` on the server in an exec channel (see `agent_command` for
    /// where it is looked for). A missing agent is not an error here: the channel ends with
    /// status 127 and `missing_agent_message` explains it.
    pub async fn start_agent(
        &self,
        agent_path: Option<&str>,
        args: &[String],
    ) -> Result<AgentChannel, SshError> {
        let command = agent_command(agent_path, args);
        let what = "starting runicorn-agent";
        let mut channel = self.open_session(what).await?;
        if let Err(e) = channel.exec(true, command.as_str()).await {
            return Err(self.channel_error(what, e.to_string()));
        }
        let pending = self
            .await_reply(&mut channel, what, "the server refused to run the command")
            .await?;
        let (read, write) = channel.split();
        Ok(AgentChannel::spawn(
            read,
            write,
            pending,
            self.target.to_string(),
            Arc::clone(&self.shared),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_sh() {
        assert_eq!(shell_quote("serve"), "serve");
        assert_eq!(shell_quote("--root=/a/b"), "--root=/a/b");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
    }

    fn sh(command: &str, home: &std::path::Path, path: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env_clear()
            .env("HOME", home)
            .env("PATH", path)
            .output()
            .unwrap()
    }

    #[test]
    fn the_command_finds_the_agent_or_exits_127() {
        let home = tempfile::tempdir().unwrap();
        let args = vec!["a b".to_string(), "it's".to_string(), "$HOME".to_string()];
        let out = sh(&agent_command(None, &args), home.path(), "/usr/bin:/bin");
        assert_eq!(out.status.code(), Some(127));
        assert!(String::from_utf8_lossy(&out.stderr).contains("runicorn-agent: not found"));

        // In ~/.runicorn/bin: found, arguments intact.
        let bin = home.path().join(".runicorn/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let agent = bin.join("runicorn-agent");
        std::fs::write(&agent, "#!/bin/sh\nprintf '[%s]' \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = sh(&agent_command(None, &args), home.path(), "/usr/bin:/bin");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "[a b][it's][$HOME]");

        // On the PATH: preferred.
        let other = home.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        let on_path = other.join("runicorn-agent");
        std::fs::write(&on_path, "#!/bin/sh\necho path \"$@\"\n").unwrap();
        std::fs::set_permissions(&on_path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:/usr/bin:/bin", other.display());
        let out = sh(&agent_command(None, &["x".into()]), home.path(), &path);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "path x\n");

        // An explicit path, with ~/ meaning the remote home.
        let out = sh(
            &agent_command(Some("~/other/runicorn-agent"), &["y".into()]),
            home.path(),
            "/usr/bin:/bin",
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "path y\n");
    }

    #[test]
    fn the_install_message_names_the_host_and_the_command() {
        let target = SshTarget {
            alias: "gpu".into(),
            host: "10.0.0.5".into(),
            port: 2222,
            user: "me".into(),
            identity_files: vec![],
            proxy_jump: vec![],
            host_key_alias: None,
            identities_only: false,
        };
        let msg = missing_agent_message(&target, Some(127), "runicorn-agent: not found\n").unwrap();
        assert!(
            msg.contains("scp target/portable/runicorn-agent gpu:.runicorn/bin/"),
            "{msg}"
        );
        assert!(msg.contains("--agent PATH"), "{msg}");
        assert!(
            msg.contains("runicorn-hub connect gpu --install-agent"),
            "{msg}"
        );
        let direct = SshTarget {
            alias: "10.0.0.5".into(),
            ..target.clone()
        };
        let msg = missing_agent_message(&direct, Some(127), "").unwrap();
        assert!(
            msg.contains("scp -P 2222 target/portable/runicorn-agent me@10.0.0.5:"),
            "{msg}"
        );
        assert!(
            msg.contains("runicorn-hub connect -p 2222 me@10.0.0.5 --install-agent"),
            "{msg}"
        );
        assert!(missing_agent_message(&target, Some(0), "").is_none());
        assert!(missing_agent_message(&target, Some(126), "")
            .unwrap()
            .contains("cannot be executed"));
    }
}
