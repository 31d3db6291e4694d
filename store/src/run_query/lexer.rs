//! Tokens of the filter language, each with its place in the expression in characters.

use super::{FilterError, Op};

/// One stretch of a word: bare text, or text quoted in backticks (dots inside do not split).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Piece {
    pub text: String,
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    /// Adjacent bare and backtick-quoted stretches, without spaces or punctuation between.
    Word(Vec<Piece>),
    /// A double-quoted string, escapes resolved.
    Str(String),
    Op(Op),
    Colon,
    Open,
    Close,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: TokenKind,
    /// First character (0-based, in characters).
    pub at: usize,
    /// Length in characters.
    pub len: usize,
}

impl Token {
    /// A word's single bare stretch (`None` for anything else).
    pub fn bare(&self) -> Option<&str> {
        match &self.kind {
            TokenKind::Word(pieces) if pieces.len() == 1 && !pieces[0].quoted => {
                Some(&pieces[0].text)
            }
            _ => None,
        }
    }
}

/// Characters that end a bare word.
fn is_punct(c: char) -> bool {
    matches!(c, '(' | ')' | '"' | '`' | '=' | '!' | '<' | '>' | '~' | ':')
}

/// The tokens of `text`.
pub(super) fn tokens(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let simple = |kind, len| Token {
            kind,
            at: start,
            len,
        };
        let next = chars.get(i + 1).copied();
        let token = match c {
            '(' => simple(TokenKind::Open, 1),
            ')' => simple(TokenKind::Close, 1),
            ':' => simple(TokenKind::Colon, 1),
            '=' => simple(TokenKind::Op(Op::Eq), 1),
            '~' => simple(TokenKind::Op(Op::Contains), 1),
            '<' if next == Some('=') => simple(TokenKind::Op(Op::Le), 2),
            '<' => simple(TokenKind::Op(Op::Lt), 1),
            '>' if next == Some('=') => simple(TokenKind::Op(Op::Ge), 2),
            '>' => simple(TokenKind::Op(Op::Gt), 1),
            '!' if next == Some('=') => simple(TokenKind::Op(Op::Ne), 2),
            '!' => {
                return Err(FilterError::new(
                    "\"!\" alone is no operator (use != or not)",
                    start,
                    1,
                ))
            }
            '"' => {
                let (s, end) = string(&chars, start)?;
                simple(TokenKind::Str(s), end - start)
            }
            _ => {
                let (pieces, end) = word(&chars, start)?;
                simple(TokenKind::Word(pieces), end - start)
            }
        };
        i = start + token.len;
        out.push(token);
    }
    Ok(out)
}

/// A double-quoted string from `start` (its opening quote): the text and the index after the
/// closing quote. Escapes: `\"`, `\\`, `\n`, `\t`.
fn string(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(FilterError::new(
                    "this string has no closing \"",
                    start,
                    chars.len() - start,
                ))
            }
            Some('"') => return Ok((s, i + 1)),
            Some('\\') => {
                let escaped = match chars.get(i + 1) {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    _ => {
                        return Err(FilterError::new(
                            "unknown escape in a string (use \\\" or \\\\)",
                            i,
                            2.min(chars.len() - i),
                        ))
                    }
                };
                s.push(escaped);
                i += 2;
            }
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// A word from `start`: its stretches and the index after it. A backtick inside backticks is
/// written twice.
fn word(chars: &[char], start: usize) -> Result<(Vec<Piece>, usize), FilterError> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut i = start;
    while let Some(&c) = chars.get(i) {
        if c == '`' {
            let open = i;
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(FilterError::new(
                            "this key has no closing backtick",
                            open,
                            chars.len() - open,
                        ))
                    }
                    Some('`') if chars.get(i + 1) == Some(&'`') => {
                        text.push('`');
                        i += 2;
                    }
                    Some('`') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        text.push(c);
                        i += 1;
                    }
                }
            }
            pieces.push(Piece { text, quoted: true });
        } else if c.is_whitespace() || is_punct(c) {
            break;
        } else {
            let from = i;
            while chars
                .get(i)
                .is_some_and(|&c| !c.is_whitespace() && !is_punct(c))
            {
                i += 1;
            }
            pieces.push(Piece {
                text: chars[from..i].iter().collect(),
                quoted: false,
            });
        }
    }
    Ok((pieces, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokens(text).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn bare(s: &str) -> TokenKind {
        TokenKind::Word(vec![Piece {
            text: s.into(),
            quoted: false,
        }])
    }

    #[test]
    fn operators_words_strings_and_backticks() {
        assert_eq!(
            kinds("config.lr>=0.1 and(tag:\"a \\\"b\\\"\")"),
            [
                bare("config.lr"),
                TokenKind::Op(Op::Ge),
                bare("0.1"),
                bare("and"),
                TokenKind::Open,
                bare("tag"),
                TokenKind::Colon,
                TokenKind::Str("a \"b\"".into()),
                TokenKind::Close,
            ]
        );
        assert_eq!(
            kinds("summary.`val acc``s`!=x"),
            [
                TokenKind::Word(vec![
                    Piece {
                        text: "summary.".into(),
                        quoted: false
                    },
                    Piece {
                        text: "val acc`s".into(),
                        quoted: true
                    }
                ]),
                TokenKind::Op(Op::Ne),
                bare("x"),
            ]
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let t = tokens("ü = \"é\" ~").unwrap();
        assert_eq!(
            t.iter().map(|t| (t.at, t.len)).collect::<Vec<_>>(),
            [(0, 1), (2, 1), (4, 3), (8, 1)]
        );
    }

    #[test]
    fn unclosed_quotes_and_a_lone_bang_are_errors_at_their_place() {
        let e = tokens("a = \"open").unwrap_err();
        assert_eq!((e.position, e.length), (4, 5));
        let e = tokens("x.`open").unwrap_err();
        assert_eq!((e.position, e.length), (2, 5));
        let e = tokens("a ! b").unwrap_err();
        assert_eq!((e.position, e.length), (2, 1));
        let e = tokens("a = \"\\q\"").unwrap_err();
        assert_eq!((e.position, e.length), (5, 2));
    }
}
