//! Whether to colour, and how: colour only goes to a stream that is a terminal, and never when
//! `NO_COLOR` is set to a non-empty value (<https://no-color.org>). Neither binary has a
//! `--color` option; the decision is made per stream, from the environment.

use std::ffi::OsStr;
use std::io::IsTerminal;

/// SGR code for bold text (table headers).
pub const BOLD: &str = "1";
/// SGR code for the `error` label.
pub const BOLD_RED: &str = "1;31";
/// SGR code for the `warning` label.
pub const BOLD_YELLOW: &str = "1;33";

/// The colour of a run status in both binaries' tables, by the status's name (the names of the
/// protocol's `RunStatus::ALL`; this crate knows only the words): running cyan, finished green,
/// failed and unreadable red, crashed bold magenta, stalled bold yellow, interrupted and killed
/// yellow; anything else (`unknown`) plain.
pub fn status_sgr(status: &str) -> &'static str {
    match status {
        "running" => "36",
        "finished" => "32",
        "failed" | "unreadable" => "31",
        "crashed" => "1;35",
        "stalled" => "1;33",
        "interrupted" | "killed" => "33",
        _ => "0",
    }
}

/// The decision itself: a terminal, and `NO_COLOR` unset or empty.
pub fn wants_color(stream_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stream_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

fn no_color() -> Option<std::ffi::OsString> {
    std::env::var_os("NO_COLOR")
}

/// True when coloured output is wanted on stdout.
pub fn color_stdout() -> bool {
    wants_color(std::io::stdout().is_terminal(), no_color().as_deref())
}

/// True when coloured output is wanted on stderr.
pub fn color_stderr() -> bool {
    wants_color(std::io::stderr().is_terminal(), no_color().as_deref())
}

/// `text` wrapped in the ANSI colour `sgr` (e.g. `"32"`, `"1;31"`) when `on`, else unchanged.
pub fn paint(on: bool, sgr: &str, text: &str) -> String {
    if on {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(wants_color(true, None));
        assert!(
            wants_color(true, Some(OsStr::new(""))),
            "an empty NO_COLOR does not count"
        );
        assert!(!wants_color(true, Some(OsStr::new("1"))));
        assert!(!wants_color(true, Some(OsStr::new("false"))), "any value");
        assert!(!wants_color(false, None));
        assert!(!wants_color(false, Some(OsStr::new(""))));
    }

    #[test]
    fn statuses_have_their_colours_and_other_words_none() {
        assert_eq!(status_sgr("finished"), "32");
        assert_eq!(status_sgr("crashed"), "1;35");
        assert_eq!(status_sgr("stalled"), "1;33");
        assert_eq!(status_sgr("unknown"), "0");
        assert_eq!(status_sgr("\x1b[31m"), "0");
    }

    #[test]
    fn paint_wraps_only_when_on() {
        assert_eq!(paint(true, BOLD_RED, "error"), "\x1b[1;31merror\x1b[0m");
        assert_eq!(paint(false, BOLD_RED, "error"), "error");
        assert_eq!(paint(true, "0", ""), "\x1b[0m\x1b[0m");
    }
}
