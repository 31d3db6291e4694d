//! Shared CLI helpers: what both binaries (`runicorn-agent` and `runicorn-hub`) need at the
//! terminal, in one place, in the manner of ripgrep's `grep-cli`. Nothing here knows about runs,
//! remotes or the protocol; the commands decide what to print and these modules decide how.
//!
//! | module | owns |
//! |---|---|
//! | [`safe_text`] | making text from run directories and remotes safe to print on a terminal |
//! | [`color`] | whether a stream gets colour (terminal, `NO_COLOR`) and painting text |
//! | [`labels`] | the `error` / `warning` labels of messages on stderr |
//! | [`table`] | aligned tables on stdout |
//! | [`progress`] | indicatif bars and spinners, drawn only on a terminal |
//! | [`human`] | counts and byte sizes for people |
//! | [`csv`] | CSV fields and numbers for `--csv` output |
//! | [`time`] | the current Unix time and how timestamps are shown |
//! | [`broken_pipe`] | telling a closed stdout (`… \| head`) from a failure |

pub mod broken_pipe;
pub mod color;
pub mod csv;
pub mod human;
pub mod labels;
pub mod progress;
pub mod safe_text;
pub mod table;
pub mod time;

pub use broken_pipe::is_broken_pipe;
pub use color::{color_stderr, color_stdout, paint};
pub use labels::{error_label, warning_label};
pub use safe_text::{safe, safe_lines, SafeText};
pub use time::now;
