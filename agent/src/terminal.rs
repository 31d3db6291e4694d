//! How the agent talks to a terminal: colour only when stdout is a terminal and `NO_COLOR` is
//! not set, and the labels of its messages.

use std::io::IsTerminal;

/// True when coloured output is wanted on stdout.
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && no_color_unset()
}

fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && no_color_unset()
}

fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `error` (red on a terminal), the label of a fatal message.
pub fn error_label() -> String {
    paint_if(color_stderr(), "1;31", "error")
}

/// `warning` (yellow on a terminal).
pub fn warning_label() -> String {
    paint_if(color_stderr(), "1;33", "warning")
}

/// Wraps `text` in an ANSI colour when `on`.
pub fn paint_if(on: bool, sgr: &str, text: &str) -> String {
    if on {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}
