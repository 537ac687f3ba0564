//! What can go wrong with a seccomp profile: reading it, its JSON, its meaning, compiling
//! it, installing it.
//!
//! Owns: [`SeccompError`] and [`ProfileText`], which turns byte offsets in a profile into
//! the `FILE:LINE:COL` + help form of [`PolicyError`], so that a profile mistake reads
//! like any other policy mistake.
//! Must not: decide anything about a syscall.

use std::{io, path::PathBuf};

use crate::policy::{PolicyError, PolicyErrors};

/// Why a seccomp profile could not be loaded, compiled or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile file could not be read.
    #[error(
        "cannot read seccomp profile {}: {source}\n  help: check that the file exists and is readable (profiles live in policies/seccomp/NAME.json)",
        path.display()
    )]
    Read { path: PathBuf, source: io::Error },

    /// The profile directory could not be listed.
    #[error(
        "cannot list seccomp profiles in {}: {source}\n  help: check that the directory exists and is readable",
        path.display()
    )]
    ReadDir { path: PathBuf, source: io::Error },

    /// The profile is not valid JSON, or does not mean what it must: every mistake found,
    /// each with file, line, column and what to do.
    #[error("{0}")]
    Profile(PolicyErrors),

    /// The profile does not fit in a BPF program (more than 4096 instructions, or a rule
    /// whose comparisons are too long for a conditional jump).
    #[error(
        "cannot compile seccomp profile {source_name} ({filter}): {message}\n  help: split long argument rule chains or drop redundant rules; a BPF program holds at most 4096 instructions"
    )]
    Compile { source_name: String, filter: String, message: String },

    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed: without it an unprivileged process may not
    /// install a filter.
    #[error("cannot set no_new_privs before installing seccomp: {source}")]
    NoNewPrivs { source: io::Error },

    /// The kernel refused filter number `index` (0-based, in install order). The filters
    /// before it are installed: the process must not go on to run the tool.
    #[error(
        "the kernel refused seccomp filter {index} of {count}: {source}\n  help: the kernel needs CONFIG_SECCOMP_FILTER and SECCOMP_FILTER_FLAG_TSYNC (Linux >= 3.17); this process must exit"
    )]
    Install { index: usize, count: usize, source: io::Error },

    /// `SECCOMP_FILTER_FLAG_TSYNC` could not move thread `thread` to the new filter (it has
    /// a filter that is not an ancestor of ours, or is in another seccomp mode).
    #[error(
        "seccomp could not be applied to thread {thread} of this process\n  help: install the filter before other threads install their own; this process must exit"
    )]
    Tsync { thread: libc::pid_t },
}

/// The result alias of the seccomp module.
pub type Result<T, E = SeccompError> = std::result::Result<T, E>;

/// The text of one profile, kept while it is validated so that errors can name a line.
#[derive(Debug)]
pub(crate) struct ProfileText<'a> {
    /// What errors name as the file (a path, or a name such as `docker-default.json`).
    pub source_name: &'a str,
    /// The whole profile.
    pub text: &'a str,
}

impl ProfileText<'_> {
    /// The 1-based line and column (in characters) of byte `offset`.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// The byte offset of `part`, which must be a sub-slice of this text (as serde_json's
    /// borrowed `RawValue`s are); 0 if it is not.
    pub fn offset_of(&self, part: &str) -> usize {
        let start = self.text.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        if at >= start && at + part.len() <= start + self.text.len() { at - start } else { 0 }
    }

    /// The offset of the first `"key"` at or after `from` and before `until`, or `from`.
    pub fn key_offset(&self, key: &str, from: usize, until: usize) -> usize {
        let until = until.min(self.text.len());
        let quoted = format!("\"{key}\"");
        self.text.get(from..until).and_then(|region| region.find(&quoted)).map_or(from, |at| from + at)
    }

    /// An error at byte `offset`.
    pub fn error_at(&self, offset: usize, message: impl Into<String>, help: impl Into<String>) -> PolicyError {
        let (line, column) = self.position(offset);
        PolicyError { file: PathBuf::from(self.source_name), line, column, message: message.into(), help: help.into() }
    }

    /// Turns a serde_json error (syntax or shape) into a located [`PolicyError`]. `base` is
    /// the offset where the parsed JSON starts (a rule parsed on its own starts inside the
    /// file).
    pub fn json_error(&self, base: usize, error: &serde_json::Error) -> PolicyError {
        let (base_line, base_column) = self.position(base);
        let line = base_line + error.line().saturating_sub(1);
        let column =
            if error.line() <= 1 { base_column + error.column().saturating_sub(1) } else { error.column().max(1) };
        let message = json_message(error);
        PolicyError { file: PathBuf::from(self.source_name), line, column, help: json_help(error, &message), message }
    }
}

/// serde_json's message without its own " at line L column C" suffix (the error carries
/// the position already).
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// What to do about a serde_json error.
fn json_help(error: &serde_json::Error, message: &str) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof => {
            "fix the JSON syntax at this position (a missing comma, quote or bracket is usual)".to_string()
        }
        Category::Io => "check that the file can be read".to_string(),
        Category::Data => data_help(message),
    }
}

/// The help for a message that serde produced for a value of the wrong shape.
fn data_help(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return match rest.split_once(", expected ") {
            Some((field, expected)) => format!(
                "remove {field} or use one of the keys of the Docker/OCI seccomp format here: {}",
                expected.strip_prefix("one of ").unwrap_or(expected)
            ),
            None => format!("remove {rest}"),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return match rest.split_once(", expected ") {
            Some((value, expected)) => {
                format!("replace {value} with one of: {}", expected.strip_prefix("one of ").unwrap_or(expected))
            }
            None => format!("replace {rest}"),
        };
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("add {field} here: it is required");
    }
    if let Some((_, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "))
    {
        return format!("change the value to {expected}");
    }
    "change this value as the message says (see the Docker/OCI seccomp profile format)".to_string()
}

/// A [`SeccompError::Profile`] from the errors found, sorted by line and column.
pub(crate) fn profile_errors(mut errors: Vec<PolicyError>) -> SeccompError {
    errors.sort_by_key(|e| (e.line, e.column));
    SeccompError::Profile(PolicyErrors(errors))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_inside_a_rule_are_shifted_to_the_rule() {
        let text = "{\n  \"a\": [\n    {\"x\": 1,\n     \"y\": }\n  ]\n}";
        let profile = ProfileText { source_name: "p.json", text };
        let base = text.find("{\"x\"").unwrap_or(0);
        let rule = &text[base..text.find("}\n  ]").unwrap_or(0) + 1];
        let error = serde_json::from_str::<serde_json::Value>(rule).unwrap_err();
        let located = profile.json_error(base, &error);
        assert_eq!((located.line, located.file.to_str()), (4, Some("p.json")));
        assert!(located.help.contains("JSON syntax"), "{}", located.help);
    }

    #[test]
    fn unknown_field_help_lists_the_format_keys() {
        assert_eq!(
            data_help("unknown field `nmes`, expected one of `names`, `action`"),
            "remove `nmes` or use one of the keys of the Docker/OCI seccomp format here: `names`, `action`"
        );
    }
}
