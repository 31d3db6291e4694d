//! The labels that start a message on stderr (`error: …`, `warning: …`), coloured when stderr
//! wants colour (see [`crate::color`]).

use crate::color::{color_stderr, paint, BOLD_RED, BOLD_YELLOW};

/// `error` (bold red on a terminal), the label of a failure.
pub fn error_label() -> String {
    label(color_stderr(), Label::Error)
}

/// `warning` (bold yellow on a terminal).
pub fn warning_label() -> String {
    label(color_stderr(), Label::Warning)
}

/// The kinds of label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Error,
    Warning,
}

/// `kind`'s label, coloured when `color`: for text that goes somewhere other than stderr
/// (e.g. a warning inside a listing on stdout).
pub fn label(color: bool, kind: Label) -> String {
    match kind {
        Label::Error => paint(color, BOLD_RED, "error"),
        Label::Warning => paint(color, BOLD_YELLOW, "warning"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_plain_words_without_colour() {
        assert_eq!(label(false, Label::Error), "error");
        assert_eq!(label(false, Label::Warning), "warning");
    }

    #[test]
    fn coloured_labels_keep_their_historical_codes() {
        assert_eq!(label(true, Label::Error), "\x1b[1;31merror\x1b[0m");
        assert_eq!(label(true, Label::Warning), "\x1b[1;33mwarning\x1b[0m");
    }
}
