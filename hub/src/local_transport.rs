//! The local transport: the agent protocol over a child process's pipes
//! (`runicorn-hub connect local:DIR`), for this machine's own runs and for the demo.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::link::{AgentLink, LinkDiagnostics};

/// Why a local agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalTransportError {
    #[error("cannot start the local agent {program}: {cause}; build it (`cargo build --release -p runicorn-agent`) or pass --agent PATH")]
    Spawn {
        program: PathBuf,
        cause: std::io::Error,
    },
}

/// Finds `runicorn-agent`: the given path, else the one beside this executable (`agent_beside`),
/// else `PATH`.
pub fn local_agent_program(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(agent_beside))
        .unwrap_or_else(|| PathBuf::from("runicorn-agent"))
}

/// The agent in `dir` (the hub executable's folder): `runicorn-agent`, else, on Linux, the
/// portable agent for this machine's architecture (`runicorn-agent-x86_64-linux`, which the
/// hub's wheel installs beside `runicorn-hub` for `connect --install-agent`).
fn agent_beside(dir: &Path) -> Option<PathBuf> {
    let mut candidates = vec![dir.join("runicorn-agent")];
    if cfg!(target_os = "linux") {
        let arch = std::env::consts::ARCH;
        candidates.push(dir.join(format!("runicorn-agent-{arch}-linux")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Starts `runicorn-agent serve --stdio --root ROOT` as a child process.
pub fn spawn_local_agent(
    program: &Path,
    root: &Path,
    extra_args: &[String],
) -> Result<AgentLink, LocalTransportError> {
    let mut child = Command::new(program)
        .arg("serve")
        .arg("--stdio")
        .arg("--root")
        .arg(root)
        .args(extra_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|cause| LocalTransportError::Spawn {
            program: program.to_owned(),
            cause,
        })?;
    let stderr_tail = Arc::new(Mutex::new(String::new()));
    if let Some(mut stderr) = child.stderr.take() {
        let tail = Arc::clone(&stderr_tail);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                append_tail(&tail, &buf[..n]);
            }
        });
    }
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        // Both were requested as pipes above, so tokio always provides them.
        return Err(LocalTransportError::Spawn {
            program: program.to_owned(),
            cause: std::io::Error::other("the child's pipes were not created"),
        });
    };
    Ok(AgentLink {
        reader: Box::new(stdout),
        writer: Box::new(stdin),
        diagnostics: Box::new(ChildDiagnostics {
            child: tokio::sync::Mutex::new(child),
            stderr_tail,
        }),
        describe: format!("local:{}", root.display()),
    })
}

/// Keeps the last 8 KiB of a stream.
pub fn append_tail(tail: &Mutex<String>, bytes: &[u8]) {
    const KEEP: usize = 8 * 1024;
    let Ok(mut t) = tail.lock() else { return };
    t.push_str(&String::from_utf8_lossy(bytes));
    if t.len() > KEEP {
        let mut cut = t.len() - KEEP;
        while !t.is_char_boundary(cut) {
            cut += 1;
        }
        t.drain(..cut);
    }
}

struct ChildDiagnostics {
    child: tokio::sync::Mutex<Child>,
    stderr_tail: Arc<Mutex<String>>,
}

impl LinkDiagnostics for ChildDiagnostics {
    fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    fn exit_status(
        &self,
        wait: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<u32>> + Send + '_>> {
        Box::pin(async move {
            let mut child = self.child.lock().await;
            let status = tokio::time::timeout(wait, child.wait()).await.ok()?.ok()?;
            status.code().map(|c| c as u32).or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                status.signal().map(|s| 128 + s as u32)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_beside_the_hub_is_runicorn_agent_else_the_portable_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(agent_beside(dir.path()), None);

        let portable = dir
            .path()
            .join(format!("runicorn-agent-{}-linux", std::env::consts::ARCH));
        std::fs::write(&portable, b"").unwrap();
        // A folder of that name is not an agent.
        let plain = dir.path().join("runicorn-agent");
        std::fs::create_dir(&plain).unwrap();
        let expected = cfg!(target_os = "linux").then(|| portable.clone());
        assert_eq!(agent_beside(dir.path()), expected);

        std::fs::remove_dir(&plain).unwrap();
        std::fs::write(&plain, b"").unwrap();
        assert_eq!(agent_beside(dir.path()), Some(plain));
    }
}
