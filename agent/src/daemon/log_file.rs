//! `daemon --log FILE`: the daemon's stderr appended to a file (mode 0600) that stays bounded:
//! past `MAX_LOG_BYTES` it is renamed to `FILE.1` (replacing the older copy) and a new one is
//! started, so at most about twice that is kept.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

/// Size at which the log is rotated.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// The daemon's log file.
pub struct BoundedLog {
    path: PathBuf,
    max_bytes: u64,
    /// The descriptor pointed at the file (stderr; another one in tests).
    target_fd: RawFd,
}

impl BoundedLog {
    /// Sends stderr to `path` from now on.
    pub fn redirect_stderr(path: &Path) -> io::Result<BoundedLog> {
        BoundedLog::redirect(path, libc::STDERR_FILENO, MAX_LOG_BYTES)
    }

    fn redirect(path: &Path, target_fd: RawFd, max_bytes: u64) -> io::Result<BoundedLog> {
        let log = BoundedLog {
            path: path.to_owned(),
            max_bytes,
            target_fd,
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
        // SAFETY: dup2 of a descriptor we own onto the target (stderr); `file` is closed after,
        // the target kept.
        if unsafe { libc::dup2(file.as_raw_fd(), self.target_fd) } < 0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::io::FromRawFd;

    #[test]
    fn the_log_is_rotated_past_its_bound_and_stays_owner_only() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("daemon.log");
        // A descriptor of the test's own standing in for stderr.
        let scratch = std::fs::File::create(t.path().join("scratch")).unwrap();
        let fd = scratch.as_raw_fd();
        let log = BoundedLog::redirect(&path, fd, 100).unwrap();
        // SAFETY: `fd` stays open (owned by `scratch`); ManuallyDrop keeps it from closing twice.
        let mut target = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        target.write_all(&[b'x'; 150]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 150);
        log.rotate_if_large().unwrap();
        assert_eq!(
            std::fs::metadata(t.path().join("daemon.log.1"))
                .unwrap()
                .len(),
            150
        );
        target.write_all(b"after").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"after");
        log.rotate_if_large().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"after",
            "under the bound: kept"
        );
    }
}
