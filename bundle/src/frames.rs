//! The bundle's byte stream as the writer makes it: tar entries framed by hand (header, bytes,
//! zero padding) into zstd frames, so one tar stream can be split over several frames that a
//! reader decodes as one (zstd decoders read concatenated frames in order). The writer puts
//! the manifest in a frame of its own, the contents it read before the manifest into a frame
//! compressed in memory (the spool), and the rest into a last frame that ends the tar.

use std::io::{self, Read, Write};

use crate::error::BundleError;

/// Tar's block size: headers and padded data come in blocks of this many bytes.
const BLOCK: usize = 512;

/// A zstd frame being written to `W`, holding tar entries.
pub(crate) struct TarFrame<W: Write> {
    encoder: zstd::Encoder<'static, W>,
}

impl<W: Write> TarFrame<W> {
    /// Starts a frame at zstd `level` with its content checksum, compressed on worker threads
    /// while the caller reads the files.
    pub(crate) fn new(out: W, level: i32) -> Result<TarFrame<W>, BundleError> {
        let mut encoder = zstd::Encoder::new(out, level).map_err(BundleError::WriteBundle)?;
        encoder
            .include_checksum(true)
            .map_err(BundleError::WriteBundle)?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        encoder
            .multithread(workers as u32)
            .map_err(BundleError::WriteBundle)?;
        Ok(TarFrame { encoder })
    }

    /// The compressed bytes written so far (the workers' output lags behind what was given).
    pub(crate) fn output(&self) -> &W {
        self.encoder.get_ref()
    }

    /// Appends a regular-file entry `name` holding `bytes`.
    pub(crate) fn append_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), BundleError> {
        self.append_reader(name, bytes.len() as u64, bytes)
            .and_then(|copied| short_entry(copied, bytes.len() as u64))
    }

    /// Appends a regular-file entry `name` of `size` bytes read from `data`, and returns how many
    /// bytes `data` gave (at most `size`; a short entry is padded to `size` with zeros so the tar
    /// stays well-formed, and the caller fails the export).
    pub(crate) fn append_reader(
        &mut self,
        name: &str,
        size: u64,
        data: impl Read,
    ) -> Result<u64, BundleError> {
        let header = header(name, size)?;
        let w = &mut self.encoder;
        w.write_all(header.as_bytes())
            .map_err(BundleError::WriteBundle)?;
        let copied = copy(data.take(size), w)?;
        let mut missing = size - copied;
        let zeros = [0u8; BLOCK];
        while missing > 0 {
            let n = missing.min(BLOCK as u64) as usize;
            w.write_all(&zeros[..n]).map_err(BundleError::WriteBundle)?;
            missing -= n as u64;
        }
        let padding = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        w.write_all(&zeros[..padding])
            .map_err(BundleError::WriteBundle)?;
        Ok(copied)
    }

    /// Ends the frame (the tar goes on in the next one) and gives the output back.
    pub(crate) fn finish(self) -> Result<W, BundleError> {
        self.encoder.finish().map_err(BundleError::WriteBundle)
    }

    /// Ends the tar (its two zero blocks), then the frame.
    pub(crate) fn finish_archive(mut self) -> Result<W, BundleError> {
        self.encoder
            .write_all(&[0u8; 2 * BLOCK])
            .map_err(BundleError::WriteBundle)?;
        self.finish()
    }
}

/// Copies `data` into `w`; reading errors are the caller's to name, so they come back as
/// [`BundleError::WriteBundle`] only when they are the output's.
fn copy(mut data: impl Read, w: &mut impl Write) -> Result<u64, BundleError> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BundleError::WriteBundle(e)),
        };
        w.write_all(&buf[..n]).map_err(BundleError::WriteBundle)?;
        total += n as u64;
    }
}

fn short_entry(copied: u64, size: u64) -> Result<(), BundleError> {
    match copied == size {
        true => Ok(()),
        false => Err(BundleError::WriteBundle(io::Error::other(
            "an in-memory entry came out short",
        ))),
    }
}

/// A tar header for a read-only regular file `name` of `size` bytes (mtime 0: bundles of the
/// same files are byte-identical apart from the manifest's creation time).
fn header(name: &str, size: u64) -> Result<tar::Header, BundleError> {
    let mut header = tar::Header::new_gnu();
    header.set_path(name).map_err(BundleError::WriteBundle)?;
    header.set_size(size);
    header.set_mode(0o444);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_over_frames_read_back_as_one_tar() {
        let mut out = Vec::new();
        let mut first = TarFrame::new(&mut out, 3).unwrap();
        first.append_bytes("a", b"hello").unwrap();
        first.finish().unwrap();
        let mut second = TarFrame::new(&mut out, 3).unwrap();
        second.append_bytes("b", &[7u8; 1500]).unwrap();
        assert_eq!(second.append_reader("c", 10, &b"short"[..]).unwrap(), 5);
        second.finish_archive().unwrap();
        let decoded = zstd::decode_all(&out[..]).unwrap();
        assert_eq!(decoded.len() % BLOCK, 0);
        let mut archive = tar::Archive::new(&decoded[..]);
        let entries: Vec<(String, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                (name, bytes)
            })
            .collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0], ("a".to_owned(), b"hello".to_vec()));
        assert_eq!(entries[1].1, vec![7u8; 1500]);
        assert_eq!(
            entries[2].1,
            b"short\0\0\0\0\0".to_vec(),
            "padded to its size"
        );
    }
}
