//! Diagnostics: what is wrong (or deprecated) in a config file, and exactly where.
//!
//! A [`Diagnostic`] renders like a compiler message, the source line and a caret under
//! the column:
//!
//! ```text
//! pizauth.conf:7:5: unknown option 'client_secert' in account "work" (did you mean 'client_secret'?)
//!     client_secert = "x";
//!     ^
//! ```
//!
//! The value of a `client_secret` is masked with `*` in the quoted source line, so a
//! diagnostic can be logged or shown anywhere.

use std::fmt;
use std::ops::{Deref, Range};

/// How serious a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The file is rejected.
    Error,
    /// The file is accepted, but should change (for example, a deprecated option name).
    Warning,
}

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file name given to [`Config::parse`](super::Config::parse).
    pub file: String,
    /// Byte offset into the source where the problem is.
    pub offset: usize,
    /// Line, counting from 1.
    pub line: usize,
    /// Column, counting from 1, in characters (not bytes).
    pub column: usize,
    /// What is wrong and what would be right: lowercase, no trailing period.
    pub message: String,
    /// The source line the problem is on (secrets masked, control characters replaced,
    /// very long lines shortened around the column); empty when there is nothing to show.
    pub source_line: String,
    /// Where the caret goes in `source_line`, counting from 1 in characters. Equal to
    /// `column` unless a very long line was shortened.
    pub source_column: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)?;
        if self.source_line.is_empty() {
            return Ok(());
        }
        write!(f, "\n{}\n", self.source_line)?;
        // Keep tabs so that the caret lines up with the text above it.
        let mut chars = self.source_line.chars();
        for _ in 1..self.source_column {
            match chars.next() {
                Some('\t') => f.write_str("\t")?,
                _ => f.write_str(" ")?,
            }
        }
        f.write_str("^")
    }
}

impl std::error::Error for Diagnostic {}

/// A list of diagnostics, always sorted by position in the file.
///
/// `Display` prints each [`Diagnostic`] in turn, separated by newlines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// No diagnostics.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds `d`, after any diagnostic at the same or an earlier position.
    pub fn push(&mut self, d: Diagnostic) {
        let at = self.0.partition_point(|x| x.offset <= d.offset);
        self.0.insert(at, d);
    }

    /// Whether any of them is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// The diagnostics, in order of position.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

impl Deref for Diagnostics {
    type Target = [Diagnostic];

    fn deref(&self) -> &[Diagnostic] {
        &self.0
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(mut v: Vec<Diagnostic>) -> Self {
        v.sort_by_key(|d| d.offset);
        Self(v)
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The longest source line quoted in full, in characters; longer ones are shortened.
const MAX_SNIPPET_CHARS: usize = 160;
/// How many characters of a shortened line are kept before the column.
const SNIPPET_CONTEXT: usize = 60;

/// Turns byte offsets into lines, columns and quoted source lines.
pub(super) struct SourceMap<'a> {
    file: &'a str,
    source: &'a str,
    /// Byte offset at which each line starts; the first is 0.
    line_starts: Vec<usize>,
    /// Byte ranges of secret values, sorted and disjoint: masked when quoted.
    secrets: Vec<Range<usize>>,
}

impl<'a> SourceMap<'a> {
    /// A map of `source`, the text of the file called `file`.
    pub(super) fn new(source: &'a str, file: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            source,
            line_starts,
            secrets: Vec::new(),
        }
    }

    /// Marks byte ranges whose text must never be shown.
    pub(super) fn set_secrets(&mut self, mut secrets: Vec<Range<usize>>) {
        secrets.sort_by_key(|r| r.start);
        self.secrets = secrets;
    }

    /// Whether `range` overlaps a secret.
    pub(super) fn is_secret(&self, range: &Range<usize>) -> bool {
        overlaps(&self.secrets, range)
    }

    /// The line (from 1) that byte `offset` is on.
    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    /// A diagnostic at byte `offset`, with its line quoted.
    pub(super) fn diagnostic(
        &self,
        severity: Severity,
        offset: usize,
        message: String,
    ) -> Diagnostic {
        let offset = self.char_boundary(offset);
        let line = self.line_of(offset);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let end = self.source[start..]
            .find('\n')
            .map_or(self.source.len(), |i| start + i);
        let column = self.source[start..offset].chars().count() + 1;
        let (source_line, source_column) = self.snippet(start..end, column);
        Diagnostic {
            severity,
            file: self.file.to_owned(),
            offset,
            line,
            column,
            message,
            source_line,
            source_column,
        }
    }

    /// A diagnostic about the whole file: line 1, column 1, no source line.
    pub(super) fn file_diagnostic(&self, severity: Severity, message: String) -> Diagnostic {
        Diagnostic {
            severity,
            file: self.file.to_owned(),
            offset: 0,
            line: 1,
            column: 1,
            message,
            source_line: String::new(),
            source_column: 1,
        }
    }

    /// The largest char boundary not after `offset` (offsets come from our own spans, so
    /// this only matters if one is ever wrong: it must not make us panic).
    fn char_boundary(&self, offset: usize) -> usize {
        let mut o = offset.min(self.source.len());
        while !self.source.is_char_boundary(o) {
            o -= 1;
        }
        o
    }

    /// The text of the line at byte range `line`, made safe to print, and the caret column
    /// in it.
    fn snippet(&self, line: Range<usize>, column: usize) -> (String, usize) {
        let text = &self.source[line.clone()];
        let text = text.strip_suffix('\r').unwrap_or(text);
        let total = text.chars().count();
        let (skip, take) = if total <= MAX_SNIPPET_CHARS {
            (0, total)
        } else {
            let skip = column.saturating_sub(1 + SNIPPET_CONTEXT);
            (skip, MAX_SNIPPET_CHARS.min(total - skip))
        };
        let mut out = String::new();
        if skip > 0 {
            out.push('…');
        }
        for (i, c) in text.char_indices().skip(skip).take(take) {
            let at = line.start + i;
            out.push(if self.is_secret(&(at..at + c.len_utf8())) {
                '*'
            } else if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            });
        }
        if skip + take < total {
            out.push('…');
        }
        let caret = column - skip + usize::from(skip > 0);
        (out, caret)
    }
}

/// Whether `range` overlaps one of `sorted` (sorted by start and disjoint); an empty
/// range counts as its first byte.
pub(super) fn overlaps(sorted: &[Range<usize>], range: &Range<usize>) -> bool {
    let i = sorted.partition_point(|s| s.end <= range.start);
    sorted
        .get(i)
        .is_some_and(|s| s.start < range.end.max(range.start + 1))
}

/// The longest piece of user text quoted in a message, in characters.
const MAX_QUOTED_CHARS: usize = 60;

/// `s` in single quotes, shortened if long: for names and other words from the file.
pub(super) fn quote_word(s: &str) -> String {
    format!("'{}'", shorten(s))
}

/// `s` in double quotes with escapes, shortened if long: for string values.
pub(super) fn quote_string(s: &str) -> String {
    format!("\"{}\"", shorten(s))
}

/// `s` with control characters and quotes escaped, cut at [`MAX_QUOTED_CHARS`].
fn shorten(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX_QUOTED_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters() {
        let src = "a = \"é\"; b\n  c;\n";
        let map = SourceMap::new(src, "f");
        let d = map.diagnostic(Severity::Error, src.find('b').unwrap_or(0), "m".into());
        assert_eq!((d.line, d.column), (1, 10));
        let d = map.diagnostic(Severity::Error, src.find('c').unwrap_or(0), "m".into());
        assert_eq!((d.line, d.column), (2, 3));
        assert_eq!(d.to_string(), "f:2:3: m\n  c;\n  ^");
    }

    #[test]
    fn tabs_are_kept_under_the_caret() {
        let src = "\tx = 1;";
        let map = SourceMap::new(src, "f");
        let d = map.diagnostic(Severity::Warning, 1, "m".into());
        assert_eq!(d.to_string(), "f:1:2: warning: m\n\tx = 1;\n\t^");
    }

    #[test]
    fn secrets_are_masked() {
        let src = "client_secret = \"abc\"; x";
        let mut map = SourceMap::new(src, "f");
        map.set_secrets(vec![16..21, 99..100]);
        let d = map.diagnostic(Severity::Error, 23, "m".into());
        assert_eq!(d.source_line, "client_secret = *****; x");
        assert!(map.is_secret(&(17..18)));
        assert!(!map.is_secret(&(21..22)));
    }

    #[test]
    fn long_lines_are_shortened_around_the_column() {
        let src = format!("{}X{}", "a".repeat(1000), "b".repeat(1000));
        let map = SourceMap::new(&src, "f");
        let d = map.diagnostic(Severity::Error, 1000, "m".into());
        assert_eq!(d.column, 1001);
        assert!(d.source_line.chars().count() <= MAX_SNIPPET_CHARS + 2);
        assert_eq!(d.source_line.chars().nth(d.source_column - 1), Some('X'));
    }

    #[test]
    fn end_of_file_and_odd_offsets_do_not_panic() {
        let src = "é\n";
        let map = SourceMap::new(src, "f");
        let d = map.diagnostic(Severity::Error, 1, "m".into());
        assert_eq!((d.line, d.column), (1, 1));
        let d = map.diagnostic(Severity::Error, 99, "m".into());
        assert_eq!((d.line, d.column), (2, 1));
        assert_eq!(d.to_string(), "f:2:1: m");
    }

    #[test]
    fn diagnostics_stay_sorted() {
        let map = SourceMap::new("abc", "f");
        let mut ds = Diagnostics::new();
        ds.push(map.diagnostic(Severity::Error, 2, "two".into()));
        ds.push(map.diagnostic(Severity::Error, 0, "zero".into()));
        ds.push(map.diagnostic(Severity::Error, 2, "two again".into()));
        let order: Vec<_> = ds.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(order, ["zero", "two", "two again"]);
        assert!(ds.has_errors());
    }

    #[test]
    fn quoting_escapes_and_shortens() {
        assert_eq!(quote_string("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(quote_word(&"x".repeat(100)).chars().count(), 63);
    }
}
