//! Opening and reading the files of a run so that no file can block a reader or make it read
//! without bound. Every reader of a run file goes through here.
//!
//! The rules:
//! - only regular files are read. A FIFO, socket, device or directory is refused with a reason
//!   naming the file and what it is. The type is checked before opening (so a FIFO or device is
//!   never opened) and again on the open descriptor (`fstat`), which is what is read;
//! - files are opened with `O_NONBLOCK` and `O_CLOEXEC`, and without following a link at the
//!   last step (`O_NOFOLLOW`), so a file swapped for a FIFO between the check and the open
//!   cannot block;
//! - a symbolic link is followed only when it resolves inside the storage root; a link that
//!   leads out of it (to `/dev/zero`, `/etc/...`) is refused with a reason;
//! - sizes are enforced while reading (at most `max + 1` bytes are read), never taken from
//!   metadata: a link to `/dev/zero` or a file that grows reports a size that means nothing.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a run file could not be read. Each message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("{path} is {kind}, not a regular file; remove or replace it")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{path} is a symbolic link to {target}, outside the storage root {root}; remove or replace it"
    )]
    LinkOutsideRoot {
        path: PathBuf,
        target: PathBuf,
        root: PathBuf,
    },
    #[error("{path}: larger than {max} bytes; refusing to read it whole")]
    TooLarge { path: PathBuf, max: u64 },
}

impl ReadError {
    /// The file does not exist (a dangling link counts as absent).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { cause, .. } if cause.kind() == io::ErrorKind::NotFound)
    }

    /// The file is something a run file must never be: not a regular file, or a link out of
    /// the root. Such a file makes its run `unreadable`.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            ReadError::NotRegular { .. } | ReadError::LinkOutsideRoot { .. }
        )
    }

    fn io(path: &Path, cause: io::Error) -> ReadError {
        ReadError::Io {
            path: path.to_owned(),
            cause,
        }
    }
}

/// What a file system object is, for messages ("a FIFO", "a character device", ...).
pub fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Opens a run file for reading: a regular file, or a link that resolves to one inside
/// `root` (the storage root). Never blocks, never opens anything but a regular file.
pub fn open_regular(path: &Path, root: &Path) -> Result<File, ReadError> {
    let lmeta = fs::symlink_metadata(path).map_err(|e| ReadError::io(path, e))?;
    let target = if lmeta.file_type().is_symlink() {
        let resolved = fs::canonicalize(path).map_err(|e| ReadError::io(path, e))?;
        let root_resolved = fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        if !resolved.starts_with(&root_resolved) {
            return Err(ReadError::LinkOutsideRoot {
                path: path.to_owned(),
                target: resolved,
                root: root.to_owned(),
            });
        }
        let meta = fs::symlink_metadata(&resolved).map_err(|e| ReadError::io(path, e))?;
        check_regular(path, &meta)?;
        resolved
    } else {
        check_regular(path, &lmeta)?;
        path.to_owned()
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&target)
        .map_err(|e| match e.raw_os_error() {
            // Replaced by a link since it was checked.
            Some(libc::ELOOP) => ReadError::NotRegular {
                path: path.to_owned(),
                kind: "a symbolic link (replaced while being opened)",
            },
            _ => ReadError::io(path, e),
        })?;
    let meta = file.metadata().map_err(|e| ReadError::io(path, e))?;
    check_regular(path, &meta)?;
    Ok(file)
}

fn check_regular(path: &Path, meta: &Metadata) -> Result<(), ReadError> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(ReadError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(meta),
        })
    }
}

/// Reads an open file to its end, failing once more than `max` bytes came (at most `max + 1`
/// bytes are ever read, whatever the metadata says).
pub fn read_to_end_bounded(file: File, path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    // The size is only a hint for the first allocation, never a bound.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0).min(max);
    let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    let mut limited = file.take(max.saturating_add(1));
    loop {
        match limited.read_to_end(&mut buf) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::io(path, e)),
        }
    }
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    Ok(buf)
}

/// Reads a whole run file of at most `max` bytes (see [`open_regular`]).
pub fn read_bounded(path: &Path, root: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path, root)?;
    read_to_end_bounded(file, path, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn a_fifo_is_refused_at_once_with_its_kind_named() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("meta.json");
        mkfifo(&p);
        let started = Instant::now();
        let err = read_bounded(&p, t.path(), 1024).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(err.is_refused());
        let msg = err.to_string();
        assert!(
            msg.contains("meta.json is a FIFO, not a regular file"),
            "{msg}"
        );
    }

    #[test]
    fn devices_directories_and_links_out_of_the_root_are_refused() {
        let t = tempfile::tempdir().unwrap();
        for dev in ["/dev/zero", "/dev/null", "/dev/urandom"] {
            let link = t.path().join("meta.json");
            let _ = fs::remove_file(&link);
            symlink(dev, &link).unwrap();
            let err = read_bounded(&link, t.path(), 1024).unwrap_err();
            assert!(
                matches!(err, ReadError::LinkOutsideRoot { .. }),
                "{dev}: {err}"
            );
            assert!(err.to_string().contains("outside the storage root"));
            // Even with "/" as the root, a device is not a regular file.
            let err = read_bounded(&link, Path::new("/"), 1024).unwrap_err();
            assert!(
                err.to_string().contains("a character device"),
                "{dev}: {err}"
            );
        }
        let d = t.path().join("status.json");
        fs::create_dir(&d).unwrap();
        assert!(read_bounded(&d, t.path(), 10)
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
    }

    #[test]
    fn links_inside_the_root_are_followed_and_dangling_ones_are_absent() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("other")).unwrap();
        fs::write(t.path().join("other/real.json"), "{}").unwrap();
        symlink("other/real.json", t.path().join("meta.json")).unwrap();
        assert_eq!(
            read_bounded(&t.path().join("meta.json"), t.path(), 10).unwrap(),
            b"{}"
        );
        symlink("nowhere.json", t.path().join("gone.json")).unwrap();
        assert!(read_bounded(&t.path().join("gone.json"), t.path(), 10)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn sizes_are_enforced_while_reading() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("summary.json");
        fs::write(&p, vec![b'x'; 100]).unwrap();
        assert_eq!(read_bounded(&p, t.path(), 100).unwrap().len(), 100);
        assert!(matches!(
            read_bounded(&p, t.path(), 99),
            Err(ReadError::TooLarge { max: 99, .. })
        ));
        // A device that reports size 0 and never ends is cut at max + 1 bytes.
        let zero = File::open("/dev/zero").unwrap();
        assert!(matches!(
            read_to_end_bounded(zero, Path::new("/dev/zero"), 1 << 20),
            Err(ReadError::TooLarge { .. })
        ));
    }
}
