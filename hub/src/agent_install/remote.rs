//! The server's side of an install, over the hub's SSH connection: a probe (`uname -sm`, `$HOME`,
//! the agent the PATH finds), then the upload over SFTP to a temporary name in
//! `~/.runicorn/bin/`, a SHA-256 check on the server (`sha256sum`, else the file read back),
//! `chmod 755`, and a rename over `runicorn-agent` (atomic: a running agent keeps its file, the
//! next start gets the new one). A failed install removes its temporary file and replaces
//! nothing.

use std::path::Path;

use russh_sftp::protocol::FileAttributes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::binary::Platform;
use super::error::InstallError;
use super::local_hash::hex;
use crate::ssh::{shell_quote, SftpSession, SshSession, AGENT_HOME_PATH};

/// Bytes read from the local file per SFTP write call (the SFTP client splits and pipelines).
const UPLOAD_CHUNK: usize = 256 * 1024;

/// What the probe found on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFacts {
    pub platform: Platform,
    /// `$HOME` as a non-interactive shell sees it (the agent command looks there too).
    pub home: String,
    /// The absolute path `command -v runicorn-agent` gives, if the PATH has one.
    pub on_path: Option<String>,
}

impl RemoteFacts {
    /// `$HOME/.runicorn/bin`.
    pub fn install_dir(&self) -> String {
        let parent = Path::new(AGENT_HOME_PATH)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!("{}/{parent}", self.home.trim_end_matches('/'))
    }

    /// `$HOME/.runicorn/bin/runicorn-agent`.
    pub fn install_path(&self) -> String {
        format!("{}/{AGENT_HOME_PATH}", self.home.trim_end_matches('/'))
    }

    /// An agent on the PATH other than the installed one: it runs first.
    pub fn shadowing_agent(&self) -> Option<&str> {
        self.on_path
            .as_deref()
            .filter(|p| *p != self.install_path())
    }
}

/// `sh -c SCRIPT sh ARGS…`, quoted for any login shell (the script has no `!` or single quote).
fn sh_command(script: &str, args: &[&str]) -> String {
    let mut command = format!("sh -c {} sh", shell_quote(script));
    for arg in args {
        command.push(' ');
        command.push_str(&shell_quote(arg));
    }
    command
}

/// Runs `script` with `args` on the server; its stdout, or a `Remote` error naming `step`.
async fn run(
    session: &SshSession,
    remote: &str,
    step: &'static str,
    script: &str,
    args: &[&str],
) -> Result<String, InstallError> {
    let out = session
        .exec(&sh_command(script, args))
        .await
        .map_err(|e| InstallError::Remote {
            remote: remote.to_owned(),
            step,
            detail: e.to_string(),
        })?;
    if out.status != Some(0) {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(InstallError::Remote {
            remote: remote.to_owned(),
            step,
            detail: format!(
                "exit status {}{}",
                out.status
                    .map_or_else(|| "unknown (killed)".to_owned(), |s| s.to_string()),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Asks the server for its system, `$HOME` and the agent its PATH finds.
pub async fn probe(session: &SshSession, remote: &str) -> Result<RemoteFacts, InstallError> {
    let text = run(
        session,
        remote,
        "asking the server for its system (uname -sm)",
        "printf '%s\\n' \"$(uname -s)\" \"$(uname -m)\" \"$HOME\"; command -v runicorn-agent 2>/dev/null; exit 0",
        &[],
    )
    .await?;
    parse_probe(&text).ok_or_else(|| InstallError::Remote {
        remote: remote.to_owned(),
        step: "asking the server for its system (uname -sm)",
        detail: format!("unexpected answer {:?}", text.trim()),
    })
}

/// Reads the probe's lines: OS, architecture, home, then the agent on the PATH if any.
fn parse_probe(text: &str) -> Option<RemoteFacts> {
    let mut lines = text.lines();
    let os = lines.next()?.trim().to_owned();
    let arch = lines.next()?.trim().to_owned();
    let home = lines.next()?.to_owned();
    if os.is_empty() || arch.is_empty() || !home.starts_with('/') {
        return None;
    }
    let on_path = lines
        .next()
        .map(str::trim)
        .filter(|p| p.starts_with('/'))
        .map(str::to_owned);
    Some(RemoteFacts {
        platform: Platform { os, arch },
        home,
        on_path,
    })
}

/// Uploads `local` (whose SHA-256 is `sha256`) as the server's `~/.runicorn/bin/runicorn-agent`.
pub async fn install(
    session: &SshSession,
    remote: &str,
    facts: &RemoteFacts,
    local: &Path,
    sha256: &str,
) -> Result<(), InstallError> {
    let dir = facts.install_dir();
    run(
        session,
        remote,
        "creating ~/.runicorn/bin",
        "mkdir -p -- \"$1\"",
        &[&dir],
    )
    .await?;
    let temp = format!(
        "{dir}/.runicorn-agent.upload-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    );
    let sftp = session.sftp().await.map_err(|e| InstallError::Remote {
        remote: remote.to_owned(),
        step: "starting SFTP",
        detail: e.to_string(),
    })?;
    let result = upload_verify_rename(session, &sftp, remote, facts, local, sha256, &temp).await;
    if result.is_err() {
        // Best effort: the temporary file may not exist, or the link may be gone.
        let _ = sftp.remove_file(temp.as_str()).await;
    }
    let _ = sftp.close().await;
    result
}

async fn upload_verify_rename(
    session: &SshSession,
    sftp: &SftpSession,
    remote: &str,
    facts: &RemoteFacts,
    local: &Path,
    sha256: &str,
    temp: &str,
) -> Result<(), InstallError> {
    let sftp_err = |step: &'static str| {
        move |e: russh_sftp::client::error::Error| InstallError::Remote {
            remote: remote.to_owned(),
            step,
            detail: e.to_string(),
        }
    };
    let upload = "uploading the agent over SFTP";
    let mut source =
        tokio::fs::File::open(local)
            .await
            .map_err(|source| InstallError::LocalRead {
                path: local.to_owned(),
                source,
            })?;
    let mut target = sftp.create(temp).await.map_err(sftp_err(upload))?;
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        let n = source
            .read(&mut buf)
            .await
            .map_err(|source| InstallError::LocalRead {
                path: local.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        target
            .write_all(&buf[..n])
            .await
            .map_err(|e| InstallError::Remote {
                remote: remote.to_owned(),
                step: upload,
                detail: e.to_string(),
            })?;
    }
    target.shutdown().await.map_err(|e| InstallError::Remote {
        remote: remote.to_owned(),
        step: upload,
        detail: e.to_string(),
    })?;

    let found = remote_sha256(session, sftp, remote, temp).await?;
    if found != sha256 {
        return Err(InstallError::HashMismatch {
            remote: remote.to_owned(),
            path: temp.to_owned(),
            local: local.to_owned(),
            expected: sha256.to_owned(),
            found,
        });
    }
    let mode = FileAttributes {
        permissions: Some(0o755),
        ..FileAttributes::empty()
    };
    sftp.set_metadata(temp, mode)
        .await
        .map_err(sftp_err("making the agent executable (chmod 755)"))?;
    run(
        session,
        remote,
        "moving the agent into place",
        "mv -f -- \"$1\" \"$2\"",
        &[temp, &facts.install_path()],
    )
    .await?;
    Ok(())
}

/// The SHA-256 of `path` on the server: `sha256sum` there, else the bytes read back over SFTP.
async fn remote_sha256(
    session: &SshSession,
    sftp: &SftpSession,
    remote: &str,
    path: &str,
) -> Result<String, InstallError> {
    let step = "checking the upload's SHA-256 on the server";
    let summed = run(
        session,
        remote,
        step,
        "if command -v sha256sum >/dev/null 2>&1; then sha256sum -- \"$1\"; fi",
        &[path],
    )
    .await?;
    if let Some(hash) = summed.split_whitespace().next() {
        return Ok(hash.to_ascii_lowercase());
    }
    // No sha256sum on the server: read the file back and hash it here.
    let file = sftp.open(path).await.map_err(|e| InstallError::Remote {
        remote: remote.to_owned(),
        step,
        detail: e.to_string(),
    })?;
    sha256_of_reader(file)
        .await
        .map(|d| hex(&d))
        .map_err(|e| InstallError::Remote {
            remote: remote.to_owned(),
            step,
            detail: e.to_string(),
        })
}

async fn sha256_of_reader(
    mut reader: impl tokio::io::AsyncRead + Unpin,
) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_answer_is_read_line_by_line() {
        let facts =
            parse_probe("Linux\nx86_64\n/home/me\n/home/me/.local/bin/runicorn-agent\n").unwrap();
        assert_eq!(facts.platform.os, "Linux");
        assert_eq!(facts.platform.arch, "x86_64");
        assert_eq!(facts.install_dir(), "/home/me/.runicorn/bin");
        assert_eq!(
            facts.install_path(),
            "/home/me/.runicorn/bin/runicorn-agent"
        );
        assert_eq!(
            facts.shadowing_agent(),
            Some("/home/me/.local/bin/runicorn-agent")
        );
        let bare = parse_probe("Linux\naarch64\n/home/me/\n").unwrap();
        assert_eq!(bare.on_path, None);
        assert_eq!(bare.install_path(), "/home/me/.runicorn/bin/runicorn-agent");
        let installed =
            parse_probe("Linux\nx86_64\n/h\n/h/.runicorn/bin/runicorn-agent\n").unwrap();
        assert_eq!(installed.shadowing_agent(), None);
        assert!(parse_probe("Linux\n").is_none());
        assert!(parse_probe("Linux\nx86_64\nrelative\n").is_none());
    }

    #[test]
    fn scripts_are_quoted_for_sh() {
        assert_eq!(
            sh_command("mv -f -- \"$1\" \"$2\"", &["/a b", "/c"]),
            "sh -c 'mv -f -- \"$1\" \"$2\"' sh '/a b' /c"
        );
    }
}
