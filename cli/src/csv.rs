//! CSV output (RFC 4180) for the listing commands' `--csv`: fields quoted only when they must
//! be, numbers in a form that reads back as the same `f64` (and as pandas reads the
//! non-finite ones). Text is written as is: CSV goes to files and programs, not to a terminal.

use std::borrow::Cow;

/// The end of a record: CRLF, as RFC 4180 has it (every CSV reader takes it).
pub const LINE_END: &str = "\r\n";

/// A field: quoted (with inner quotes doubled) when it holds a comma, a quote or a line break.
pub fn field(text: &str) -> Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(text)
    }
}

/// A number: the shortest text that reads back as the same `f64` (with an exponent for very
/// large or small magnitudes); `NaN`, `inf` and `-inf` for the non-finite ones.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        // Debug is the shortest round-trip form; Display would write 1e300 as 301 digits.
        format!("{v:?}")
    }
}

/// One record from its fields, each quoted as needed, without the line end.
pub fn record<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    fields.into_iter().map(field).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_exactly() {
        for v in [0.1, 1.0 / 3.0, 1e300, -2.5e-12, 12345678.0, 0.0, -0.0, 1.0] {
            assert_eq!(
                number(v).parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{v}"
            );
        }
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(number(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("val/acc"), "val/acc");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(record(["k", "a,b", ""]), "k,\"a,b\",");
    }
}
