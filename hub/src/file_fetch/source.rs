//! Where a file's bytes come from: an SFTP file on the remote's file connection, or a local
//! file under a `local:DIR` root. Either is opened only after its real path (links resolved) was
//! found under the real path of the storage root and it was seen to be a regular file, and is
//! read from an offset (a resumed transfer) up to the manifest's size.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use russh_sftp::client::fs::File as SftpFile;
use russh_sftp::client::SftpSession;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::manifest_path::is_under;

/// An open source file, positioned at the offset it was opened at.
pub enum SourceFile {
    Sftp(Box<SftpFile>),
    Local(tokio::fs::File),
}

/// Size and modification time (whole seconds) of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime: Option<i64>,
}

/// Why a source could not be opened, before the caller names the remote.
#[derive(Debug)]
pub enum OpenError {
    /// The real path leaves the root (a link out of it).
    Outside(String),
    NotRegular,
    /// The root itself cannot be reached (a local root on an unmounted or removed disk): the
    /// remote is offline.
    RootGone(String),
    /// Any other failure, as text.
    Failed(String),
}

impl SourceFile {
    /// Reads the next bytes into `buf` (0 at the end of the file).
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            SourceFile::Sftp(f) => f.read(buf).await,
            SourceFile::Local(f) => f.read(buf).await,
        }
    }

    /// The file's size and mtime now.
    pub async fn stat(&self) -> Result<Stat, String> {
        match self {
            SourceFile::Sftp(f) => {
                let m = f.metadata().await.map_err(|e| e.to_string())?;
                Ok(Stat {
                    size: m.size.unwrap_or(0),
                    mtime: m.mtime.map(i64::from),
                })
            }
            SourceFile::Local(f) => {
                let m = f.metadata().await.map_err(|e| e.to_string())?;
                Ok(Stat {
                    size: m.len(),
                    mtime: Some(m.mtime()),
                })
            }
        }
    }
}

/// Opens `relative` (already checked) under the root whose real path is `root_real`, over
/// SFTP, at `offset`; returns the file and its stat.
pub async fn open_sftp(
    sftp: &SftpSession,
    root_real: &str,
    relative: &str,
    offset: u64,
) -> Result<(SourceFile, Stat), OpenError> {
    let full = format!("{}/{relative}", root_real.trim_end_matches('/'));
    // One round trip for both: the server resolves every link (OpenSSH's realpath(3)), and
    // stat follows them too, so the stat is the resolved file's. Nothing is opened before
    // both are known (opening a FIFO would block the server's SFTP process).
    let (real, meta) = tokio::join!(
        sftp.canonicalize(full.as_str()),
        sftp.metadata(full.as_str())
    );
    let real = real.map_err(|e| OpenError::Failed(e.to_string()))?;
    if !is_under(&real, root_real) {
        return Err(OpenError::Outside(real));
    }
    let meta = meta.map_err(|e| OpenError::Failed(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotRegular);
    }
    let mut file = sftp
        .open(real.as_str())
        .await
        .map_err(|e| OpenError::Failed(e.to_string()))?;
    if offset > 0 {
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| OpenError::Failed(e.to_string()))?;
    }
    let stat = Stat {
        size: meta.size.unwrap_or(0),
        mtime: meta.mtime.map(i64::from),
    };
    Ok((SourceFile::Sftp(Box::new(file)), stat))
}

/// Opens `relative` under the local root `root`, at `offset`, by the same rules (the open does
/// not block on a FIFO: it is non-blocking and refused when not a regular file).
pub async fn open_local(
    root: &Path,
    relative: &str,
    offset: u64,
) -> Result<(SourceFile, Stat), OpenError> {
    let root = root.to_owned();
    let full = root.join(relative);
    let (file, stat) = tokio::task::spawn_blocking(move || open_local_blocking(&root, &full))
        .await
        .map_err(|e| OpenError::Failed(format!("the local read stopped: {e}")))??;
    let mut file = tokio::fs::File::from_std(file);
    if offset > 0 {
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| OpenError::Failed(e.to_string()))?;
    }
    Ok((SourceFile::Local(file), stat))
}

fn open_local_blocking(root: &Path, full: &PathBuf) -> Result<(std::fs::File, Stat), OpenError> {
    let failed = |e: std::io::Error| OpenError::Failed(e.to_string());
    let root_real = std::fs::canonicalize(root)
        .map_err(|e| OpenError::RootGone(format!("its root {}: {e}", root.display())))?;
    let real = std::fs::canonicalize(full).map_err(failed)?;
    if !real.starts_with(&root_real) {
        return Err(OpenError::Outside(real.display().to_string()));
    }
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&real)
        .map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok((
        file,
        Stat {
            size: meta.len(),
            mtime: Some(meta.mtime()),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_files_are_read_from_an_offset_and_escapes_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("run/media")).unwrap();
        std::fs::write(root.path().join("run/media/a.png"), b"png bytes").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("run/link"))
            .unwrap();
        let (mut f, stat) = open_local(root.path(), "run/media/a.png", 4).await.unwrap();
        assert_eq!(stat.size, 9);
        let mut buf = [0u8; 16];
        let n = f.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"bytes");
        assert!(matches!(
            open_local(root.path(), "run/link", 0).await,
            Err(OpenError::Outside(_))
        ));
    }

    #[tokio::test]
    async fn a_fifo_is_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("run")).unwrap();
        let fifo = std::ffi::CString::new(
            root.path()
                .join("run/pipe.png")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let opened = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            open_local(root.path(), "run/pipe.png", 0),
        )
        .await
        .expect("a FIFO must not block the open");
        assert!(matches!(opened, Err(OpenError::NotRegular)));
    }
}
