//! `apply-patch`: applies a unified diff inside the working directory, all or nothing.
//!
//! ```text
//! apply-patch [--check] [-p N] [--] [PATCHFILE]
//! ```
//!
//! Reads the patch from PATCHFILE (standard input when absent or `-`). Accepts plain
//! `diff -u` output and `git diff` output: several files and hunks, `a/` and `b/` prefixes,
//! new files (`--- /dev/null`), deleted files (`+++ /dev/null`), empty new or deleted files
//! announced only by `diff --git` headers, C-quoted git paths, and
//! `\ No newline at end of file`. Text around the file sections (commit messages, `index`
//! and mode lines) is ignored. Renames, copies and binary patches are refused.
//!
//! Paths: `-p N` strips N leading components; without it, 1 when the section is a git
//! diff or its paths start with `a/` and `b/`, 0 otherwise. A path that is absolute,
//! contains a `..` component, or has a component that is a symbolic link (checked with
//! `symlink_metadata`, component by component) is refused, as is one that names a
//! directory. This keeps the patch inside the working directory.
//!
//! Matching: each hunk's old lines (context and removals) must match the file exactly
//! (no fuzz). They are looked for at the line the hunk header names, shifted by the
//! offset the previous hunk was found at, then ever further above and below; hunks apply
//! in order and never overlap. A hunk found away from its line is reported with its
//! offset.
//!
//! All or nothing: every hunk of every file is checked before anything is written. Then
//! changed files are rewritten in place (keeping their permissions), new files are
//! created (with their parent directories) and deleted files removed. `--check` stops
//! after the checks. A summary goes to stdout.
//!
//! Exit codes (stable):
//! - 0: the patch applied (with `--check`: it would apply);
//! - 1: the patch does not apply: which file and hunk, and why, on stderr; nothing written;
//! - 2: the patch is malformed, a path is refused, or usage error; nothing written;
//! - 3: writing failed part-way (disk full, permission): files listed on stdout before
//!   the error were written.
//!
//! This tool writes only the files the patch names, inside the working directory.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Read},
    path::{Component, Path, PathBuf},
    process::ExitCode,
};

const USAGE: &str = "\
usage: apply-patch [--check] [-p N] [--] [PATCHFILE]

Applies a unified diff (diff -u or git diff) to files in the current directory. Every hunk
is checked before anything is written: the patch applies whole or not at all. Reads
standard input when PATCHFILE is absent or `-`.

      --check  check that the patch applies; write nothing
  -p N         strip N leading path components (default: 1 for git-style a/ b/ paths,
               else 0)
  -h, --help   print this help

Paths that are absolute, contain `..`, or go through a symbolic link are refused.
Exit: 0 applied, 1 does not apply, 2 bad patch or refused path, 3 write failed part-way.
";

/// Parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub check: bool,
    pub strip: Option<usize>,
    pub patch_file: Option<String>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Apply(Options),
}

/// Parses the arguments after argv[0].
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut o = Options::default();
    let mut positional = Vec::new();
    let mut only_positional = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if only_positional || arg == "-" || !arg.starts_with('-') {
            positional.push(arg.clone());
            continue;
        }
        let strip_value = if arg == "-p" || arg == "--strip" {
            let v = args.get(i).ok_or("option `-p` needs a number")?;
            i += 1;
            Some(v.as_str())
        } else {
            arg.strip_prefix("--strip=")
                .or_else(|| arg.strip_prefix("-p"))
        };
        match arg.as_str() {
            "--" => only_positional = true,
            "-h" | "--help" => return Ok(Command::Help),
            "--check" | "--dry-run" => o.check = true,
            _ => match strip_value {
                Some(v) => {
                    o.strip = Some(v.parse().map_err(|_| {
                        format!("invalid strip count `{v}`: expected a whole number")
                    })?)
                }
                None => return Err(format!("unknown option `{arg}`")),
            },
        }
    }
    if positional.len() > 1 {
        return Err(format!(
            "expected at most one PATCHFILE, got {}",
            positional.len()
        ));
    }
    o.patch_file = positional.pop().filter(|p| p != "-");
    Ok(Command::Apply(o))
}

/// One line of a hunk; the bytes include the line's `\n` unless the patch marked it
/// `\ No newline at end of file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HunkLine {
    Context(Vec<u8>),
    Remove(Vec<u8>),
    Add(Vec<u8>),
}

impl HunkLine {
    fn bytes_mut(&mut self) -> &mut Vec<u8> {
        match self {
            HunkLine::Context(b) | HunkLine::Remove(b) | HunkLine::Add(b) => b,
        }
    }
}

/// One `@@ -a,b +c,d @@` hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    pub old_start: usize,
    pub old_len: usize,
    pub new_start: usize,
    pub new_len: usize,
    pub lines: Vec<HunkLine>,
    /// 1-based line of the `@@` header in the patch.
    pub patch_line: usize,
}

impl Hunk {
    fn old_lines(&self) -> Vec<&[u8]> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                HunkLine::Context(b) | HunkLine::Remove(b) => Some(b.as_slice()),
                HunkLine::Add(_) => None,
            })
            .collect()
    }

    fn new_lines(&self) -> Vec<&[u8]> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                HunkLine::Context(b) | HunkLine::Add(b) => Some(b.as_slice()),
                HunkLine::Remove(_) => None,
            })
            .collect()
    }

    fn header(&self) -> String {
        format!(
            "@@ -{},{} +{},{} @@",
            self.old_start, self.old_len, self.new_start, self.new_len
        )
    }
}

/// The changes to one file. Paths are as written in the patch (not yet stripped);
/// `None` is `/dev/null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    pub old_path: Option<String>,
    pub new_path: Option<String>,
    /// The section came with a `diff --git` header.
    pub git: bool,
    /// The old (new) side's timestamp is the Unix epoch: `diff -N` marks a file that does
    /// not exist on that side this way instead of with `/dev/null`.
    pub old_epoch: bool,
    pub new_epoch: bool,
    pub hunks: Vec<Hunk>,
    /// 1-based line where the section starts in the patch.
    pub patch_line: usize,
}

/// Why the patch cannot be used at all (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPatch(pub String);

/// Parses a unified diff into file sections.
pub fn parse_patch(patch: &[u8]) -> Result<Vec<FilePatch>, BadPatch> {
    let lines: Vec<&[u8]> = split_patch_lines(patch);
    let mut files = Vec::new();
    // A `diff --git` header whose section has not yet produced a file.
    let mut git: Option<GitHeader> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let number = i + 1;
        if line.starts_with(b"diff --git ") {
            flush_git(&mut git, &mut files);
            git = Some(GitHeader::parse(line, number)?);
            i += 1;
            continue;
        }
        if let Some(header) = git.as_mut() {
            for word in [
                &b"rename from "[..],
                b"rename to ",
                b"copy from ",
                b"copy to ",
            ] {
                if line.starts_with(word) {
                    return Err(BadPatch(format!(
                        "line {number}: renames and copies are not supported; make the diff \
                         without rename detection (git diff --no-renames)"
                    )));
                }
            }
            if line.starts_with(b"new file mode") {
                header.new_file = true;
            } else if line.starts_with(b"deleted file mode") {
                header.deleted = true;
            }
        }
        if line.starts_with(b"GIT binary patch") || line.starts_with(b"Binary files ") {
            return Err(BadPatch(format!(
                "line {number}: binary patches are not supported"
            )));
        }
        if line.starts_with(b"--- ") && lines.get(i + 1).is_some_and(|l| l.starts_with(b"+++ ")) {
            let (old_path, old_epoch) = parse_header_path(&line[4..], number)?;
            let (new_path, new_epoch) = parse_header_path(&lines[i + 1][4..], number + 1)?;
            if old_path.is_none() && new_path.is_none() {
                return Err(BadPatch(format!("line {number}: both paths are /dev/null")));
            }
            let is_git = git.take().is_some();
            i += 2;
            let mut hunks = Vec::new();
            while i < lines.len() && lines[i].starts_with(b"@@ ") {
                let (hunk, next) = parse_hunk(&lines, i)?;
                hunks.push(hunk);
                i = next;
            }
            if hunks.is_empty() {
                return Err(BadPatch(format!(
                    "line {}: file header without any hunk",
                    number
                )));
            }
            files.push(FilePatch {
                old_path,
                new_path,
                git: is_git,
                old_epoch,
                new_epoch,
                hunks,
                patch_line: number,
            });
            continue;
        }
        if line.starts_with(b"@@ ") {
            return Err(BadPatch(format!(
                "line {number}: hunk without a `---`/`+++` file header"
            )));
        }
        i += 1;
    }
    flush_git(&mut git, &mut files);
    if files.is_empty() {
        return Err(BadPatch(
            "no file changes found: is this a unified diff (diff -u, git diff)?".into(),
        ));
    }
    Ok(files)
}

/// Lines of the patch without their `\n`.
fn split_patch_lines(patch: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = patch.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// A `diff --git a/X b/Y` header and what the extended header lines said.
struct GitHeader {
    old_path: String,
    new_path: String,
    new_file: bool,
    deleted: bool,
    line: usize,
}

impl GitHeader {
    fn parse(line: &[u8], number: usize) -> Result<GitHeader, BadPatch> {
        let rest = trim_cr(&line[b"diff --git ".len()..]);
        let bad = || {
            BadPatch(format!(
                "line {number}: cannot read the paths of this `diff --git` line"
            ))
        };
        let (old_path, new_path) = if rest.starts_with(b"\"") {
            let (old, used) = unquote_c(rest).ok_or_else(bad)?;
            let after = rest[used..].strip_prefix(b" ").ok_or_else(bad)?;
            let new = if after.starts_with(b"\"") {
                unquote_c(after).ok_or_else(bad)?.0
            } else {
                String::from_utf8(after.to_vec()).map_err(|_| bad())?
            };
            (old, new)
        } else {
            let text = std::str::from_utf8(rest).map_err(|_| bad())?;
            // `a/P b/P`: the split where both sides name the same path; else the first space.
            let splits: Vec<usize> = text.match_indices(' ').map(|(i, _)| i).collect();
            let same = splits.iter().find(|&&i| {
                let (a, b) = (&text[..i], &text[i + 1..]);
                a.get(2..).is_some() && a.get(2..) == b.get(2..)
            });
            let at = same.or(splits.first()).copied().ok_or_else(bad)?;
            (text[..at].to_string(), text[at + 1..].to_string())
        };
        Ok(GitHeader {
            old_path,
            new_path,
            new_file: false,
            deleted: false,
            line: number,
        })
    }
}

/// A git section with no `---`/`+++` (an empty file created or deleted, or a mode change)
/// becomes a file patch without hunks.
fn flush_git(git: &mut Option<GitHeader>, files: &mut Vec<FilePatch>) {
    if let Some(h) = git.take()
        && (h.new_file || h.deleted)
    {
        files.push(FilePatch {
            old_path: (!h.new_file).then_some(h.old_path),
            new_path: (!h.deleted).then_some(h.new_path),
            git: true,
            old_epoch: false,
            new_epoch: false,
            hunks: Vec::new(),
            patch_line: h.line,
        });
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The path of a `---`/`+++` line (after the marker): C-quoted, or up to a tab (diff -u
/// puts a timestamp after one). `/dev/null` is `None`. The flag is true when the
/// timestamp is the Unix epoch (in any time zone), `diff -N`'s mark of a missing file.
fn parse_header_path(text: &[u8], number: usize) -> Result<(Option<String>, bool), BadPatch> {
    let text = trim_cr(text);
    let epoch = text
        .iter()
        .position(|&b| b == b'\t')
        .map(|tab| &text[tab + 1..])
        .is_some_and(|stamp| stamp.starts_with(b"1970-01-01") || stamp.starts_with(b"1969-12-31"));
    let path = if text.starts_with(b"\"") {
        unquote_c(text)
            .ok_or_else(|| BadPatch(format!("line {number}: badly quoted path")))?
            .0
    } else {
        let end = text.iter().position(|&b| b == b'\t').unwrap_or(text.len());
        let raw = &text[..end];
        // Some tools write `path<space><timestamp>`: only trailing blanks are trimmed.
        let raw = raw.trim_ascii_end();
        String::from_utf8(raw.to_vec())
            .map_err(|_| BadPatch(format!("line {number}: the path is not valid UTF-8")))?
    };
    if path.is_empty() {
        return Err(BadPatch(format!("line {number}: empty path")));
    }
    Ok(((path != "/dev/null").then_some(path), epoch))
}

/// Unquotes a C-style quoted string at the start of `text` (git's quoting): the string
/// and how many bytes it took.
fn unquote_c(text: &[u8]) -> Option<(String, usize)> {
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match *text.get(i)? {
            b'"' => return String::from_utf8(out).ok().map(|s| (s, i + 1)),
            b'\\' => {
                let c = *text.get(i + 1)?;
                i += 2;
                match c {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'\\' | b'"' => out.push(c),
                    b'0'..=b'7' => {
                        let digits = text.get(i - 1..i + 2)?;
                        let s = std::str::from_utf8(digits).ok()?;
                        out.push(u8::from_str_radix(s, 8).ok()?);
                        i += 2;
                    }
                    _ => return None,
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// Parses `@@ -a[,b] +c[,d] @@` and the hunk's lines, starting at `lines[start]`.
fn parse_hunk(lines: &[&[u8]], start: usize) -> Result<(Hunk, usize), BadPatch> {
    let number = start + 1;
    let header = std::str::from_utf8(trim_cr(lines[start]))
        .map_err(|_| BadPatch(format!("line {number}: unreadable hunk header")))?;
    let bad = || BadPatch(format!("line {number}: malformed hunk header `{header}`"));
    let inner = header
        .strip_prefix("@@ -")
        .and_then(|h| h.split_once(" @@"))
        .ok_or_else(bad)?
        .0;
    let (old, new) = inner.split_once(" +").ok_or_else(bad)?;
    let range = |r: &str| -> Option<(usize, usize)> {
        match r.split_once(',') {
            Some((s, l)) => Some((s.parse().ok()?, l.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (old_start, old_len) = range(old).ok_or_else(bad)?;
    let (new_start, new_len) = range(new).ok_or_else(bad)?;
    let mut hunk = Hunk {
        old_start,
        old_len,
        new_start,
        new_len,
        lines: Vec::new(),
        patch_line: number,
    };
    let (mut old_left, mut new_left) = (old_len, new_len);
    let mut i = start + 1;
    while old_left > 0 || new_left > 0 {
        let Some(&line) = lines.get(i) else {
            return Err(BadPatch(format!(
                "line {number}: hunk `{header}` ends early: {old_left} old and {new_left} new line(s) missing"
            )));
        };
        let with_newline = |body: &[u8]| {
            let mut v = body.to_vec();
            v.push(b'\n');
            v
        };
        match line.first() {
            Some(b' ') | None if old_left > 0 && new_left > 0 => {
                // An empty line is a context line whose leading space was trimmed.
                hunk.lines.push(HunkLine::Context(with_newline(
                    line.get(1..).unwrap_or(b""),
                )));
                old_left -= 1;
                new_left -= 1;
            }
            Some(b'-') if old_left > 0 => {
                hunk.lines.push(HunkLine::Remove(with_newline(&line[1..])));
                old_left -= 1;
            }
            Some(b'+') if new_left > 0 => {
                hunk.lines.push(HunkLine::Add(with_newline(&line[1..])));
                new_left -= 1;
            }
            Some(b'\\') => mark_no_newline(&mut hunk, i + 1)?,
            _ => {
                return Err(BadPatch(format!(
                    "line {}: unexpected line in hunk `{header}` ({old_left} old and {new_left} new line(s) still expected)",
                    i + 1
                )));
            }
        }
        i += 1;
    }
    if lines.get(i).is_some_and(|l| l.starts_with(b"\\")) {
        mark_no_newline(&mut hunk, i + 1)?;
        i += 1;
    }
    Ok((hunk, i))
}

fn mark_no_newline(hunk: &mut Hunk, number: usize) -> Result<(), BadPatch> {
    let last = hunk.lines.last_mut().ok_or_else(|| {
        BadPatch(format!(
            "line {number}: `\\ No newline` before any hunk line"
        ))
    })?;
    last.bytes_mut().pop();
    Ok(())
}

/// Strips `n` leading components of a patch path; `None` when there are not enough.
pub fn strip_path(path: &str, n: usize) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() <= n {
        return None;
    }
    let rest = parts[n..].join("/");
    Some(if path.starts_with('/') && n == 0 {
        format!("/{rest}")
    } else {
        rest
    })
}

/// Checks that a path stays inside the working directory: relative, no `..`, no
/// component that is a symbolic link, not a directory. Returns the normalised path.
pub fn check_path(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    let mut clean = PathBuf::new();
    for component in p.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{path}` contains a `..` component")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{path}` is absolute"));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(format!("`{path}` names no file"));
    }
    let mut prefix = PathBuf::new();
    let count = clean.components().count();
    for (n, component) in clean.components().enumerate() {
        prefix.push(component);
        let last = n + 1 == count;
        match fs::symlink_metadata(&prefix) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "`{path}` goes through the symbolic link `{}`",
                    prefix.display()
                ));
            }
            Ok(meta) if last && meta.is_dir() => return Err(format!("`{path}` is a directory")),
            Ok(meta) if !last && !meta.is_dir() => {
                return Err(format!(
                    "`{path}`: `{}` is not a directory",
                    prefix.display()
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => {
                return Err(format!(
                    "`{path}`: cannot inspect `{}`: {e}",
                    prefix.display()
                ));
            }
        }
    }
    Ok(clean)
}

/// Splits file bytes into lines, each with its `\n` (the last may lack it).
pub fn split_lines(content: &[u8]) -> Vec<&[u8]> {
    content.split_inclusive(|&b| b == b'\n').collect()
}

/// Where a hunk applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// 1-based line in the original file where the hunk's old lines start.
    pub line: usize,
    /// Lines away from where the header said (positive: further down).
    pub offset: isize,
}

/// Why a hunk does not apply (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HunkFailure {
    pub hunk: usize,
    pub header: String,
    pub reason: String,
}

/// Applies hunks to file content: the new content and where each hunk went.
pub fn apply_hunks(
    content: &[u8],
    hunks: &[Hunk],
) -> Result<(Vec<u8>, Vec<Placement>), HunkFailure> {
    let lines = split_lines(content);
    let mut out: Vec<u8> = Vec::with_capacity(content.len());
    let mut placements = Vec::new();
    let mut pos = 0usize;
    let mut drift: isize = 0;
    for (n, hunk) in hunks.iter().enumerate() {
        let old = hunk.old_lines();
        let stated = if hunk.old_len == 0 {
            hunk.old_start
        } else {
            hunk.old_start.saturating_sub(1)
        };
        let expected = (stated as isize + drift).clamp(pos as isize, lines.len() as isize) as usize;
        let fits = |at: usize| at >= pos && at + old.len() <= lines.len();
        let matches = |at: usize| {
            fits(at)
                && lines[at..at + old.len()]
                    .iter()
                    .zip(&old)
                    .all(|(a, b)| a == b)
        };
        let found = if old.is_empty() {
            Some(expected)
        } else {
            let mut found = None;
            let mut d = 0;
            while expected + d <= lines.len() || expected >= pos + d {
                if matches(expected + d) {
                    found = Some(expected + d);
                    break;
                }
                if d > 0 && expected >= d && matches(expected - d) {
                    found = Some(expected - d);
                    break;
                }
                d += 1;
            }
            found
        };
        let Some(at) = found else {
            let mut reason = explain_mismatch(&lines, expected, &old);
            let new = hunk.new_lines();
            let applied = !new.is_empty()
                && new.len() <= lines.len()
                && new != old
                && (0..=lines.len().saturating_sub(new.len())).any(|at| {
                    lines[at..at + new.len()]
                        .iter()
                        .zip(&new)
                        .all(|(a, b)| a == b)
                });
            if applied {
                reason.push_str("; the hunk's new lines are already in the file: was this patch applied before?");
            }
            return Err(HunkFailure {
                hunk: n + 1,
                header: hunk.header(),
                reason,
            });
        };
        for line in lines[pos..at].iter().copied().chain(hunk.new_lines()) {
            push_line(&mut out, line);
        }
        pos = at + old.len();
        let offset = at as isize - stated as isize;
        drift = offset;
        placements.push(Placement {
            line: at + 1,
            offset,
        });
    }
    for line in &lines[pos..] {
        push_line(&mut out, line);
    }
    Ok((out, placements))
}

/// Appends a line. A line without its newline ("\ No newline at end of file") gets one
/// when anything follows it, since it is no longer the last line.
fn push_line(out: &mut Vec<u8>, line: &[u8]) {
    if out.last().is_some_and(|&b| b != b'\n') {
        out.push(b'\n');
    }
    out.extend_from_slice(line);
}

fn show(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    match text.strip_suffix('\n') {
        Some(t) => format!("`{t}`"),
        None => format!("`{text}` (no newline at end of file)"),
    }
}

fn explain_mismatch(lines: &[&[u8]], expected: usize, old: &[&[u8]]) -> String {
    for (k, want) in old.iter().enumerate() {
        match lines.get(expected + k) {
            None => {
                return format!(
                    "the file has {} line(s); the hunk expects {} at line {} (and nowhere else matches)",
                    lines.len(),
                    show(want),
                    expected + k + 1
                );
            }
            Some(have) if have != want => {
                return format!(
                    "line {} is {} where the hunk expects {} (and no other place in the file matches all {} old line(s))",
                    expected + k + 1,
                    show(have),
                    show(want),
                    old.len()
                );
            }
            Some(_) => {}
        }
    }
    "the hunk's lines are not found in order after the previous hunk".into()
}

/// What one file will become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: PathBuf,
    /// Content before the patch (`None`: the file did not exist).
    pub before: Option<Vec<u8>>,
    /// Content after (`None`: the file is deleted).
    pub after: Option<Vec<u8>>,
    /// One summary line per hunk that did not apply exactly where stated.
    pub notes: Vec<String>,
    pub hunks: usize,
}

/// Why the patch was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// Exit 1.
    DoesNotApply(String),
    /// Exit 2.
    Bad(String),
}

/// Checks every section against the working directory (paths relative to it) and
/// computes the result of each file, writing nothing.
pub fn plan(files: &[FilePatch], strip: Option<usize>) -> Result<Vec<FileChange>, PatchError> {
    let mut changes: Vec<FileChange> = Vec::new();
    let mut index: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for file in files {
        let auto = file.git
            || (file.old_path.as_deref().is_none_or(|p| p.starts_with("a/"))
                && file.new_path.as_deref().is_none_or(|p| p.starts_with("b/")));
        let n = strip.unwrap_or(usize::from(auto));
        let resolve = |p: &Option<String>| -> Result<Option<PathBuf>, PatchError> {
            match p {
                None => Ok(None),
                Some(raw) => {
                    let stripped = strip_path(raw, n).ok_or_else(|| {
                        PatchError::Bad(format!(
                            "patch line {}: cannot strip {n} component(s) from `{raw}`",
                            file.patch_line
                        ))
                    })?;
                    let checked = check_path(&stripped).map_err(|e| {
                        PatchError::Bad(format!("patch line {}: refused path {e}", file.patch_line))
                    })?;
                    Ok(Some(checked))
                }
            }
        };
        let old = resolve(&file.old_path)?;
        let new = resolve(&file.new_path)?;
        let exists = |p: &PathBuf| match index.get(p) {
            Some(&k) => changes[k].after.is_some(),
            None => p.is_file(),
        };
        let target = match (&old, &new) {
            (None, Some(n)) | (Some(n), None) => n.clone(),
            (Some(o), Some(n)) => {
                if o != n && !exists(n) && exists(o) {
                    o.clone()
                } else {
                    n.clone()
                }
            }
            (None, None) => return Err(PatchError::Bad("a section has no path".into())),
        };
        let shown = target.display().to_string();
        let slot = match index.get(&target) {
            Some(&k) => k,
            None => {
                let before = match fs::read(&target) {
                    Ok(bytes) => Some(bytes),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(PatchError::Bad(format!("cannot read `{shown}`: {e}"))),
                };
                changes.push(FileChange {
                    path: target.clone(),
                    after: before.clone(),
                    before,
                    notes: Vec::new(),
                    hunks: 0,
                });
                index.insert(target.clone(), changes.len() - 1);
                changes.len() - 1
            }
        };
        let change = &mut changes[slot];
        // `diff -N` creates with an epoch timestamp; an existing empty file may be its target.
        let creating =
            old.is_none() || (file.old_epoch && change.after.as_ref().is_none_or(|b| b.is_empty()));
        let current = match (creating, &change.after) {
            (true, Some(bytes)) if !bytes.is_empty() || old.is_none() => {
                return Err(PatchError::DoesNotApply(format!(
                    "`{shown}`: the patch creates it, but it already exists"
                )));
            }
            (true, _) => Vec::new(),
            (false, None) => {
                return Err(PatchError::DoesNotApply(format!(
                    "`{shown}`: no such file to patch"
                )));
            }
            (false, Some(bytes)) => bytes.clone(),
        };
        let (result, placements) = apply_hunks(&current, &file.hunks).map_err(|f| {
            PatchError::DoesNotApply(format!(
                "`{shown}`: hunk #{} {} does not apply: {}",
                f.hunk, f.header, f.reason
            ))
        })?;
        for (k, placement) in placements.iter().enumerate() {
            if placement.offset != 0 {
                let lines = if placement.offset.abs() == 1 {
                    "line"
                } else {
                    "lines"
                };
                change.notes.push(format!(
                    "Hunk #{} succeeded at {} (offset {} {lines}).",
                    k + 1,
                    placement.line,
                    placement.offset
                ));
            }
        }
        change.hunks += file.hunks.len();
        change.after = if new.is_none() || (file.new_epoch && result.is_empty()) {
            if !result.is_empty() {
                return Err(PatchError::DoesNotApply(format!(
                    "`{shown}`: the patch deletes it, but {} byte(s) would remain",
                    result.len()
                )));
            }
            None
        } else {
            Some(result)
        };
    }
    Ok(changes)
}

/// Writes the planned changes; returns the summary lines written so far on error.
pub fn write_changes(changes: &[FileChange], log: &mut Vec<String>) -> io::Result<()> {
    for change in changes {
        let shown = change.path.display();
        match (&change.before, &change.after) {
            (Some(_), None) => {
                fs::remove_file(&change.path)?;
                log.push(format!("deleted {shown}"));
            }
            (before, Some(after)) if before.as_ref() != Some(after) || before.is_none() => {
                if let Some(parent) = change.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent)?;
                }
                fs::write(&change.path, after)?;
                let verb = if before.is_none() {
                    "created"
                } else {
                    "patched"
                };
                log.push(format!("{verb} {shown} ({} hunk(s))", change.hunks));
            }
            _ => log.push(format!("unchanged {shown}")),
        }
        log.extend(change.notes.iter().map(|n| format!("  {n}")));
    }
    Ok(())
}

fn describe(changes: &[FileChange]) -> Vec<String> {
    let mut out = Vec::new();
    for change in changes {
        let verb = match (&change.before, &change.after) {
            (Some(_), None) => "would delete",
            (None, Some(_)) => "would create",
            _ => "would patch",
        };
        out.push(format!(
            "{verb} {} ({} hunk(s))",
            change.path.display(),
            change.hunks
        ));
        out.extend(change.notes.iter().map(|n| format!("  {n}")));
    }
    out
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Apply(options)) => options,
        Err(message) => {
            eprintln!("apply-patch: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let patch = match &options.patch_file {
        Some(path) => fs::read(path).map_err(|e| format!("cannot read {path}: {e}")),
        None => {
            let mut buf = Vec::new();
            io::stdin()
                .read_to_end(&mut buf)
                .map(|_| buf)
                .map_err(|e| format!("cannot read standard input: {e}"))
        }
    };
    let patch = match patch {
        Ok(p) => p,
        Err(message) => {
            eprintln!("apply-patch: {message}");
            return ExitCode::from(2);
        }
    };
    let files = match parse_patch(&patch) {
        Ok(files) => files,
        Err(BadPatch(message)) => {
            eprintln!("apply-patch: bad patch: {message}");
            return ExitCode::from(2);
        }
    };
    let changes = match plan(&files, options.strip) {
        Ok(changes) => changes,
        Err(PatchError::DoesNotApply(message)) => {
            eprintln!("apply-patch: does not apply (nothing written): {message}");
            return ExitCode::from(1);
        }
        Err(PatchError::Bad(message)) => {
            eprintln!("apply-patch: refused (nothing written): {message}");
            return ExitCode::from(2);
        }
    };
    let hunks: usize = changes.iter().map(|c| c.hunks).sum();
    if options.check {
        for line in describe(&changes) {
            println!("{line}");
        }
        println!(
            "patch applies cleanly: {} file(s), {hunks} hunk(s); nothing written (--check)",
            changes.len()
        );
        return ExitCode::SUCCESS;
    }
    let mut log = Vec::new();
    let result = write_changes(&changes, &mut log);
    for line in &log {
        println!("{line}");
    }
    match result {
        Ok(()) => {
            println!("applied: {} file(s), {hunks} hunk(s)", changes.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "apply-patch: writing failed part-way: {e}; the files listed above were written"
            );
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn one_file(patch: &str) -> FilePatch {
        let mut files = parse_patch(patch.as_bytes()).unwrap();
        assert_eq!(files.len(), 1);
        files.remove(0)
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_args(&args(&["--check", "-p", "2", "x.diff"])).unwrap(),
            Command::Apply(Options {
                check: true,
                strip: Some(2),
                patch_file: Some("x.diff".into())
            })
        );
        assert_eq!(
            parse_args(&args(&["-p0", "-"])).unwrap(),
            Command::Apply(Options {
                check: false,
                strip: Some(0),
                patch_file: None
            })
        );
        assert!(parse_args(&args(&["-px"])).is_err());
        assert!(parse_args(&args(&["a", "b"])).is_err());
    }

    #[test]
    fn parses_git_diff_with_several_files() {
        let patch = "From 1234 Mon Sep 17 00:00:00 2001\nSubject: change\n\n\
diff --git a/src/a.txt b/src/a.txt\nindex 83db48f..bf269f4 100644\n--- a/src/a.txt\n+++ b/src/a.txt\n\
@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n\
diff --git a/new.txt b/new.txt\nnew file mode 100644\nindex 0000000..e69de29\n\
diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
        let files = parse_patch(patch.as_bytes()).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].old_path.as_deref(), Some("a/src/a.txt"));
        assert!(files[0].git);
        assert_eq!(files[0].hunks[0].lines.len(), 4);
        assert_eq!(files[1].old_path, None);
        assert_eq!(files[1].new_path.as_deref(), Some("b/new.txt"));
        assert!(files[1].hunks.is_empty());
        assert_eq!(files[2].new_path, None);
        assert_eq!(files[2].hunks[0].old_len, 1);
    }

    #[test]
    fn parses_plain_diff_u_with_timestamps_and_no_newline_marker() {
        let f = one_file(
            "--- f.txt\t2024-01-01 10:00:00.000000000 +0000\n+++ f.txt\t2024-01-02 10:00:00.000000000 +0000\n\
@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
        );
        assert_eq!(f.old_path.as_deref(), Some("f.txt"));
        assert!(!f.git);
        assert_eq!(
            f.hunks[0].lines,
            vec![
                HunkLine::Context(b"a\n".to_vec()),
                HunkLine::Remove(b"b".to_vec()),
                HunkLine::Add(b"b\n".to_vec())
            ]
        );
    }

    #[test]
    fn refuses_renames_binaries_and_junk() {
        let rename = "diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n";
        assert!(
            parse_patch(rename.as_bytes())
                .unwrap_err()
                .0
                .contains("renames")
        );
        let binary = "diff --git a/x b/x\nBinary files a/x and b/x differ\n";
        assert!(
            parse_patch(binary.as_bytes())
                .unwrap_err()
                .0
                .contains("binary")
        );
        assert!(
            parse_patch(b"hello\n")
                .unwrap_err()
                .0
                .contains("no file changes")
        );
        let short = "--- a\n+++ a\n@@ -1,3 +1,3 @@\n x\n";
        assert!(
            parse_patch(short.as_bytes())
                .unwrap_err()
                .0
                .contains("ends early")
        );
        let header = "--- a\n+++ a\n@@ -x +1 @@\n";
        assert!(
            parse_patch(header.as_bytes())
                .unwrap_err()
                .0
                .contains("malformed hunk header")
        );
    }

    #[test]
    fn unquotes_git_paths() {
        assert_eq!(
            unquote_c(b"\"a/sp ace\\t\\303\\251\" rest"),
            Some(("a/sp ace\t\u{e9}".to_string(), 20))
        );
        let f = one_file("--- \"a/x y\"\n+++ \"b/x y\"\n@@ -1 +1 @@\n-1\n+2\n");
        assert_eq!(f.new_path.as_deref(), Some("b/x y"));
    }

    #[test]
    fn strips_components() {
        assert_eq!(strip_path("a/src/x.rs", 1).as_deref(), Some("src/x.rs"));
        assert_eq!(strip_path("x.rs", 0).as_deref(), Some("x.rs"));
        assert_eq!(strip_path("x.rs", 1), None);
        assert_eq!(strip_path("/etc/passwd", 0).as_deref(), Some("/etc/passwd"));
    }

    #[test]
    fn checks_paths_stay_inside() {
        assert!(check_path("../x").unwrap_err().contains(".."));
        assert!(check_path("a/../../x").unwrap_err().contains(".."));
        assert!(check_path("/etc/passwd").unwrap_err().contains("absolute"));
        assert_eq!(check_path("./a/./b").unwrap(), PathBuf::from("a/b"));
        assert!(check_path(".").is_err());
    }

    #[test]
    fn applies_at_stated_line_and_with_offsets() {
        let f = one_file(
            "--- a\n+++ a\n@@ -2,3 +2,3 @@\n b\n-c\n+C\n d\n@@ -8,2 +8,3 @@\n h\n+h2\n i\n",
        );
        let (out, placements) = apply_hunks(b"a\nb\nc\nd\ne\nf\ng\nh\ni\n", &f.hunks).unwrap();
        assert_eq!(out, b"a\nb\nC\nd\ne\nf\ng\nh\nh2\ni\n");
        assert_eq!(
            placements,
            vec![
                Placement { line: 2, offset: 0 },
                Placement { line: 8, offset: 0 }
            ]
        );
        // Three lines inserted at the top: both hunks are found 3 lines further down.
        let (out, placements) =
            apply_hunks(b"x\ny\nz\na\nb\nc\nd\ne\nf\ng\nh\ni\n", &f.hunks).unwrap();
        assert_eq!(out, b"x\ny\nz\na\nb\nC\nd\ne\nf\ng\nh\nh2\ni\n");
        assert_eq!(
            placements,
            vec![
                Placement { line: 5, offset: 3 },
                Placement {
                    line: 11,
                    offset: 3
                }
            ]
        );
        // Lines removed above: found higher up.
        let (_, placements) = apply_hunks(b"b\nc\nd\ne\nf\ng\nh\ni\n", &f.hunks).unwrap();
        assert_eq!(
            placements[0],
            Placement {
                line: 1,
                offset: -1
            }
        );
    }

    #[test]
    fn reports_why_a_hunk_does_not_apply() {
        let f = one_file("--- a\n+++ a\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n");
        let err = apply_hunks(b"a\nX\n", &f.hunks).unwrap_err();
        assert_eq!(err.hunk, 1);
        assert!(
            err.reason
                .contains("line 2 is `X` where the hunk expects `b`"),
            "{}",
            err.reason
        );
        let err = apply_hunks(b"a\n", &f.hunks).unwrap_err();
        assert!(err.reason.contains("the file has 1 line"), "{}", err.reason);
        let err = apply_hunks(b"a\nB\n", &f.hunks).unwrap_err();
        assert!(err.reason.contains("applied before"), "{}", err.reason);
    }

    #[test]
    fn handles_missing_final_newline_both_ways() {
        let add_newline =
            one_file("--- a\n+++ a\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n");
        assert_eq!(apply_hunks(b"x", &add_newline.hunks).unwrap().0, b"x\n");
        // The old side says "no newline": a file that has one does not match.
        assert!(apply_hunks(b"x\n", &add_newline.hunks).is_err());
        // Lines inserted before the old content: the no-newline line is no longer last.
        let insert = one_file("--- a\n+++ a\n@@ -0,0 +1 @@\n+top\n\\ No newline at end of file\n");
        assert_eq!(apply_hunks(b"x\n", &insert.hunks).unwrap().0, b"top\nx\n");
        let drop_newline =
            one_file("--- a\n+++ a\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\\ No newline at end of file\n");
        assert_eq!(
            apply_hunks(b"a\nb\n", &drop_newline.hunks).unwrap().0,
            b"a\nc"
        );
    }

    #[test]
    fn plans_and_writes_in_a_directory_all_or_nothing() {
        let dir = std::env::temp_dir().join(format!("apply-patch-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("src")).unwrap();
        fs::write(dir.join("src/a.txt"), "one\ntwo\nthree\n").unwrap();
        fs::write(dir.join("gone.txt"), "bye\n").unwrap();
        fs::write(dir.join("keep.txt"), "same\n").unwrap();
        std::env::set_current_dir(&dir).unwrap();

        let good = "diff --git a/src/a.txt b/src/a.txt\n--- a/src/a.txt\n+++ b/src/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n\
--- /dev/null\n+++ b/new/dir/n.txt\n@@ -0,0 +1,2 @@\n+fresh\n+file\n\
--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
        let bad_second =
            format!("{good}--- a/keep.txt\n+++ b/keep.txt\n@@ -1 +1 @@\n-different\n+x\n");
        let files = parse_patch(bad_second.as_bytes()).unwrap();
        assert!(
            matches!(plan(&files, None), Err(PatchError::DoesNotApply(m)) if m.contains("keep.txt"))
        );

        let escape = "--- a/../outside.txt\n+++ b/../outside.txt\n@@ -0,0 +1 @@\n+x\n";
        let files = parse_patch(escape.as_bytes()).unwrap();
        assert!(matches!(plan(&files, None), Err(PatchError::Bad(m)) if m.contains("..")));

        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/tmp", dir.join("link")).unwrap();
            let through = "--- /dev/null\n+++ b/link/x.txt\n@@ -0,0 +1 @@\n+x\n";
            let files = parse_patch(through.as_bytes()).unwrap();
            assert!(
                matches!(plan(&files, None), Err(PatchError::Bad(m)) if m.contains("symbolic link"))
            );
        }

        let create_existing = "--- /dev/null\n+++ b/keep.txt\n@@ -0,0 +1 @@\n+x\n";
        let files = parse_patch(create_existing.as_bytes()).unwrap();
        assert!(
            matches!(plan(&files, None), Err(PatchError::DoesNotApply(m)) if m.contains("already exists"))
        );

        assert_eq!(
            fs::read_to_string("src/a.txt").unwrap(),
            "one\ntwo\nthree\n"
        );
        let files = parse_patch(good.as_bytes()).unwrap();
        let changes = plan(&files, None).unwrap();
        let mut log = Vec::new();
        write_changes(&changes, &mut log).unwrap();
        assert_eq!(
            fs::read_to_string("src/a.txt").unwrap(),
            "one\nTWO\nthree\n"
        );
        assert_eq!(
            fs::read_to_string("new/dir/n.txt").unwrap(),
            "fresh\nfile\n"
        );
        assert!(!Path::new("gone.txt").exists());
        assert_eq!(
            log,
            vec![
                "patched src/a.txt (1 hunk(s))",
                "created new/dir/n.txt (1 hunk(s))",
                "deleted gone.txt"
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
