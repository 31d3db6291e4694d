//! Metric values on the wire. JSON has no NaN or infinities, but training logs them, so a
//! non-finite value travels as the string `"NaN"`, `"Infinity"` or `"-Infinity"` (the tokens
//! Python's `json` writes), and every finite value as a plain JSON number.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserializer, Serializer};
use std::fmt;

/// The token Python's `json` writes for a non-finite value (`NaN`, `Infinity`, `-Infinity`).
pub fn nonfinite_token(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn parse_token(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// `#[serde(with = "float::values")]` for a `Vec<f64>` that may hold non-finite values.
pub mod values {
    use super::*;

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(values.len()))?;
        for v in values {
            if v.is_finite() {
                seq.serialize_element(v)?;
            } else {
                seq.serialize_element(nonfinite_token(*v))?;
            }
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        d.deserialize_seq(ValuesVisitor)
    }

    struct ValuesVisitor;

    impl<'de> Visitor<'de> for ValuesVisitor {
        type Value = Vec<f64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of numbers or \"NaN\"/\"Infinity\"/\"-Infinity\"")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f64>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(v) = seq.next_element::<WireFloat>()? {
                out.push(v.0);
            }
            Ok(out)
        }
    }
}

/// One metric value as read from the wire.
struct WireFloat(f64);

impl<'de> serde::Deserialize<'de> for WireFloat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WireFloat;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or \"NaN\"/\"Infinity\"/\"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireFloat, E> {
                Ok(WireFloat(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireFloat, E> {
                Ok(WireFloat(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireFloat, E> {
                Ok(WireFloat(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireFloat, E> {
                parse_token(v)
                    .map(WireFloat)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug)]
    struct Holder {
        #[serde(with = "super::values")]
        v: Vec<f64>,
    }

    #[test]
    fn non_finite_values_round_trip_as_python_tokens() {
        let h = Holder {
            v: vec![1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.25, 3.0],
        };
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(
            text,
            r#"{"v":[1.5,"NaN","Infinity","-Infinity",-0.25,3.0]}"#
        );
        let back: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(back.v[0], 1.5);
        assert!(back.v[1].is_nan());
        assert_eq!(back.v[2], f64::INFINITY);
        assert_eq!(back.v[3], f64::NEG_INFINITY);
        let bad: Result<Holder, _> = serde_json::from_str(r#"{"v":["nan"]}"#);
        assert!(bad.is_err());
    }
}
