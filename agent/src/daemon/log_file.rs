//! `daemon --log FILE`: the daemon's stderr appended to a file (mode 0600) that stays bounded:
//! past `MAX_LOG_BYTES` it is renamed to `FILE.1` (replacing the older copy) and a new one is
//! started, so at most about twice that is kept.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Size at which the log is rotated.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// The daemon's log file.
pub struct BoundedLog {
    path: PathBuf,
    max_bytes: u64,
}

impl BoundedLog {
    /// Sends stderr to `path` from now on.
    pub fn redirect_stderr(path: &Path) -> io::Result<BoundedLog> {
        let log = BoundedLog {
            path: path.to_owned(),
            max_bytes: MAX_LOG_BYTES,
        };
        log.rotate_if_large()?;
        log.reopen()?;
        Ok(log)
    }

    fn reopen(&self) -> io::Result<()> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)?;
        // SAFETY: dup2 of a descriptor we own onto stderr; `file` is closed after, stderr kept.
        if unsafe { libc::dup2(file.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Rotates the log when it grew past its bound (called now and then by the daemon).
    pub fn rotate_if_large(&self) -> io::Result<()> {
        let len = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if len <= self.max_bytes {
            return Ok(());
        }
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, PathBuf::from(old))?;
        self.reopen()
    }
}
