//! The filter language of run listings (`GET /api/runs?q=`, `runicorn-hub ls --where`): its
//! syntax tree ([`RunQuery`]), the parser with the place of every mistake ([`FilterError`]),
//! and its translation into a SQL condition over `runs r` (`compile`). The language itself is
//! specified in `docs/api.md` ("Filter language"); in brief:
//!
//! - `KEY OP VALUE` with `=`, `!=`, `<`, `<=`, `>`, `>=` and `~` (contains, ASCII case
//!   folded); keys `path`, `alias`, `tags`, `host`, `remote`, `status`, `run_id`,
//!   `config.<key>` (flattened with dots), `summary.<key>`, `metric.<key>.last|min|max`;
//! - `tag:NAME`, `has:KEY`; `and`, `or`, `not`, parentheses; adjacent terms are and-ed;
//! - values: `"strings"`, numbers, `true`, `false`, `null`, or bare words (as strings);
//! - plain words (no operator) search free text, as `q=` always did.
//!
//! A comparison is false when the run has no value for its key (`!=` included); `not` is the
//! plain negation, so `not config.x = 1` keeps the runs without `config.x`.

mod compile;
mod lexer;
mod parser;

#[cfg(test)]
pub(crate) mod brute;
#[cfg(test)]
mod props;

use std::fmt;

pub(crate) use compile::{aggregate, condition, text_condition};

/// Longest expression accepted, in characters (the API caps `q` at 1,024 bytes anyway).
pub const MAX_FILTER_CHARS: usize = 4096;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum RunQuery {
    And(Vec<RunQuery>),
    Or(Vec<RunQuery>),
    Not(Box<RunQuery>),
    /// Free text: a case-insensitive substring of the path, alias, run id, host, remote, tags
    /// or notes.
    Text(String),
    Compare {
        key: FilterKey,
        op: Op,
        value: Literal,
    },
    /// The run has a (non-null) value for the key.
    Has(FilterKey),
}

/// What a comparison reads.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterKey {
    Path,
    Alias,
    /// The run's (effective) tags: a comparison holds when one tag satisfies it.
    Tags,
    Host,
    Remote,
    Status,
    RunId,
    Config(String),
    Summary(String),
    /// `metric.<name>`: `None` only in `has:metric.<name>` (the run has the metric).
    Metric(String, Option<Agg>),
    /// A key the language does not know: matches nothing (not an error).
    Unknown(String),
}

/// Which number of a metric's series a `metric.<key>.<agg>` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// The value at the last step.
    Last,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Contains, ASCII letters case-folded; text values only.
    Contains,
}

/// A value compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A finite number, with its text as written (text fields compare with the text).
    Number(f64, String),
    Text(String),
    Bool(bool),
}

impl Literal {
    /// The literal as text: what text fields (path, host, …) compare with.
    pub fn as_text(&self) -> String {
        match self {
            Literal::Number(_, written) => written.clone(),
            Literal::Text(s) => s.clone(),
            Literal::Bool(b) => b.to_string(),
        }
    }
}

/// A malformed expression: what is wrong and where (0-based character offset and length of
/// the offending token; at the end of the expression, the length is 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct FilterError {
    pub message: String,
    pub position: usize,
    pub length: usize,
}

impl FilterError {
    pub(crate) fn new(message: impl Into<String>, position: usize, length: usize) -> FilterError {
        FilterError {
            message: message.into(),
            position,
            length,
        }
    }
}

impl RunQuery {
    /// Parses an expression; `None` when it is empty (keeps every run).
    pub fn parse(text: &str) -> Result<Option<RunQuery>, FilterError> {
        let n = text.chars().count();
        if n > MAX_FILTER_CHARS {
            return Err(FilterError::new(
                format!("the filter is {n} characters long; at most {MAX_FILTER_CHARS}"),
                MAX_FILTER_CHARS,
                n - MAX_FILTER_CHARS,
            ));
        }
        parser::parse(text)
    }
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "~",
        }
    }
}

impl Agg {
    pub fn as_str(self) -> &'static str {
        match self {
            Agg::Last => "last",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }
}

fn quoted(s: &str, quote: char) -> String {
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '`' if quote == '`' => out.push_str("``"),
            '"' if quote == '"' => out.push_str("\\\""),
            '\\' if quote == '"' => out.push_str("\\\\"),
            '\n' if quote == '"' => out.push_str("\\n"),
            '\t' if quote == '"' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The key as it is written back (odd parts in backticks), for messages and round trips.
impl fmt::Display for FilterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterKey::Path => f.write_str("path"),
            FilterKey::Alias => f.write_str("alias"),
            FilterKey::Tags => f.write_str("tags"),
            FilterKey::Host => f.write_str("host"),
            FilterKey::Remote => f.write_str("remote"),
            FilterKey::Status => f.write_str("status"),
            FilterKey::RunId => f.write_str("run_id"),
            FilterKey::Config(k) => write!(f, "config.{}", quoted(k, '`')),
            FilterKey::Summary(k) => write!(f, "summary.{}", quoted(k, '`')),
            FilterKey::Metric(k, agg) => {
                write!(f, "metric.{}", quoted(k, '`'))?;
                match agg {
                    Some(a) => write!(f, ".{}", a.as_str()),
                    None => Ok(()),
                }
            }
            FilterKey::Unknown(k) => f.write_str(k),
        }
    }
}

/// An expression that parses back to the same tree.
impl fmt::Display for RunQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, items: &[RunQuery], word: &str| {
            f.write_str("(")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(")")
        };
        match self {
            RunQuery::And(items) => join(f, items, "and"),
            RunQuery::Or(items) => join(f, items, "or"),
            RunQuery::Not(inner) => write!(f, "not {inner}"),
            RunQuery::Text(t) => f.write_str(&quoted(t, '"')),
            RunQuery::Compare { key, op, value } => {
                let value = match value {
                    Literal::Number(_, written) => written.clone(),
                    Literal::Text(s) => quoted(s, '"'),
                    Literal::Bool(b) => b.to_string(),
                };
                write!(f, "{key} {} {value}", op.as_str())
            }
            RunQuery::Has(key) => write!(f, "has:{key}"),
        }
    }
}
