//! Python's `json` module writes non-finite floats as the bare tokens `NaN`, `Infinity` and
//! `-Infinity`, which strict JSON parsers refuse. This module rewrites those tokens (outside
//! strings only) so a strict parser can read the line, and names the marker strings the event
//! reader turns back into numbers.

/// Marker strings that stand for the non-finite values after rewriting. They begin with a NUL
/// character, which no real metric value does.
pub const NAN_MARKER: &str = "\u{0}NaN";
pub const POS_INF_MARKER: &str = "\u{0}Infinity";
pub const NEG_INF_MARKER: &str = "\u{0}-Infinity";

/// The JSON text of each marker, as written into a rewritten line.
const NAN_JSON: &[u8] = b"\"\\u0000NaN\"";
const POS_INF_JSON: &[u8] = b"\"\\u0000Infinity\"";
const NEG_INF_JSON: &[u8] = b"\"\\u0000-Infinity\"";

/// Maps a marker string back to its value.
pub fn marker_value(s: &str) -> Option<f64> {
    match s {
        NAN_MARKER => Some(f64::NAN),
        POS_INF_MARKER => Some(f64::INFINITY),
        NEG_INF_MARKER => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Rewrites bare non-finite tokens outside strings. With `replacement` set, every token becomes
/// that text (e.g. `null`); otherwise each becomes its marker string. Returns `None` when the
/// input holds no such token, so the caller knows a retry would not help.
pub fn replace_nonfinite_tokens(input: &[u8], replacement: &[u8]) -> Option<Vec<u8>> {
    rewrite(input, Some(replacement))
}

/// Rewrites bare non-finite tokens outside strings into marker strings.
pub fn mark_nonfinite_tokens(input: &[u8]) -> Option<Vec<u8>> {
    rewrite(input, None)
}

fn rewrite(input: &[u8], replacement: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
            continue;
        }
        let rest = &input[i..];
        let token: Option<(usize, &[u8])> = if rest.starts_with(b"NaN") {
            Some((3, NAN_JSON))
        } else if rest.starts_with(b"-Infinity") {
            Some((9, NEG_INF_JSON))
        } else if rest.starts_with(b"Infinity") {
            Some((8, POS_INF_JSON))
        } else {
            None
        };
        match token {
            Some((len, marker)) => {
                out.extend_from_slice(replacement.unwrap_or(marker));
                changed = true;
                i += len;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_outside_strings() {
        let line = br#"{"a": NaN, "b": -Infinity, "c": Infinity, "s": "NaN Infinity \" NaN"}"#;
        let fixed = mark_nonfinite_tokens(line).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fixed).unwrap();
        assert!(marker_value(v["a"].as_str().unwrap()).unwrap().is_nan());
        assert_eq!(
            marker_value(v["b"].as_str().unwrap()),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(marker_value(v["c"].as_str().unwrap()), Some(f64::INFINITY));
        assert_eq!(v["s"], "NaN Infinity \" NaN");
        assert!(mark_nonfinite_tokens(br#"{"a": 1}"#).is_none());
    }
}
