//! The recursive-descent parser: `or` of `and`s of (`not`) terms; adjacent terms are and-ed.

use super::lexer::{tokens, Piece, Token, TokenKind};
use super::{Agg, FilterError, FilterKey, Literal, Op, RunQuery};

pub(super) fn parse(text: &str) -> Result<Option<RunQuery>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let tokens = tokens(text)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
        chars: &chars,
    };
    let query = p.or()?;
    if let Some(t) = p.peek() {
        // Only a `)` can stop the top level early.
        return Err(FilterError::new(
            format!("unexpected {} (no \"(\" to close)", describe(t)),
            t.at,
            t.len,
        ));
    }
    Ok(Some(query))
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    chars: &'a [char],
}

/// How a token is named in messages.
fn describe(t: &Token) -> String {
    match &t.kind {
        TokenKind::Word(pieces) => {
            let text: String = pieces.iter().map(|p| p.text.as_str()).collect();
            format!("{text:?}")
        }
        TokenKind::Str(s) => format!("the string {s:?}"),
        TokenKind::Op(op) => format!("\"{}\"", op.as_str()),
        TokenKind::Colon => "\":\"".into(),
        TokenKind::Open => "\"(\"".into(),
        TokenKind::Close => "\")\"".into(),
    }
}

/// `and`, `or` or `not` (any case), if the token is that keyword.
fn keyword(t: &Token) -> Option<&'static str> {
    let word = t.bare()?;
    ["and", "or", "not"]
        .into_iter()
        .find(|k| word.eq_ignore_ascii_case(k))
}

/// A bare word that reads as a finite number.
fn number(word: &str) -> Option<f64> {
    let first = word.chars().next()?;
    let numeric_start = first.is_ascii_digit()
        || (matches!(first, '-' | '+' | '.')
            && word
                .chars()
                .nth(1)
                .is_some_and(|c| c.is_ascii_digit() || c == '.'));
    if !numeric_start {
        return None;
    }
    word.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The key a word names. Dots split bare stretches; a backtick-quoted stretch is one part.
fn key_of(pieces: &[Piece]) -> FilterKey {
    let mut parts: Vec<String> = vec![String::new()];
    let mut first_quoted = false;
    for (i, piece) in pieces.iter().enumerate() {
        if piece.quoted {
            if i == 0 {
                first_quoted = true;
            }
            if let Some(last) = parts.last_mut() {
                last.push_str(&piece.text);
            }
        } else {
            for c in piece.text.chars() {
                if c == '.' {
                    parts.push(String::new());
                } else if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    let written: String = pieces.iter().map(|p| p.text.as_str()).collect();
    if first_quoted {
        return FilterKey::Unknown(written);
    }
    let rest = parts[1..].join(".");
    match (parts[0].as_str(), parts.len()) {
        ("path", 1) => FilterKey::Path,
        ("alias", 1) => FilterKey::Alias,
        ("tags" | "tag", 1) => FilterKey::Tags,
        ("host", 1) => FilterKey::Host,
        ("remote", 1) => FilterKey::Remote,
        ("status", 1) => FilterKey::Status,
        ("run_id", 1) => FilterKey::RunId,
        ("config", n) if n > 1 && !rest.is_empty() => FilterKey::Config(rest),
        ("summary", n) if n > 1 && !rest.is_empty() => FilterKey::Summary(rest),
        ("metric", n) if n > 2 => {
            let agg = match parts[n - 1].as_str() {
                "last" => Agg::Last,
                "min" => Agg::Min,
                "max" => Agg::Max,
                _ => return FilterKey::Unknown(written),
            };
            let name = parts[1..n - 1].join(".");
            if name.is_empty() {
                FilterKey::Unknown(written)
            } else {
                FilterKey::Metric(name, Some(agg))
            }
        }
        _ => FilterKey::Unknown(written),
    }
}

/// `has:` also takes `metric.<name>` without an aggregate.
fn has_key_of(pieces: &[Piece]) -> FilterKey {
    match key_of(pieces) {
        FilterKey::Unknown(written) => {
            let mut with_agg = pieces.to_vec();
            with_agg.push(Piece {
                text: ".last".into(),
                quoted: false,
            });
            match key_of(&with_agg) {
                FilterKey::Metric(name, _) => FilterKey::Metric(name, None),
                _ => FilterKey::Unknown(written),
            }
        }
        key => key,
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.pos + ahead)
    }

    fn bump(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.pos);
        self.pos += 1;
        t
    }

    fn end(&self) -> usize {
        self.chars.len()
    }

    /// Whether the next token can start a term (for implicit `and`).
    fn starts_term(&self) -> bool {
        match self.peek() {
            None => false,
            Some(t) => match &t.kind {
                TokenKind::Close => false,
                TokenKind::Word(_) => keyword(t).is_none_or(|k| k == "not"),
                _ => true,
            },
        }
    }

    /// A term is needed after `what` (a keyword or "("): an error when there is none.
    fn need_term(&self, what: &str) -> Result<(), FilterError> {
        match self.peek() {
            None => Err(FilterError::new(
                format!("expected a term after {what}"),
                self.end(),
                0,
            )),
            Some(t)
                if matches!(t.kind, TokenKind::Close) || keyword(t).is_some_and(|k| k != "not") =>
            {
                Err(FilterError::new(
                    format!("expected a term after {what}, found {}", describe(t)),
                    t.at,
                    t.len,
                ))
            }
            Some(_) => Ok(()),
        }
    }

    fn or(&mut self) -> Result<RunQuery, FilterError> {
        let mut items = vec![self.and()?];
        while self.peek().and_then(keyword) == Some("or") {
            self.bump();
            self.need_term("\"or\"")?;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            RunQuery::Or(items)
        })
    }

    fn and(&mut self) -> Result<RunQuery, FilterError> {
        let mut items = vec![self.unary()?];
        loop {
            if self.peek().and_then(keyword) == Some("and") {
                self.bump();
                self.need_term("\"and\"")?;
            } else if !self.starts_term() {
                break;
            }
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            RunQuery::And(items)
        })
    }

    fn unary(&mut self) -> Result<RunQuery, FilterError> {
        if self.peek().and_then(keyword) == Some("not") {
            self.bump();
            self.need_term("\"not\"")?;
            return Ok(RunQuery::Not(Box::new(self.unary()?)));
        }
        self.term()
    }

    fn term(&mut self) -> Result<RunQuery, FilterError> {
        let Some(t) = self.peek().cloned() else {
            return Err(FilterError::new("expected a term", self.end(), 0));
        };
        let next_is_op = matches!(self.peek_at(1).map(|n| &n.kind), Some(TokenKind::Op(_)));
        match &t.kind {
            TokenKind::Open => {
                self.bump();
                self.need_term("\"(\"")?;
                let inner = self.or()?;
                match self.bump() {
                    Some(c) if matches!(c.kind, TokenKind::Close) => Ok(inner),
                    Some(other) => Err(FilterError::new(
                        format!(
                            "expected \")\" to close the \"(\" at position {}, found {}",
                            t.at,
                            describe(other)
                        ),
                        other.at,
                        other.len,
                    )),
                    None => Err(FilterError::new(
                        format!("expected \")\" to close the \"(\" at position {}", t.at),
                        self.end(),
                        0,
                    )),
                }
            }
            TokenKind::Close | TokenKind::Colon => Err(FilterError::new(
                format!("unexpected {}", describe(&t)),
                t.at,
                t.len,
            )),
            TokenKind::Op(op) => Err(FilterError::new(
                format!("expected a key before \"{}\"", op.as_str()),
                t.at,
                t.len,
            )),
            TokenKind::Str(s) if next_is_op => Err(FilterError::new(
                format!(
                    "the string {s:?} cannot be compared: keys are written bare or in backticks"
                ),
                t.at,
                t.len,
            )),
            TokenKind::Str(s) => {
                self.bump();
                Ok(RunQuery::Text(s.clone()))
            }
            TokenKind::Word(pieces) => {
                if let Some(k) = keyword(&t) {
                    return Err(FilterError::new(
                        format!("expected a term before \"{k}\""),
                        t.at,
                        t.len,
                    ));
                }
                if matches!(self.peek_at(1).map(|n| &n.kind), Some(TokenKind::Colon)) {
                    return self.prefixed(&t);
                }
                if next_is_op {
                    if t.bare().and_then(number).is_some() {
                        return Err(FilterError::new(
                            format!("expected a key before {}, found a number", describe(&t)),
                            t.at,
                            t.len,
                        ));
                    }
                    self.bump();
                    return self.comparison(key_of(pieces));
                }
                Ok(self.free_text())
            }
        }
    }

    /// Consecutive plain words: one free-text search for the text they span.
    fn free_text(&mut self) -> RunQuery {
        let start = self.peek().map_or(0, |t| t.at);
        let mut end = start;
        while let Some(t) = self.peek() {
            let plain = matches!(t.kind, TokenKind::Word(_))
                && keyword(t).is_none()
                && !matches!(
                    self.peek_at(1).map(|n| &n.kind),
                    Some(TokenKind::Op(_) | TokenKind::Colon)
                );
            if !plain {
                break;
            }
            end = t.at + t.len;
            self.bump();
        }
        RunQuery::Text(self.chars[start..end].iter().collect())
    }

    /// `tag:NAME` or `has:KEY` (the word before the colon is the current token).
    fn prefixed(&mut self, word: &Token) -> Result<RunQuery, FilterError> {
        let prefix = word.bare().unwrap_or_default().to_ascii_lowercase();
        if prefix != "tag" && prefix != "has" {
            return Err(FilterError::new(
                format!("unknown prefix {}: use tag:NAME or has:KEY", describe(word)),
                word.at,
                word.len,
            ));
        }
        self.bump();
        let colon = self.bump().cloned();
        let after = format!("\"{prefix}:\"");
        let Some(value) = self.peek().cloned() else {
            let at = colon.map_or(self.end(), |c| c.at + c.len);
            let what = if prefix == "tag" { "a tag" } else { "a key" };
            return Err(FilterError::new(
                format!("expected {what} after {after}"),
                at,
                0,
            ));
        };
        match (&value.kind, prefix.as_str()) {
            (TokenKind::Word(pieces), "tag") if keyword(&value).is_none() => {
                self.bump();
                let name: String = pieces.iter().map(|p| p.text.as_str()).collect();
                Ok(tag_query(name))
            }
            (TokenKind::Str(s), "tag") => {
                self.bump();
                Ok(tag_query(s.clone()))
            }
            (TokenKind::Word(pieces), "has") if keyword(&value).is_none() => {
                self.bump();
                Ok(RunQuery::Has(has_key_of(pieces)))
            }
            _ => Err(FilterError::new(
                format!(
                    "expected {} after {after}, found {}",
                    if prefix == "tag" { "a tag" } else { "a key" },
                    describe(&value)
                ),
                value.at,
                value.len,
            )),
        }
    }

    /// `KEY OP VALUE`, the key read (the operator is the current token).
    fn comparison(&mut self, key: FilterKey) -> Result<RunQuery, FilterError> {
        let Some(Token {
            kind: TokenKind::Op(op),
            at,
            len,
        }) = self.bump().cloned()
        else {
            return Err(FilterError::new("expected an operator", self.end(), 0));
        };
        let missing = |found: Option<&Token>| match found {
            None => FilterError::new(
                format!("expected a value after \"{}\"", op.as_str()),
                at + len,
                0,
            ),
            Some(t) => FilterError::new(
                format!(
                    "expected a value after \"{}\", found {}",
                    op.as_str(),
                    describe(t)
                ),
                t.at,
                t.len,
            ),
        };
        let Some(t) = self.peek().cloned() else {
            return Err(missing(None));
        };
        let value = match &t.kind {
            TokenKind::Str(s) => Literal::Text(s.clone()),
            TokenKind::Word(pieces) if keyword(&t).is_none() => match t.bare() {
                Some("true") => Literal::Bool(true),
                Some("false") => Literal::Bool(false),
                Some("null") => {
                    self.bump();
                    return match op {
                        Op::Eq => Ok(RunQuery::Not(Box::new(RunQuery::Has(key)))),
                        Op::Ne => Ok(RunQuery::Has(key)),
                        _ => Err(FilterError::new(
                            format!(
                                "null can only follow = or != (a missing key is null), not \"{}\"",
                                op.as_str()
                            ),
                            t.at,
                            t.len,
                        )),
                    };
                }
                Some(word) => match number(word) {
                    Some(x) => Literal::Number(x, word.to_owned()),
                    None => Literal::Text(word.to_owned()),
                },
                None => Literal::Text(pieces.iter().map(|p| p.text.as_str()).collect()),
            },
            _ => return Err(missing(Some(&t))),
        };
        self.bump();
        Ok(RunQuery::Compare { key, op, value })
    }
}

fn tag_query(name: String) -> RunQuery {
    RunQuery::Compare {
        key: FilterKey::Tags,
        op: Op::Eq,
        value: Literal::Text(name),
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn q(text: &str) -> RunQuery {
        RunQuery::parse(text).unwrap().unwrap()
    }

    fn cmp(key: FilterKey, op: Op, value: Literal) -> RunQuery {
        RunQuery::Compare { key, op, value }
    }

    #[test]
    fn the_issue_example_parses() {
        assert_eq!(
            q("config.optimizer = \"sgd\" and summary.val_acc > 0.97 and tag:best"),
            RunQuery::And(vec![
                cmp(
                    FilterKey::Config("optimizer".into()),
                    Op::Eq,
                    Literal::Text("sgd".into())
                ),
                cmp(
                    FilterKey::Summary("val_acc".into()),
                    Op::Gt,
                    Literal::Number(0.97, "0.97".into())
                ),
                cmp(FilterKey::Tags, Op::Eq, Literal::Text("best".into())),
            ])
        );
    }

    #[test]
    fn precedence_not_then_and_then_or() {
        assert_eq!(
            q("a or not b and c"),
            RunQuery::Or(vec![
                RunQuery::Text("a".into()),
                RunQuery::And(vec![
                    RunQuery::Not(Box::new(RunQuery::Text("b".into()))),
                    RunQuery::Text("c".into()),
                ]),
            ])
        );
        assert_eq!(
            q("(a OR b) AND c"),
            RunQuery::And(vec![
                RunQuery::Or(vec![RunQuery::Text("a".into()), RunQuery::Text("b".into())]),
                RunQuery::Text("c".into()),
            ])
        );
    }

    #[test]
    fn plain_words_are_one_free_text_search_as_before() {
        assert_eq!(q("res  net"), RunQuery::Text("res  net".into()));
        assert_eq!(q("gpu1"), RunQuery::Text("gpu1".into()));
        assert_eq!(q("cv/resnet 0.1"), RunQuery::Text("cv/resnet 0.1".into()));
        assert_eq!(
            q("resnet tag:best"),
            RunQuery::And(vec![
                RunQuery::Text("resnet".into()),
                cmp(FilterKey::Tags, Op::Eq, Literal::Text("best".into())),
            ])
        );
        assert_eq!(q("\"lr=0.1\""), RunQuery::Text("lr=0.1".into()));
    }

    #[test]
    fn keys_values_backticks_and_null() {
        assert_eq!(
            q("metric.`train/loss`.min <= -1e-3"),
            cmp(
                FilterKey::Metric("train/loss".into(), Some(Agg::Min)),
                Op::Le,
                Literal::Number(-1e-3, "-1e-3".into())
            )
        );
        assert_eq!(
            q("metric.a.b.last != x"),
            cmp(
                FilterKey::Metric("a.b".into(), Some(Agg::Last)),
                Op::Ne,
                Literal::Text("x".into())
            )
        );
        assert_eq!(
            q("summary.`val acc` ~ true"),
            cmp(
                FilterKey::Summary("val acc".into()),
                Op::Contains,
                Literal::Bool(true)
            )
        );
        assert_eq!(
            q("config.x = null"),
            RunQuery::Not(Box::new(RunQuery::Has(FilterKey::Config("x".into()))))
        );
        assert_eq!(
            q("has:metric.loss"),
            RunQuery::Has(FilterKey::Metric("loss".into(), None))
        );
        assert_eq!(
            q("lr=0.1"),
            cmp(
                FilterKey::Unknown("lr".into()),
                Op::Eq,
                Literal::Number(0.1, "0.1".into())
            )
        );
        assert_eq!(
            q("metric.loss > 1"),
            cmp(
                FilterKey::Unknown("metric.loss".into()),
                Op::Gt,
                Literal::Number(1.0, "1".into())
            )
        );
        assert!(RunQuery::parse("  ").unwrap().is_none());
    }

    #[test]
    fn display_parses_back_to_the_same_tree() {
        for text in [
            "config.optimizer = \"sgd\" and summary.val_acc > 0.97 and tag:best",
            "not (a or \"b \\\"c\\\"\") path ~ cv",
            "metric.`x``y`.max >= 3 or has:config.`a b` or has:metric.loss",
            "host != gpu1 status = running run_id < 2 remote <= r alias >= a",
        ] {
            let tree = q(text);
            assert_eq!(q(&tree.to_string()), tree, "{text} → {tree}");
        }
    }

    #[test]
    fn mistakes_point_at_their_token() {
        // (expression, position, length, words of the message)
        let cases = [
            ("config.optimizer = ", 18, 0, "expected a value after \"=\""),
            (
                "summary.acc >= and x",
                15,
                3,
                "expected a value after \">=\"",
            ),
            ("a and", 5, 0, "expected a term after \"and\""),
            ("or a", 0, 2, "expected a term before \"or\""),
            ("(a or b", 7, 0, "to close the \"(\" at position 0"),
            ("a)", 1, 1, "unexpected \")\""),
            ("= 3", 0, 1, "expected a key before \"=\""),
            ("x = \"open", 4, 5, "no closing"),
            ("foo:bar", 0, 3, "unknown prefix"),
            ("tag:", 4, 0, "expected a tag after \"tag:\""),
            ("has: )", 5, 1, "expected a key after \"has:\""),
            ("config.x < null", 11, 4, "null can only follow"),
            ("not", 3, 0, "expected a term after \"not\""),
            ("\"s\" = 1", 0, 3, "cannot be compared"),
            ("3 > x", 0, 1, "expected a key"),
            ("ü = ()", 4, 1, "expected a value after \"=\""),
        ];
        for (text, position, length, words) in cases {
            let e = RunQuery::parse(text).unwrap_err();
            assert_eq!((e.position, e.length), (position, length), "{text:?}: {e}");
            assert!(e.message.contains(words), "{text:?}: {e}");
            assert!(e.to_string().ends_with(&format!("at position {position}")));
        }
    }
}
