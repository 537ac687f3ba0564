//! Load errors of a policy directory: where (file, line, column), what went wrong, and what
//! to do about it.
//!
//! Owns: [`PolicyError`], [`PolicyErrors`] and [`SourceFile`], which turns the byte spans
//! the TOML parser reports into 1-based lines and columns.
//! Must not: decide anything. A call that policy refuses is not an error; it is an
//! [`super::Evaluation`] with [`super::Decision::Deny`].

use std::{fmt, ops::Range, path::PathBuf};

/// One mistake in a policy file.
///
/// Displays as `FILE:LINE:COL: MESSAGE` and, on the next line, `  help: WHAT TO DO`, so
/// that editors and terminals can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file, as the policy directory given to [`super::PolicySet::load`] joined with
    /// the file's relative path.
    pub file: PathBuf,
    /// 1-based line (1 for errors about a whole file).
    pub line: usize,
    /// 1-based column, in characters (1 for errors about a whole file).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}\n  help: {}", self.file.display(), self.line, self.column, self.message, self.help)
    }
}

impl std::error::Error for PolicyError {}

/// All the mistakes found while loading a policy directory (never just the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    /// The errors, by file, then line and column.
    pub fn errors(&self) -> &[PolicyError] {
        &self.0
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        write!(f, "{} policy error(s); the policy was not loaded", self.0.len())
    }
}

impl std::error::Error for PolicyErrors {}

/// The text of one policy file, kept while it is validated so that errors can name a line.
#[derive(Debug)]
pub(crate) struct SourceFile {
    /// The path errors name (policy directory joined with `rel`).
    pub path: PathBuf,
    /// The path relative to the policy directory, with `/` separators (`tools/x.toml`).
    pub rel: String,
    /// The file's contents.
    pub text: String,
}

impl SourceFile {
    /// The 1-based line and column (in characters) of byte `offset`.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// An error at the start of `span`.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>, help: impl Into<String>) -> PolicyError {
        let (line, column) = self.position(span.start);
        PolicyError { file: self.path.clone(), line, column, message: message.into(), help: help.into() }
    }

    /// An error about the whole file (line 1, column 1).
    pub fn error_whole(&self, message: impl Into<String>, help: impl Into<String>) -> PolicyError {
        whole_file_error(self.path.clone(), message, help)
    }

    /// Turns a TOML syntax or deserialization error into a [`PolicyError`] whose help says
    /// what to change.
    pub fn toml_error(&self, error: &toml::de::Error) -> PolicyError {
        let message = error.message().trim().to_string();
        let help = toml_help(&message);
        match error.span() {
            Some(span) => self.error_at(span, message, help),
            None => self.error_whole(message, help),
        }
    }
}

/// An error about a whole file that may not even have been read.
pub(crate) fn whole_file_error(path: PathBuf, message: impl Into<String>, help: impl Into<String>) -> PolicyError {
    PolicyError { file: path, line: 1, column: 1, message: message.into(), help: help.into() }
}

/// `a, b, c`, or `(none)`.
pub(crate) fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() { "(none)".to_string() } else { items.join(", ") }
}

/// The help line for a message from the TOML parser or from serde.
///
/// serde's messages are stable and name what is wrong (`unknown field `x`, expected one of
/// `a`, `b``); the help repeats the allowed names as a list to pick from.
fn toml_help(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = split_expected(rest);
        return match expected {
            Some(expected) => {
                format!("remove {field} or use one of the allowed keys here: {expected}")
            }
            None => format!("remove {field}: this table takes no keys"),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (variant, expected) = split_expected(rest);
        return format!("replace {variant} with one of: {}", expected.unwrap_or_else(|| "(none)".to_string()));
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("add {field} here: it is required");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((_, expected)) = message.strip_prefix(prefix).and_then(|rest| rest.split_once(", expected ")) {
            return format!("change the value to {}", plain_type(expected));
        }
    }
    if message.starts_with("invalid length") {
        return "change the number of elements as the message says".to_string();
    }
    "fix the TOML syntax at this position (see https://toml.io/en/v1.0.0)".to_string()
}

/// serde's name for an expected type, in the words of a policy author.
fn plain_type(expected: &str) -> &str {
    match expected {
        "u64" | "u32" | "u16" | "u8" | "usize" => "a whole number, 0 or more (e.g. 5000)",
        "i64" | "i32" => "a whole number (e.g. 5000)",
        "a sequence" => "an array (e.g. [\"a\", \"b\"])",
        "a boolean" => "true or false",
        "a string" => "a quoted string (e.g. \"text\")",
        "a map" => "a table",
        other => other,
    }
}

/// Splits "`x`, expected one of `a`, `b`" into ("`x`", Some("`a`, `b`")).
fn split_expected(rest: &str) -> (String, Option<String>) {
    match rest.split_once(", expected ") {
        Some((name, expected)) => {
            let list = expected.strip_prefix("one of ").unwrap_or(expected).replace(" or ", ", ");
            (name.to_string(), Some(list))
        }
        None => {
            let name = rest.split_once(',').map_or(rest, |(name, _)| name);
            (name.to_string(), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> SourceFile {
        SourceFile { path: PathBuf::from("p/x.toml"), rel: "x.toml".into(), text: text.into() }
    }

    #[test]
    fn position_is_one_based_and_counts_characters() {
        let file = source("a = 1\nbé = 2\n");
        assert_eq!(file.position(0), (1, 1));
        assert_eq!(file.position(6), (2, 1));
        // "bé" is 3 bytes; offset 9 is after "bé ".
        assert_eq!(file.position(10), (2, 4));
        assert_eq!(file.position(1000), (3, 1));
    }

    #[test]
    fn display_is_file_line_column_message_then_help() {
        let error = source("\nx").error_at(1..2, "bad", "do this");
        assert_eq!(error.to_string(), "p/x.toml:2:1: bad\n  help: do this");
    }

    #[test]
    fn unknown_field_help_lists_the_allowed_keys() {
        assert_eq!(
            toml_help("unknown field `nam`, expected one of `name`, `limits`"),
            "remove `nam` or use one of the allowed keys here: `name`, `limits`"
        );
        assert_eq!(
            toml_help("unknown field `x`, expected `a` or `b`"),
            "remove `x` or use one of the allowed keys here: `a`, `b`"
        );
    }

    #[test]
    fn errors_display_lists_every_error_and_the_count() {
        let file = source("a\nb\n");
        let errors = PolicyErrors(vec![file.error_at(0..1, "first", "h1"), file.error_at(2..3, "second", "h2")]);
        let text = errors.to_string();
        assert!(text.contains("p/x.toml:1:1: first\n  help: h1"));
        assert!(text.contains("p/x.toml:2:1: second\n  help: h2"));
        assert!(text.ends_with("2 policy error(s); the policy was not loaded"));
    }
}
