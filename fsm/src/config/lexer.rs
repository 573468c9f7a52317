//! The lexer: source text to tokens with byte spans.
//!
//! Lexing never fails as a whole. Text that is no token (a stray `@`, `90` without a
//! unit, an unterminated string) becomes an [`Kind::Invalid`] token plus a [`LexError`],
//! so the parser can carry on and report every other problem in the file too; it stays
//! silent about an invalid token, which has been reported here already.

use std::ops::Range;

use winnow::combinator::{alt, repeat};
use winnow::prelude::*;
use winnow::stream::{LocatingSlice, Location};
use winnow::token::{any, literal, take_till, take_while};

/// A byte range in the source.
pub(super) type Span = Range<usize>;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A name: `[A-Za-z_][A-Za-z0-9_-]*` (including the keywords `account` and `none`).
    Ident,
    /// A double-quoted string; `text` keeps the quotes and escapes.
    Str,
    /// A time: digits and one of `s`, `m`, `h`, `d`.
    Time,
    /// `=`
    Equals,
    /// `;`
    Semicolon,
    /// `,`
    Comma,
    /// `:`
    Colon,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// Text that is no token; a [`LexError`] says why.
    Invalid,
    /// The end of the source; always the last token, with an empty span.
    Eof,
}

/// One token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Token<'s> {
    /// What it is.
    pub kind: Kind,
    /// Where it is.
    pub span: Span,
    /// Its text in the source.
    pub text: &'s str,
}

/// Why some text is no token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LexErrorKind {
    /// Characters that start no token.
    Unexpected,
    /// A `#`, which starts a comment in many config languages but not in this one.
    HashComment,
    /// A `"` without its closing `"`.
    UnterminatedString,
    /// A backslash followed by something other than `"` or `\`.
    BadEscape(char),
    /// Digits without a unit.
    TimeWithoutUnit,
    /// Digits followed by letters that are no unit.
    BadTimeUnit,
    /// Digits followed by other word characters, such as `127.0.0.1:80`.
    BareWord,
}

/// Text that is no token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LexError {
    /// Why.
    pub kind: LexErrorKind,
    /// Where.
    pub span: Span,
}

impl LexError {
    /// The message; `text` is the source text of the span, quoted unless it is `secret`.
    pub(super) fn message(&self, text: &str, secret: bool) -> String {
        use super::diagnostic::quote_word;
        let shown = |what: &str| {
            if secret {
                what.to_owned()
            } else {
                format!("{what} {}", quote_word(text))
            }
        };
        match &self.kind {
            LexErrorKind::Unexpected => shown("unexpected"),
            LexErrorKind::HashComment => "comments start with '//', not '#'".to_owned(),
            LexErrorKind::UnterminatedString => {
                "unterminated string: it needs a closing '\"'".to_owned()
            }
            LexErrorKind::BadEscape(c) if !secret => format!(
                "invalid escape '\\{}' in string: only '\\\"' and '\\\\' are allowed",
                c.escape_debug()
            ),
            LexErrorKind::BadEscape(_) => {
                "invalid escape in string: only '\\\"' and '\\\\' are allowed".to_owned()
            }
            LexErrorKind::TimeWithoutUnit => format!(
                "{} needs a unit: s, m, h or d (such as 90s or 15m)",
                shown("time")
            ),
            LexErrorKind::BadTimeUnit => format!(
                "{} has an unknown unit: use s, m, h or d (such as 90s or 15m)",
                shown("time")
            ),
            LexErrorKind::BareWord => {
                format!("{}: strings need double quotes", shown("unexpected"))
            }
        }
    }
}

/// The tokens of a source, ending with [`Kind::Eof`], and what could not be lexed.
#[derive(Debug, Default)]
pub(super) struct Lexed<'s> {
    /// The tokens, in order.
    pub tokens: Vec<Token<'s>>,
    /// Problems, in order.
    pub errors: Vec<LexError>,
    /// Whether a string runs to the end of the file (the parser then says nothing more
    /// about the end of the file).
    pub unterminated: bool,
}

type Input<'s> = LocatingSlice<&'s str>;

/// Splits `source` into tokens.
pub(super) fn lex(source: &str) -> Lexed<'_> {
    let mut input = Input::new(source);
    let mut out = Lexed::default();
    // Some editors write a byte-order mark at the start of a file: it is not text.
    let _ = literal::<_, _, ()>('\u{feff}').parse_next(&mut input);
    loop {
        skip_trivia(&mut input);
        let start = input.current_token_start();
        let Some(c) = input.peek_token() else {
            break;
        };
        let (kind, error) = match c {
            '"' => string(&mut input),
            '0'..='9' => number(&mut input),
            c if c.is_ascii_alphabetic() || c == '_' => {
                word(&mut input);
                (Kind::Ident, None)
            }
            '=' | ';' | ',' | ':' | '{' | '}' | '[' | ']' => {
                input.next_token();
                (punctuation(c), None)
            }
            '#' => {
                let _ = take_till::<_, _, ()>(0.., '\n').parse_next(&mut input);
                (Kind::Invalid, Some(LexErrorKind::HashComment))
            }
            _ => {
                unexpected(&mut input);
                (Kind::Invalid, Some(LexErrorKind::Unexpected))
            }
        };
        let end = input.current_token_start();
        if let Some(kind) = error {
            out.unterminated |= kind == LexErrorKind::UnterminatedString;
            out.errors.push(LexError {
                kind,
                span: start..end,
            });
        }
        out.tokens.push(Token {
            kind,
            span: start..end,
            text: &source[start..end],
        });
        if let (Kind::Str, Some(errs)) = (kind, bad_escapes(&source[start..end], start)) {
            out.errors.extend(errs);
        }
    }
    let end = source.len();
    out.tokens.push(Token {
        kind: Kind::Eof,
        span: end..end,
        text: "",
    });
    out
}

/// Skips whitespace and `//` comments.
fn skip_trivia(input: &mut Input<'_>) {
    let whitespace = take_while(1.., char::is_whitespace).void();
    let comment = ("//", take_till(0.., '\n')).void();
    let _ = repeat::<_, _, (), (), _>(0.., alt((whitespace, comment))).parse_next(input);
}

/// A string, starting at its `"`. Escapes are checked afterwards by [`bad_escapes`].
fn string(input: &mut Input<'_>) -> (Kind, Option<LexErrorKind>) {
    input.next_token();
    loop {
        let _ = take_till::<_, _, ()>(0.., ['"', '\\']).parse_next(input);
        match any::<_, ()>.parse_next(input) {
            Ok('"') => return (Kind::Str, None),
            Ok(_) => {
                // A backslash: whatever follows is part of the string, even a quote.
                if any::<_, ()>.parse_next(input).is_err() {
                    break;
                }
            }
            Err(()) => break,
        }
    }
    (Kind::Invalid, Some(LexErrorKind::UnterminatedString))
}

/// The invalid escapes in the string token `text` (with its quotes) at byte `start`.
fn bad_escapes(text: &str, start: usize) -> Option<Vec<LexError>> {
    let mut errors = Vec::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            continue;
        }
        match chars.next() {
            Some((_, '"' | '\\')) | None => {}
            Some((j, e)) => errors.push(LexError {
                kind: LexErrorKind::BadEscape(e),
                span: start + i..start + j + e.len_utf8(),
            }),
        }
    }
    (!errors.is_empty()).then_some(errors)
}

/// A name.
fn word<'s>(input: &mut Input<'s>) -> &'s str {
    take_while::<_, _, ()>(1.., |c: char| {
        c.is_ascii_alphanumeric() || c == '_' || c == '-'
    })
    .parse_next(input)
    .unwrap_or_default()
}

/// Something starting with a digit: a time if it is well formed.
fn number(input: &mut Input<'_>) -> (Kind, Option<LexErrorKind>) {
    let text = take_while::<_, _, ()>(1.., |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
    })
    .parse_next(input)
    .unwrap_or_default();
    let unit = text.trim_start_matches(|c: char| c.is_ascii_digit());
    match unit {
        "s" | "m" | "h" | "d" => (Kind::Time, None),
        "" => (Kind::Invalid, Some(LexErrorKind::TimeWithoutUnit)),
        u if u.chars().all(|c| c.is_ascii_alphabetic()) => {
            (Kind::Invalid, Some(LexErrorKind::BadTimeUnit))
        }
        _ => (Kind::Invalid, Some(LexErrorKind::BareWord)),
    }
}

/// A run of characters that start no token.
fn unexpected(input: &mut Input<'_>) {
    input.next_token();
    let _ = take_while::<_, _, ()>(0.., |c: char| {
        !c.is_whitespace() && !c.is_ascii_alphanumeric() && !"_\"=;,:{}[]/#".contains(c)
    })
    .parse_next(input);
}

/// The kind of a one-character token.
fn punctuation(c: char) -> Kind {
    match c {
        '=' => Kind::Equals,
        ';' => Kind::Semicolon,
        ',' => Kind::Comma,
        ':' => Kind::Colon,
        '{' => Kind::LBrace,
        '}' => Kind::RBrace,
        '[' => Kind::LBracket,
        _ => Kind::RBracket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Kind> {
        lex(src).tokens.iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens_and_spans() {
        let l = lex("a = \"x\\\"y\"; // c\n b=[1s,{}]:");
        let got: Vec<_> = l.tokens.iter().map(|t| (t.kind, t.text)).collect();
        use Kind::*;
        assert_eq!(
            got,
            [
                (Ident, "a"),
                (Equals, "="),
                (Str, "\"x\\\"y\""),
                (Semicolon, ";"),
                (Ident, "b"),
                (Equals, "="),
                (LBracket, "["),
                (Time, "1s"),
                (Comma, ","),
                (LBrace, "{"),
                (RBrace, "}"),
                (RBracket, "]"),
                (Colon, ":"),
                (Eof, ""),
            ]
        );
        assert!(l.errors.is_empty());
    }

    #[test]
    fn errors_become_invalid_tokens() {
        use Kind::*;
        assert_eq!(kinds("@@ x"), [Invalid, Ident, Eof]);
        assert_eq!(kinds("90"), [Invalid, Eof]);
        assert_eq!(kinds("90min"), [Invalid, Eof]);
        assert_eq!(kinds("127.0.0.1:80;"), [Invalid, Semicolon, Eof]);
        assert_eq!(kinds("# note\nx"), [Invalid, Ident, Eof]);
        let l = lex("x \"abc");
        assert_eq!(l.tokens[1].kind, Invalid);
        assert!(l.unterminated);
        let l = lex("\"a\\nb\\q\"");
        assert_eq!(l.tokens[0].kind, Str);
        assert_eq!(l.errors.len(), 2);
        assert_eq!(l.errors[0].span, 2..4);
    }

    #[test]
    fn byte_order_mark_and_odd_input() {
        assert_eq!(kinds("\u{feff}x"), [Kind::Ident, Kind::Eof]);
        assert_eq!(kinds("\"\\"), [Kind::Invalid, Kind::Eof]);
        assert_eq!(kinds("/"), [Kind::Invalid, Kind::Eof]);
        assert_eq!(kinds(""), [Kind::Eof]);
    }
}
