//! Text from a run directory or a remote (a run path, an alias, a status, a remote's name, an
//! agent's stderr) is data, not terminal commands. Printed raw, an ESC, an OSC sequence or a
//! bidi override in a run name could move the cursor, retitle the window, hide lines or make
//! text read backwards. Every such string passes through [`safe`] (or [`safe_lines`] where a
//! newline is meant) before it reaches a terminal: control characters are shown as escapes.
//!
//! Made visible:
//! - C0 controls U+0000–U+001F (ESC as `\x1b`, BEL as `\x07`, tab as `\t`, newline as `\n`,
//!   carriage return as `\r`), except the newline in [`safe_lines`];
//! - DEL U+007F;
//! - C1 controls U+0080–U+009F (`\u{9b}` is a CSI on many terminals);
//! - bidirectional embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069.
//!
//! A backslash is left as it is: the rendering is for people to read, never parsed back.

use std::borrow::Cow;
use std::fmt;

/// True for a character that must not reach a terminal raw.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character made visible (newlines included).
pub fn safe(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` with every control character made visible but newlines kept: for multi-line text
/// such as an agent's stderr.
pub fn safe_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let needs = |c: char| is_unsafe(c) && !(keep_newlines && c == '\n');
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs(c) {
            out.push(c);
            continue;
        }
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{0}'..='\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// Displays its text made safe (see [`safe`]): `format!("{}", SafeText(&name))`.
#[derive(Debug, Clone, Copy)]
pub struct SafeText<'a>(pub &'a str);

impl fmt::Display for SafeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Padding (`{:<20}`) applies to the visible rendering.
        f.pad(&safe(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["runs/cv/resnet", "ünïcode ✓ 日本", "a\\b.txt", ""] {
            assert!(matches!(safe(s), Cow::Borrowed(t) if t == s));
        }
    }

    #[test]
    fn control_sequences_are_made_visible() {
        assert_eq!(safe("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            safe("\x1b]0;owned\x07title"),
            "\\x1b]0;owned\\x07title",
            "OSC with BEL"
        );
        assert_eq!(safe("x\u{9b}31m"), "x\\u{9b}31m", "C1 CSI");
        assert_eq!(safe("del\x7f"), "del\\x7f");
        assert_eq!(safe("a\tb\r\nc\0"), "a\\tb\\r\\nc\\x00");
        assert_eq!(safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(safe("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        // Neighbours of the ranges stay as they are.
        assert_eq!(
            safe("\u{a0}\u{2029}\u{202f}\u{2065}\u{206a}"),
            "\u{a0}\u{2029}\u{202f}\u{2065}\u{206a}"
        );
    }

    #[test]
    fn safe_lines_keeps_newlines_only() {
        assert_eq!(safe_lines("one\ntwo\x1b[K\r\n"), "one\ntwo\\x1b[K\\r\n");
    }

    #[test]
    fn nothing_unsafe_survives_any_char() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = safe(&all);
        assert!(!out.chars().any(is_unsafe));
        let out = safe_lines(&all);
        assert!(!out.chars().any(|c| is_unsafe(c) && c != '\n'));
    }

    #[test]
    fn display_pads_the_visible_text() {
        assert_eq!(format!("[{:<6}]", SafeText("a\x1bb")), "[a\\x1bb]");
        assert_eq!(format!("[{:<6}]", SafeText("ab")), "[ab    ]");
    }
}
