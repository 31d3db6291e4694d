//! One copy from a source file into a [`Partial`]: the network side reads (SFTP keeps many reads
//! in flight) while a blocking thread appends and hashes what arrived, so neither waits on the
//! other and at most a few chunks are held in memory. Progress is reported after the bytes are
//! written, so a reader of the partial file may read up to the reported length.

use runicorn_store::Partial;
use tokio::sync::mpsc;

use super::source::SourceFile;
use super::TransferProgress;

/// Bytes read from the source at once.
const CHUNK: usize = 256 * 1024;
/// Chunks between the reader and the writer thread (bounds memory to about 4 MiB).
const QUEUE: usize = 16;

/// How a copy ended when it did not complete.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the source failed (the link broke): what was written is kept.
    Source(String),
    /// The source ended before `size` bytes.
    Short { got: u64 },
    /// Writing the partial failed (the hub's disk).
    Write(runicorn_store::StoreError),
}

/// Copies the source from the partial's length up to `size` bytes in all. Returns the partial
/// (with what it holds) and the error, if any.
pub async fn copy_into(
    source: &mut SourceFile,
    partial: Partial,
    size: u64,
    progress: Option<TransferProgress>,
) -> (Partial, Option<CopyError>) {
    let start = partial.len();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let writer = tokio::task::spawn_blocking(move || {
        let mut partial = partial;
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = partial.append(&chunk) {
                return (partial, Some(e));
            }
            if let Some(p) = &progress {
                p(partial.len());
            }
        }
        (partial, None)
    });
    let mut error = None;
    let mut done = start;
    while done < size {
        let want = usize::try_from(size - done).map_or(CHUNK, |left| left.min(CHUNK));
        let mut buf = vec![0u8; want];
        match source.read(&mut buf).await {
            Ok(0) => {
                error = Some(CopyError::Short { got: done });
                break;
            }
            Ok(n) => {
                buf.truncate(n);
                done += n as u64;
                if tx.send(buf).await.is_err() {
                    break; // The writer failed; its error is reported below.
                }
            }
            Err(e) => {
                error = Some(CopyError::Source(e.to_string()));
                break;
            }
        }
    }
    drop(tx);
    match writer.await {
        Ok((partial, Some(write_error))) => (partial, Some(CopyError::Write(write_error))),
        Ok((partial, None)) => (partial, error),
        // The writer thread only panics on a bug; resume_panic keeps the bug visible.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
