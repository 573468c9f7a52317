//! The syntax tree and its parser: tokens from [`lexer`](super::lexer) to statements
//! with byte spans.
//!
//! ```text
//! file       = { assignment | account } ;
//! account    = "account" STRING "{" { assignment } "}" ;
//! assignment = IDENT "=" value ";" ;
//! value      = STRING | TIME | "none" | list | map ;
//! list       = "[" [ STRING { "," STRING } [ "," ] ] "]" ;
//! map        = "{" [ STRING ":" STRING { "," STRING ":" STRING } [ "," ] ] "}" ;
//! ```
//!
//! The grammar has no recursion, so no input can exhaust the stack. After a syntax error
//! the parser reports it and resynchronises at the end of the statement (the next `;`, or
//! the `}` that closes the block), so every statement of a file gets checked.

use std::borrow::Cow;

use winnow::combinator::peek;
use winnow::error::{AddContext, ParserError};
use winnow::prelude::*;
use winnow::stream::{Offset, Stream, TokenSlice};
use winnow::token::any;

use super::diagnostic::{overlaps, quote_word};
use super::lexer::{self, Kind, Token};

pub(super) use super::lexer::Span;

/// A value with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Its span in the source.
    pub span: Span,
}

/// A string in the source, escapes resolved: borrowed from the source unless it has
/// escapes.
pub(super) type Text<'s> = Spanned<Cow<'s, str>>;

/// A value on the right of `=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value<'s> {
    /// A string, escapes resolved (borrowed from the source unless it has escapes).
    Str(Cow<'s, str>),
    /// A time as written: digits and a unit letter, such as `15m`.
    Time(&'s str),
    /// The keyword `none`.
    None,
    /// Any other bare word, such as `device` in `auth_flow = device;`.
    Word(&'s str),
    /// `[ "a", "b" ]`
    List(Vec<Text<'s>>),
    /// `{ "k": "v", ... }`, in order; keys may repeat.
    Map(Vec<(Text<'s>, Text<'s>)>),
}

/// `name = value;`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Assignment<'s> {
    /// The option's name.
    pub name: Spanned<&'s str>,
    /// Its value.
    pub value: Spanned<Value<'s>>,
}

/// `account "name" { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AccountBlock<'s> {
    /// The account's name.
    pub name: Spanned<Cow<'s, str>>,
    /// Its options, in order.
    pub options: Vec<Assignment<'s>>,
    /// Whether part of the block could not be parsed (options may then be missing
    /// only because of the syntax error, so the validator does not complain about them).
    pub damaged: bool,
}

/// A top-level statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Item<'s> {
    /// A global option.
    Option(Assignment<'s>),
    /// An account block.
    Account(AccountBlock<'s>),
}

/// A syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SyntaxError {
    /// Byte offset it is at.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed file: what could be parsed, and what could not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Syntax<'s> {
    /// Statements, in order, without those that had syntax errors.
    pub items: Vec<Item<'s>>,
    /// Syntax errors, in order (at most [`MAX_SYNTAX_ERRORS`] of them).
    pub errors: Vec<SyntaxError>,
    /// Spans of `client_secret` values, which must never be shown.
    pub secrets: Vec<Span>,
}

/// How many syntax errors are kept; past that, a file is not worth reading on.
pub(super) const MAX_SYNTAX_ERRORS: usize = 100;

/// Parses `source` into statements, collecting every syntax error.
pub(super) fn parse(source: &str) -> Syntax<'_> {
    let lexed = lexer::lex(source);
    let secrets = secret_spans(&lexed.tokens);
    let mut errors: Vec<SyntaxError> = lexed
        .errors
        .iter()
        .take(MAX_SYNTAX_ERRORS)
        .map(|e| {
            let secret = overlaps(&secrets, &e.span);
            let text = source.get(e.span.clone()).unwrap_or_default();
            SyntaxError {
                offset: e.span.start,
                message: e.message(text, secret),
            }
        })
        .collect();
    let mut reader = Reader {
        tokens: &lexed.tokens,
        pos: 0,
        errors: Vec::new(),
        quiet_at_eof: lexed.unterminated,
        secrets: &secrets,
    };
    let items = reader.file();
    errors.extend(reader.errors);
    errors.sort_by_key(|e| e.offset);
    errors.truncate(MAX_SYNTAX_ERRORS);
    Syntax {
        items,
        errors,
        secrets,
    }
}

/// The spans of what follows `client_secret` (and its `=`), up to the end of that
/// statement.
fn secret_spans(tokens: &[Token<'_>]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut i = 0;
    while let Some(t) = tokens.get(i) {
        i += 1;
        if t.kind != Kind::Ident || t.text != "client_secret" {
            continue;
        }
        if tokens.get(i).is_some_and(|t| t.kind == Kind::Equals) {
            i += 1;
        }
        while let Some(t) = tokens.get(i) {
            match t.kind {
                Kind::Semicolon | Kind::RBrace | Kind::LBrace | Kind::Eof => break,
                Kind::Ident if tokens.get(i + 1).is_some_and(|n| n.kind == Kind::Equals) => {
                    break;
                }
                Kind::Str | Kind::Time | Kind::Ident | Kind::Invalid => spans.push(t.span.clone()),
                _ => {}
            }
            i += 1;
        }
    }
    spans
}

/// The stream the winnow parsers below read.
type Tokens<'t, 's> = TokenSlice<'t, Token<'s>>;

/// The error of the winnow parsers below: what was expected at the token where they
/// stopped (the stream is left there).
#[derive(Debug, Default)]
struct Mismatch {
    /// What would have been right, such as `';' after the value of 'client_id'`.
    expected: Option<Cow<'static, str>>,
    /// Point at the end of the previous token rather than at the unexpected one (for a
    /// missing `;` or `}`, the place where it belongs).
    after_previous: bool,
}

impl Mismatch {
    fn expected(what: impl Into<Cow<'static, str>>) -> Self {
        Self {
            expected: Some(what.into()),
            after_previous: false,
        }
    }

    fn missing(what: impl Into<Cow<'static, str>>) -> Self {
        Self {
            expected: Some(what.into()),
            after_previous: true,
        }
    }
}

impl<I: Stream> ParserError<I> for Mismatch {
    type Inner = Self;

    fn from_input(_: &I) -> Self {
        Self::default()
    }

    fn into_inner(self) -> Result<Self, Self> {
        Ok(self)
    }
}

impl<I: Stream> AddContext<I, &'static str> for Mismatch {
    fn add_context(mut self, _: &I, _: &I::Checkpoint, what: &'static str) -> Self {
        self.expected.get_or_insert(Cow::Borrowed(what));
        self
    }
}

type PResult<T> = Result<T, Mismatch>;

/// A token of kind `kind`.
fn token<'t, 's: 't>(kind: Kind) -> impl Parser<Tokens<'t, 's>, &'t Token<'s>, Mismatch> {
    any.verify(move |t: &Token<'s>| t.kind == kind)
}

/// The next token, not consumed.
fn next<'t, 's: 't>(i: &mut Tokens<'t, 's>) -> PResult<&'t Token<'s>> {
    peek(any).parse_next(i)
}

/// `name = value`, without the `;` (see [`Reader::assignment`]).
fn assignment<'s>(i: &mut Tokens<'_, 's>) -> PResult<Assignment<'s>> {
    let name = token(Kind::Ident).context("an option name").parse_next(i)?;
    token(Kind::Equals)
        .parse_next(i)
        .map_err(|_| Mismatch::expected(format!("'=' after {}", quote_word(name.text))))?;
    let value = value(i)?;
    Ok(Assignment {
        name: Spanned {
            value: name.text,
            span: name.span.clone(),
        },
        value,
    })
}

/// A string, a time, `none`, a list or a map.
fn value<'s>(i: &mut Tokens<'_, 's>) -> PResult<Spanned<Value<'s>>> {
    let t = next(i)?;
    let value = match t.kind {
        Kind::Str => Value::Str(unescape(t.text)),
        Kind::Time => Value::Time(t.text),
        Kind::Ident if t.text == "none" => Value::None,
        Kind::Ident if t.text != "account" => Value::Word(t.text),
        Kind::LBracket => return list(i),
        Kind::LBrace => return map(i),
        _ => {
            return Err(Mismatch::expected(
                "a value (a \"string\", a time such as 15m, none, a [list] or a {map})",
            ));
        }
    };
    i.next_token();
    Ok(Spanned {
        value,
        span: t.span.clone(),
    })
}

/// A string, as a spanned value.
fn string<'s>(i: &mut Tokens<'_, 's>) -> PResult<Spanned<Cow<'s, str>>> {
    let t = token(Kind::Str).parse_next(i)?;
    Ok(Spanned {
        value: unescape(t.text),
        span: t.span.clone(),
    })
}

/// `[ "a", "b" ]`, trailing comma allowed.
fn list<'s>(i: &mut Tokens<'_, 's>) -> PResult<Spanned<Value<'s>>> {
    let open = token(Kind::LBracket).parse_next(i)?;
    let mut items = Vec::new();
    let close = loop {
        if let Ok(close) = token(Kind::RBracket).parse_next(i) {
            break close;
        }
        items.push(
            string
                .context("a string or ']' in the list")
                .parse_next(i)?,
        );
        if token(Kind::Comma).parse_next(i).is_err() {
            break token(Kind::RBracket)
                .context("',' or ']' after a list item")
                .parse_next(i)?;
        }
    };
    Ok(Spanned {
        value: Value::List(items),
        span: open.span.start..close.span.end,
    })
}

/// `{ "k": "v", ... }`, trailing comma allowed.
fn map<'s>(i: &mut Tokens<'_, 's>) -> PResult<Spanned<Value<'s>>> {
    let open = token(Kind::LBrace).parse_next(i)?;
    let mut entries = Vec::new();
    let close = loop {
        if let Ok(close) = token(Kind::RBrace).parse_next(i) {
            break close;
        }
        let key = string
            .context("a string key or '}' in the map")
            .parse_next(i)?;
        token(Kind::Colon)
            .context("':' after the key")
            .parse_next(i)?;
        let value = string.context("a string value after ':'").parse_next(i)?;
        entries.push((key, value));
        if token(Kind::Comma).parse_next(i).is_err() {
            break token(Kind::RBrace)
                .context("',' or '}' after a map entry")
                .parse_next(i)?;
        }
    };
    Ok(Spanned {
        value: Value::Map(entries),
        span: open.span.start..close.span.end,
    })
}

/// `account "name" {`
fn account_header<'s>(i: &mut Tokens<'_, 's>) -> PResult<Spanned<Cow<'s, str>>> {
    token(Kind::Ident).parse_next(i)?;
    let name = string
        .context("the account's name in double quotes after 'account'")
        .parse_next(i)?;
    token(Kind::LBrace)
        .context("'{' after the account's name")
        .parse_next(i)?;
    Ok(name)
}

/// The text of a string token without its quotes, escapes resolved. (A bad escape has
/// been reported by the lexer; here it just stands for the character after it.)
fn unescape(text: &str) -> Cow<'_, str> {
    let inner = text.strip_prefix('"').unwrap_or(text);
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Runs the statement parsers over the tokens, recording errors and recovering.
struct Reader<'t, 's> {
    tokens: &'t [Token<'s>],
    /// Index of the next token; `tokens[pos]` exists while `pos < tokens.len()`.
    pos: usize,
    errors: Vec<SyntaxError>,
    /// Set when a string ran to the end of the file: the end is then no news.
    quiet_at_eof: bool,
    secrets: &'t [Span],
}

impl<'t, 's> Reader<'t, 's> {
    /// All the top-level statements.
    fn file(&mut self) -> Vec<Item<'s>> {
        let mut items = Vec::new();
        while let Some(t) = self.peek() {
            match t.kind {
                Kind::Eof => break,
                Kind::RBrace => {
                    self.error_at(t.span.start, "unexpected '}': no account block is open");
                    self.pos += 1;
                }
                Kind::Ident if t.text == "account" => {
                    if let Some(account) = self.account() {
                        items.push(Item::Account(account));
                    }
                }
                _ => {
                    if let Some(a) = self.assignment(false) {
                        items.push(Item::Option(a));
                    }
                }
            }
        }
        items
    }

    /// An account block, or `None` if its header is broken.
    fn account(&mut self) -> Option<AccountBlock<'s>> {
        let start = self.pos;
        let name = match self.run(account_header) {
            Ok(name) => name,
            Err(e) => {
                self.report(e);
                self.skip(start, true);
                return None;
            }
        };
        let mut block = AccountBlock {
            name,
            options: Vec::new(),
            damaged: false,
        };
        while let Some(t) = self.peek() {
            let next_is_account = t.kind == Kind::Ident
                && t.text == "account"
                && self
                    .tokens
                    .get(self.pos + 1)
                    .is_some_and(|n| n.kind == Kind::Str);
            if t.kind == Kind::RBrace {
                self.pos += 1;
                break;
            } else if t.kind == Kind::Eof || next_is_account {
                let closing = format!("'}}' to close account {}", quote_name(&block.name.value));
                self.report(Mismatch::missing(closing));
                block.damaged = true;
                break;
            }
            match self.assignment(true) {
                Some(a) => block.options.push(a),
                None => block.damaged = true,
            }
        }
        Some(block)
    }

    /// An assignment, or `None` after reporting why not and skipping it.
    ///
    /// A missing `;` before something that starts a statement is reported, but the
    /// assignment is kept and nothing skipped: the rest of the file then reads as meant.
    fn assignment(&mut self, in_block: bool) -> Option<Assignment<'s>> {
        let start = self.pos;
        let result = self.run(assignment).and_then(|a| {
            if self.run(token(Kind::Semicolon)).is_ok() {
                return Ok(a);
            }
            let e = Mismatch::missing(format!(
                "';' after the value of {}",
                quote_word(a.name.value)
            ));
            if self.at_statement_start() {
                self.report(e);
                Ok(a)
            } else {
                Err(e)
            }
        });
        match result {
            Ok(a) => Some(a),
            Err(e) => {
                self.report(e);
                self.skip(start, false);
                if !in_block && self.peek().is_some_and(|t| t.kind == Kind::RBrace) {
                    // The statement ran into a `}`: it has been reported with it.
                    self.pos += 1;
                }
                None
            }
        }
    }

    /// Whether the token at `pos` starts a statement or ends a block or the file.
    fn at_statement_start(&self) -> bool {
        let kind = |i: usize| self.tokens.get(i).map(|t| t.kind);
        match kind(self.pos) {
            Some(Kind::RBrace | Kind::Eof) => true,
            Some(Kind::Ident) => matches!(kind(self.pos + 1), Some(Kind::Equals | Kind::Str)),
            _ => false,
        }
    }

    /// Runs `parser` on the tokens from `pos`, and moves `pos` to where it stopped.
    fn run<T>(&mut self, mut parser: impl Parser<Tokens<'t, 's>, T, Mismatch>) -> PResult<T> {
        let rest = self.tokens.get(self.pos..).unwrap_or_default();
        let mut input = TokenSlice::new(rest);
        let start = input.checkpoint();
        let result = parser.parse_next(&mut input);
        self.pos += input.offset_from(&start);
        result
    }

    /// The token at `pos`.
    fn peek(&self) -> Option<&'t Token<'s>> {
        self.tokens.get(self.pos)
    }

    /// Records `e`, which stopped at the token at `pos`.
    fn report(&mut self, e: Mismatch) {
        if self.errors.len() >= MAX_SYNTAX_ERRORS {
            return;
        }
        let Some(found) = self.peek() else { return };
        if found.kind == Kind::Invalid || (found.kind == Kind::Eof && self.quiet_at_eof) {
            // The lexer has said what is wrong here.
            return;
        }
        let offset = if e.after_previous || found.kind == Kind::Eof {
            self.pos
                .checked_sub(1)
                .and_then(|p| self.tokens.get(p))
                .map_or(0, |t| t.span.end)
        } else {
            found.span.start
        };
        let expected = e
            .expected
            .unwrap_or(Cow::Borrowed("an option name or an account"));
        let found = self.describe(found);
        // Strings may span lines, so a forgotten `"` swallows text up to the next one.
        let previous = self.pos.checked_sub(1).and_then(|p| self.tokens.get(p));
        let hint = if previous.is_some_and(|t| t.kind == Kind::Str && t.text.contains('\n')) {
            " (the string before it spans several lines: is a closing '\"' missing?)"
        } else {
            ""
        };
        self.error_at(offset, format!("expected {expected}, found {found}{hint}"));
    }

    fn error_at(&mut self, offset: usize, message: impl Into<String>) {
        if self.errors.len() < MAX_SYNTAX_ERRORS {
            self.errors.push(SyntaxError {
                offset,
                message: message.into(),
            });
        }
    }

    /// How to name `t` in a message; never quoting a secret.
    fn describe(&self, t: &Token<'_>) -> String {
        let secret = overlaps(self.secrets, &t.span);
        match t.kind {
            Kind::Str => "a string".to_owned(),
            Kind::Eof => "the end of the file".to_owned(),
            _ if secret => "a value".to_owned(),
            _ => quote_word(t.text),
        }
    }

    /// Skips the rest of the statement that starts at token `start`, after an error.
    ///
    /// For an assignment: up to and including the next `;` (lists and maps cannot hold
    /// one), or up to the `}` that closes the enclosing block. For an account: up to and
    /// including the `}` that closes it, or a `;` if it has no block.
    fn skip(&mut self, start: usize, account: bool) {
        let mut depth = 0usize;
        let mut j = start;
        while let Some(t) = self.tokens.get(j) {
            match t.kind {
                Kind::Eof => break,
                Kind::Semicolon if depth == 0 || !account => {
                    j += 1;
                    break;
                }
                Kind::LBrace | Kind::LBracket => depth += 1,
                Kind::RBrace if depth == 0 => break,
                Kind::RBrace | Kind::RBracket if depth > 0 => {
                    depth -= 1;
                    if depth == 0 && account && t.kind == Kind::RBrace {
                        j += 1;
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        // Always make progress, whatever the tokens.
        let stuck = j <= start && self.tokens.get(start).is_some_and(|t| t.kind != Kind::Eof);
        self.pos = self.pos.max(if stuck { start + 1 } else { j });
    }
}

/// An account name as it appears in messages: in double quotes.
pub(super) fn quote_name(name: &str) -> String {
    super::diagnostic::quote_string(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<(usize, String)> {
        parse(src)
            .errors
            .into_iter()
            .map(|e| (e.offset, e.message))
            .collect()
    }

    #[test]
    fn statements_and_values() {
        let s = parse(
            "a = \"x\\\\y\"; b = 5m; c = none;\naccount \"w\" { d = [\"p\", \"q\",]; e = {\"k\": \"v\", \"k\": \"w\"}; f = []; g = {}; }",
        );
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.items.len(), 4);
        let Item::Option(a) = &s.items[0] else {
            panic!("not an option")
        };
        assert_eq!(a.name.value, "a");
        assert_eq!(a.value.value, Value::Str("x\\y".into()));
        assert_eq!(a.value.span, 4..10);
        let Item::Account(acc) = &s.items[3] else {
            panic!("not an account")
        };
        assert_eq!(acc.name.value, "w");
        assert_eq!(acc.options.len(), 4);
        let Value::Map(m) = &acc.options[1].value.value else {
            panic!("not a map")
        };
        assert_eq!(m.len(), 2);
        assert!(!acc.damaged);
    }

    #[test]
    fn missing_semicolon_points_after_the_value() {
        assert_eq!(
            errors("a = \"x\"\nb = \"y\";"),
            [(
                7,
                "expected ';' after the value of 'a', found 'b'".to_owned()
            )]
        );
    }

    #[test]
    fn recovery_reports_every_statement() {
        let src = "a = ;\nb \"x\";\naccount \"w\" {\n c = [\"x\" \"y\"];\n d = {\"k\" \"v\"};\n}\ne = 1s;\n}";
        let got = errors(src);
        let messages: Vec<_> = got.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(
            messages,
            [
                "expected a value (a \"string\", a time such as 15m, none, a [list] or a {map}), found ';'",
                "expected '=' after 'b', found a string",
                "expected ',' or ']' after a list item, found a string",
                "expected ':' after the key, found a string",
                "unexpected '}': no account block is open",
            ]
        );
        let s = parse(src);
        assert_eq!(s.items.len(), 2, "{:?}", s.items);
    }

    #[test]
    fn unclosed_account_before_the_next_one() {
        let s = parse("account \"a\" {\n x = \"1\";\naccount \"b\" { y = \"2\"; }");
        assert_eq!(
            s.errors,
            [SyntaxError {
                offset: 23,
                message: "expected '}' to close account \"a\", found 'account'".into()
            }]
        );
        assert_eq!(s.items.len(), 2);
    }

    #[test]
    fn invalid_tokens_are_reported_once() {
        assert_eq!(
            errors("a = 90;\nb = @;\nc = \"x"),
            [
                (
                    4,
                    "time '90' needs a unit: s, m, h or d (such as 90s or 15m)".to_owned()
                ),
                (12, "unexpected '@'".to_owned()),
                (
                    19,
                    "unterminated string: it needs a closing '\"'".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn secrets_are_never_quoted() {
        let s = parse("client_secret = \"ab\\qcd\"; client_secret = 12;");
        let text: Vec<_> = s.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            text,
            [
                "invalid escape in string: only '\\\"' and '\\\\' are allowed",
                "time needs a unit: s, m, h or d (such as 90s or 15m)",
            ]
        );
        assert_eq!(s.secrets, [16..24, 42..44]);
    }

    #[test]
    fn broken_account_headers_skip_the_block() {
        let s = parse("account work { a = \"x\"; }\nb = \"y\";\naccount \"c\";\nd = \"z\";");
        let messages: Vec<_> = s.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "expected the account's name in double quotes after 'account', found 'work'",
                "expected '{' after the account's name, found ';'",
            ]
        );
        assert_eq!(s.items.len(), 2);
    }
}
