//! Where `runicorn-agent export` writes: standard output, or `FILE.partial` renamed to `FILE`
//! once the bundle is whole (a failed export leaves no file), counting the bytes written.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The open destination of a bundle.
pub enum Output {
    Stdout(BufWriter<io::Stdout>),
    File {
        file: BufWriter<File>,
        partial: PathBuf,
        target: PathBuf,
    },
}

impl Output {
    /// Opens `-` (standard output) or `FILE.partial` beside `FILE`.
    pub fn open(target: &Path) -> anyhow::Result<Output> {
        if target == Path::new("-") {
            if io::stdout().is_terminal() {
                anyhow::bail!(
                    "refusing to write a binary bundle to the terminal; redirect standard output \
                     (`-o - > runs.rbundle`, `| ssh laptop runicorn-hub import -`) or give -o FILE"
                );
            }
            return Ok(Output::Stdout(BufWriter::new(io::stdout())));
        }
        let mut name = target.as_os_str().to_owned();
        name.push(".partial");
        let partial = PathBuf::from(name);
        let file = File::create(&partial).with_context(|| {
            format!(
                "creating {} (the bundle is written there, then renamed); check the directory exists and is writable",
                partial.display()
            )
        })?;
        Ok(Output::File {
            file: BufWriter::new(file),
            partial,
            target: target.to_owned(),
        })
    }

    /// Makes the bundle final: flushes it, and for a file syncs it and renames it in place.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout(mut out) => out.flush().context("writing the bundle to standard output"),
            Output::File {
                file,
                partial,
                target,
            } => {
                let done = (|| -> anyhow::Result<()> {
                    let file = file
                        .into_inner()
                        .map_err(|e| e.into_error())
                        .with_context(|| format!("writing {}", partial.display()))?;
                    file.sync_all()
                        .with_context(|| format!("writing {}", partial.display()))?;
                    fs::rename(&partial, &target).with_context(|| {
                        format!("renaming {} to {}", partial.display(), target.display())
                    })
                })();
                if done.is_err() {
                    let _ = fs::remove_file(&partial);
                }
                done
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(out) => out.write(buf),
            Output::File { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("runs.rbundle");
        let mut out = Output::open(&target).unwrap();
        out.write_all(b"bytes").unwrap();
        assert!(!target.exists());
        assert!(dir.path().join("runs.rbundle.partial").exists());
        out.finish().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"bytes");
        assert!(!dir.path().join("runs.rbundle.partial").exists());
    }
}
