//! The deepest record value carried from a run to the hub, and the cut that enforces it.
//!
//! `serde_json` refuses input nested deeper than 128 levels, and a record travels inside a
//! frame (envelope, body, batch, run: a few more levels) and is stored and read again by the
//! agent's index and the hub. A record the agent accepts must survive all of that, so every
//! record value (`meta.json`, `status.json`, `summary.json`, the configuration,
//! `environment.json`) is cut when it is read: a container nested deeper than
//! [`MAX_RECORD_DEPTH`] levels is replaced by the string [`cut_placeholder`].

use serde_json::Value;

/// Deepest nesting of objects and arrays kept in a record value (the record itself is level 1).
pub const MAX_RECORD_DEPTH: usize = 64;

/// The string that stands in for a value nested too deep.
pub fn cut_placeholder() -> String {
    format!("<cut: nested deeper than {MAX_RECORD_DEPTH} levels>")
}

/// Replaces every object or array nested deeper than [`MAX_RECORD_DEPTH`] levels by the
/// placeholder string. Returns whether anything was cut.
pub fn cut_deep_values(value: &mut Value) -> bool {
    cut_at(value, 1)
}

fn cut_at(value: &mut Value, level: usize) -> bool {
    let is_container = matches!(value, Value::Object(_) | Value::Array(_));
    if !is_container {
        return false;
    }
    if level > MAX_RECORD_DEPTH {
        *value = Value::String(cut_placeholder());
        return true;
    }
    let mut cut = false;
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                cut |= cut_at(v, level + 1);
            }
        }
        Value::Array(items) => {
            for v in items {
                cut |= cut_at(v, level + 1);
            }
        }
        _ => {}
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    #[test]
    fn values_deeper_than_the_limit_become_the_placeholder() {
        let mut v: Value = serde_json::from_str(&nested(MAX_RECORD_DEPTH)).unwrap();
        assert!(!cut_deep_values(&mut v), "exactly the limit is kept");
        assert_eq!(depth(&v), MAX_RECORD_DEPTH);
        let mut v: Value = serde_json::from_str(&nested(126)).unwrap();
        assert!(cut_deep_values(&mut v));
        assert_eq!(depth(&v), MAX_RECORD_DEPTH);
        let mut inner = &v;
        while let Value::Array(a) = inner {
            inner = &a[0];
        }
        assert_eq!(inner, &Value::String(cut_placeholder()));
        assert!(cut_placeholder().contains("nested deeper than 64 levels"));
        // What was cut can be embedded in a frame and read back.
        let wrapped = serde_json::json!({"id": 1, "body": {"batch": {"runs": [{"summary": v}]}}});
        let text = serde_json::to_string(&wrapped).unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }

    #[test]
    fn shallow_values_are_untouched() {
        let mut v = serde_json::json!({"a": [1, {"b": "c"}], "d": null});
        let before = v.clone();
        assert!(!cut_deep_values(&mut v));
        assert_eq!(v, before);
    }
}
