//! One resident agent per storage root: an exclusive `flock` on `<root>/.runicorn-agent/daemon.lock`
//! held for the daemon's life (the kernel drops it when the process ends, however it ends). The
//! file says who holds it (pid, start time, socket), so a second daemon refuses by naming the
//! first.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the lock file says of its holder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// When the daemon started (RFC 3339, UTC).
    pub started_at: String,
    pub socket: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the daemon lock {path}: {cause}")]
    Open { path: PathBuf, cause: io::Error },
    #[error(
        "another runicorn-agent daemon already serves this root: pid {}, running since {}, socket {}; `serve --stdio` attaches to it, or stop it with `kill {}`",
        .0.pid, .0.started_at, .0.socket.display(), .0.pid
    )]
    Held(Holder),
    #[error(
        "another process holds the daemon lock {path} (it does not say which: {detail}); stop that daemon first"
    )]
    HeldByUnknown { path: PathBuf, detail: String },
    #[error("cannot write the daemon lock {path}: {cause}")]
    Write { path: PathBuf, cause: io::Error },
}

/// The held lock; released when dropped (or when the process ends).
pub struct DaemonLock {
    file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock without waiting, or says who holds it.
    pub fn acquire(path: &Path) -> Result<DaemonLock, LockError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|cause| LockError::Open {
                path: path.to_owned(),
                cause,
            })?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !taken {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LockError::Open {
                    path: path.to_owned(),
                    cause: err,
                });
            }
            let mut text = String::new();
            let _ = Read::by_ref(&mut file).take(4096).read_to_string(&mut text);
            return Err(match serde_json::from_str::<Holder>(&text) {
                Ok(holder) => LockError::Held(holder),
                Err(e) => LockError::HeldByUnknown {
                    path: path.to_owned(),
                    detail: if text.trim().is_empty() {
                        "the file is empty: it is starting".to_owned()
                    } else {
                        e.to_string()
                    },
                },
            });
        }
        Ok(DaemonLock {
            file,
            path: path.to_owned(),
        })
    }

    /// Writes who holds the lock (replacing what an earlier daemon wrote).
    pub fn record(&mut self, holder: &Holder) -> Result<(), LockError> {
        let text = serde_json::to_string(holder).map_err(|e| LockError::Write {
            path: self.path.clone(),
            cause: io::Error::other(e),
        })?;
        let write = |f: &mut File| -> io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.flush()
        };
        write(&mut self.file).map_err(|cause| LockError::Write {
            path: self.path.clone(),
            cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("daemon.lock");
        let mut first = DaemonLock::acquire(&path).unwrap();
        match DaemonLock::acquire(&path) {
            Err(LockError::HeldByUnknown { .. }) => {}
            other => panic!("{:?}", other.err()),
        }
        let holder = Holder {
            pid: 4242,
            started_at: "2026-01-01T00:00:00Z".into(),
            socket: t.path().join("daemon.sock"),
        };
        first.record(&holder).unwrap();
        let err = DaemonLock::acquire(&path).err().unwrap();
        assert!(matches!(&err, LockError::Held(h) if *h == holder));
        let text = err.to_string();
        assert!(
            text.contains("pid 4242") && text.contains("daemon.sock"),
            "{text}"
        );
        drop(first);
        let mut again = DaemonLock::acquire(&path).unwrap();
        again.record(&holder).unwrap();
    }
}
