//! [`CountingWriter`]: a `Write` that counts the bytes passed through it, for the size of a
//! bundle written to a stream (standard output has no length to ask afterwards).

use std::io::{self, Write};

/// Counts the bytes written through it to `inner`.
#[derive(Debug)]
pub struct CountingWriter<W> {
    pub inner: W,
    pub bytes: u64,
}

impl<W> CountingWriter<W> {
    pub fn new(inner: W) -> CountingWriter<W> {
        CountingWriter { inner, bytes: 0 }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_the_inner_writer_took() {
        let mut out = CountingWriter::new(Vec::new());
        out.write_all(b"hello ").unwrap();
        write!(out, "{}", 42).unwrap();
        assert_eq!(out.bytes, 8);
        assert_eq!(out.inner, b"hello 42");
    }
}
