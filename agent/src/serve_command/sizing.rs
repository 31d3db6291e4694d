//! Measuring JSON sizes without building the text, so batches can be packed under the hub's
//! frame limit before they are encoded.

use std::io;

use serde::Serialize;

/// A `Write` that only counts.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes of `value` as compact JSON (0 if it cannot be serialised, which plain data always can).
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut c = Counter(0);
    match serde_json::to_writer(&mut c, value) {
        Ok(()) => c.0,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_the_encoder() {
        let v = serde_json::json!({"a": [1, 2.5, "x\n"], "b": null});
        assert_eq!(json_len(&v), serde_json::to_vec(&v).unwrap().len());
    }
}
