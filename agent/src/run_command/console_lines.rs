//! Turning a command's raw output into the lines `logs.txt` keeps.
//!
//! The terminal gets the bytes unchanged; the log gets whole lines, each stamped
//! `[HH:MM:SS] `, with ANSI escapes kept. A progress bar that redraws its line with `\r` leaves
//! only its last state before the newline (upstream's "smart" tqdm mode), so a 10,000-step bar is
//! one log line, not 10,000. A line longer than [`MAX_LINE_BYTES`] is cut into pieces so memory
//! stays bounded.

/// Longest line kept whole; longer output is split.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Assembles the lines of one output stream (stdout and stderr each have their own).
#[derive(Debug, Default)]
pub struct ConsoleLines {
    current: Vec<u8>,
    pending_cr: bool,
}

impl ConsoleLines {
    /// Feeds a chunk of output; complete lines (without their terminator) go to `emit`.
    pub fn feed(&mut self, chunk: &[u8], mut emit: impl FnMut(&[u8])) {
        for &b in chunk {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    // A lone `\r`: the line is being redrawn; keep only what comes next.
                    self.current.clear();
                }
            }
            match b {
                b'\n' => {
                    emit(&self.current);
                    self.current.clear();
                }
                b'\r' => self.pending_cr = true,
                _ => {
                    self.current.push(b);
                    if self.current.len() >= MAX_LINE_BYTES {
                        emit(&self.current);
                        self.current.clear();
                    }
                }
            }
        }
    }

    /// At end of output: a last line without a newline is still a line.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.current.is_empty() {
            emit(&self.current);
            self.current.clear();
        }
        self.pending_cr = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = ConsoleLines::default();
        let mut out = Vec::new();
        for c in chunks {
            lines.feed(c, |l| out.push(String::from_utf8_lossy(l).into_owned()));
        }
        lines.finish(|l| out.push(String::from_utf8_lossy(l).into_owned()));
        out
    }

    #[test]
    fn progress_bar_redraws_collapse_to_the_last_state() {
        let got = lines_of(&[
            b"epoch 1\n",
            b" 10%|#\r 50%|#####",
            b"\r100%|##########|\n",
            b"done",
        ]);
        assert_eq!(got, vec!["epoch 1", "100%|##########|", "done"]);
    }

    #[test]
    fn crlf_is_a_newline_even_across_chunks_and_ansi_is_kept() {
        let got = lines_of(&[b"\x1b[31mred\x1b[0m\r", b"\nnext\r\n"]);
        assert_eq!(got, vec!["\x1b[31mred\x1b[0m", "next"]);
    }

    #[test]
    fn overlong_lines_are_split() {
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let got = lines_of(&[&long, b"\n"]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), MAX_LINE_BYTES);
        assert_eq!(got[1].len(), 10);
    }
}
