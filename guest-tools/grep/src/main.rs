//! `grep`: searches files for lines matching a regular expression, recursively.
//!
//! ```text
//! grep [-i] [-n] [-l] [-c] [-w] [--max-count=N] [--include=GLOB]... [--] PATTERN [PATH...]
//! ```
//!
//! PATTERN is a regular expression in the syntax of the Rust `regex` crate (Perl-like, no
//! look-around or back-references). Each PATH is a file or a directory; directories are
//! searched recursively, entries in byte order of their names, so the output is the same
//! on every run. Symbolic links met while recursing are not followed (links named on the
//! command line are). The default PATH is `.`, whose files are printed without a `./`
//! prefix.
//!
//! Output: `path:text` per matching line, `path:N:text` with `-n`; `-l` prints each
//! matching file's path once, `-c` prints `path:count` for every file searched. Files
//! whose first 8 KiB contain a NUL byte are binary and are skipped silently. Lines that
//! are not valid UTF-8 are matched as bytes and printed with U+FFFD replacements.
//!
//! Options: `-i` ignore case, `-w` whole words only (the match must not touch a word
//! character on either side), `-m N`/`--max-count=N` stop a file after N matching lines,
//! `--include=GLOB` search only files whose name (or, when GLOB has a `/`, whose path
//! below the searched directory) matches GLOB (`*`, `?`, `[a-z]`, `[!a-z]`; repeatable).
//!
//! Exit codes (stable), as GNU grep:
//! - 0: at least one line matched;
//! - 1: no line matched;
//! - 2: an error (bad pattern, usage, unreadable path); matches found before are printed.
//!
//! This tool only reads. It must not write files.

use std::{
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Write},
    path::Path,
    process::ExitCode,
};

use regex::bytes::{Regex, RegexBuilder};

const USAGE: &str = "\
usage: grep [-i] [-n] [-l] [-c] [-w] [--max-count=N] [--include=GLOB]... [--] PATTERN [PATH...]

Searches files for lines matching PATTERN (a Rust `regex` regular expression). Directories
are searched recursively in sorted order; binary files are skipped. Default PATH: `.`.

  -i, --ignore-case         match case-insensitively
  -n, --line-number         print line numbers (path:N:text)
  -l, --files-with-matches  print only the paths of files that match
  -c, --count               print path:count for each file searched
  -w, --word-regexp         match whole words only
  -m N, --max-count=N       stop searching a file after N matching lines
      --include=GLOB        search only files whose name matches GLOB (repeatable)
  -h, --help                print this help

Exit: 0 a line matched, 1 no line matched, 2 error.
";

/// How many leading bytes are inspected for a NUL byte to call a file binary.
const BINARY_PROBE_BYTES: usize = 8 * 1024;

/// Caps the size of the compiled pattern so a hostile pattern cannot exhaust the
/// module's memory while compiling.
const REGEX_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// Parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub ignore_case: bool,
    pub line_number: bool,
    pub files_with_matches: bool,
    pub count: bool,
    pub word: bool,
    pub max_count: Option<u64>,
    pub include: Vec<String>,
    pub pattern: String,
    pub paths: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Search(Options),
}

/// Parses the arguments after argv[0]. Options may come before or after PATTERN, until
/// `--`; everything after `--` is PATTERN and PATHs.
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut o = Options::default();
    let mut positional = Vec::new();
    let mut i = 0;
    let mut only_positional = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if only_positional || arg == "-" || !arg.starts_with('-') {
            positional.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_positional = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let take_value = |i: &mut usize| -> Result<String, String> {
                if let Some(v) = value.clone() {
                    return Ok(v);
                }
                let v = args
                    .get(*i)
                    .cloned()
                    .ok_or(format!("option `--{name}` needs a value"))?;
                *i += 1;
                Ok(v)
            };
            match name {
                "help" => return Ok(Command::Help),
                "ignore-case" => o.ignore_case = true,
                "line-number" => o.line_number = true,
                "files-with-matches" => o.files_with_matches = true,
                "count" => o.count = true,
                "word-regexp" => o.word = true,
                "max-count" => o.max_count = Some(parse_count(&take_value(&mut i)?)?),
                "include" => o.include.push(take_value(&mut i)?),
                _ => return Err(format!("unknown option `--{name}`")),
            }
            continue;
        }
        let flags: Vec<char> = arg[1..].chars().collect();
        let mut k = 0;
        while k < flags.len() {
            match flags[k] {
                'i' => o.ignore_case = true,
                'n' => o.line_number = true,
                'l' => o.files_with_matches = true,
                'c' => o.count = true,
                'w' => o.word = true,
                'h' => return Ok(Command::Help),
                'm' => {
                    let rest: String = flags[k + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        let v = args.get(i).cloned().ok_or("option `-m` needs a value")?;
                        i += 1;
                        v
                    } else {
                        rest
                    };
                    o.max_count = Some(parse_count(&value)?);
                    break;
                }
                other => return Err(format!("unknown option `-{other}`")),
            }
            k += 1;
        }
    }
    let mut positional = positional.into_iter();
    o.pattern = positional.next().ok_or("missing PATTERN")?;
    o.paths = positional.collect();
    if o.paths.is_empty() {
        o.paths.push(".".to_string());
    }
    Ok(Command::Search(o))
}

fn parse_count(value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("invalid max count `{value}`: expected a whole number"))
}

/// Compiles PATTERN with the `-i` and `-w` options.
pub fn compile(o: &Options) -> Result<Regex, String> {
    let pattern = if o.word {
        format!(r"\b{{start-half}}(?:{})\b{{end-half}}", o.pattern)
    } else {
        o.pattern.clone()
    };
    RegexBuilder::new(&pattern)
        .case_insensitive(o.ignore_case)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid pattern: {e}"))
}

/// Matches `text` against a shell glob: `*` any run of characters, `?` one character,
/// `[abc]`, `[a-z]`, `[!a-z]` or `[^a-z]` a class, `\x` a literal `x`.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&g, &t)
}

fn glob_at(g: &[char], t: &[char]) -> bool {
    match g.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|skip| glob_at(&g[1..], &t[skip..])),
        Some('?') => !t.is_empty() && glob_at(&g[1..], &t[1..]),
        Some('[') => match (class_match(g, t.first().copied()), t.is_empty()) {
            (Some((true, len)), false) => glob_at(&g[len..], &t[1..]),
            (Some(_), _) => false,
            // An unclosed `[` is a literal.
            (None, _) => t.first() == Some(&'[') && glob_at(&g[1..], &t[1..]),
        },
        Some('\\') if g.len() > 1 => t.first() == Some(&g[1]) && glob_at(&g[2..], &t[1..]),
        Some(c) => t.first() == Some(c) && glob_at(&g[1..], &t[1..]),
    }
}

/// Matches a `[...]` class at the start of `g`: `Some((matched, class length))`, or
/// `None` when the class is not closed.
fn class_match(g: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(g.get(1), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let item = *g.get(i)?;
        if item == ']' && !first {
            break;
        }
        first = false;
        if g.get(i + 1) == Some(&'-') && g.get(i + 2).is_some_and(|&e| e != ']') {
            let end = g[i + 2];
            if c.is_some_and(|c| item <= c && c <= end) {
                matched = true;
            }
            i += 3;
        } else {
            if c == Some(item) {
                matched = true;
            }
            i += 1;
        }
    }
    Some((matched != negate, i + 1))
}

/// What a search found and printed.
#[derive(Debug, Default)]
pub struct Summary {
    pub matched: bool,
    pub errors: Vec<String>,
}

/// A searcher that writes its results to `out`.
pub struct Searcher<'a, W: Write> {
    pub options: &'a Options,
    pub regex: Regex,
    pub out: W,
    pub summary: Summary,
}

impl<'a, W: Write> Searcher<'a, W> {
    pub fn new(options: &'a Options, regex: Regex, out: W) -> Self {
        Searcher {
            options,
            regex,
            out,
            summary: Summary::default(),
        }
    }

    /// Searches every PATH of the options.
    pub fn run(&mut self) -> io::Result<()> {
        for path in &self.options.paths {
            self.search_root(path)?;
        }
        Ok(())
    }

    fn search_root(&mut self, root: &str) -> io::Result<()> {
        let meta = match fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                self.summary.errors.push(format!("{root}: {e}"));
                return Ok(());
            }
        };
        if meta.is_dir() {
            let shown = if root == "." {
                String::new()
            } else {
                root.to_string()
            };
            self.search_dir(Path::new(root), &shown, "")
        } else {
            let name = Path::new(root)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            if self.included(name.as_deref().unwrap_or(root), root) {
                self.search_file(Path::new(root), root)?;
            }
            Ok(())
        }
    }

    /// `shown` is how the directory is printed ("" for `.`), `relative` its path below
    /// the root (for `--include` globs with a `/`).
    fn search_dir(&mut self, dir: &Path, shown: &str, relative: &str) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.summary
                    .errors
                    .push(format!("{}: {e}", display(shown, dir)));
                return Ok(());
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => self
                    .summary
                    .errors
                    .push(format!("{}: {e}", display(shown, dir))),
            }
        }
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let name_text = name.to_string_lossy().into_owned();
            let path = dir.join(&name);
            let child_shown = join(shown, &name_text);
            let child_relative = join(relative, &name_text);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.summary.errors.push(format!("{child_shown}: {e}"));
                    continue;
                }
            };
            if meta.is_dir() {
                self.search_dir(&path, &child_shown, &child_relative)?;
            } else if meta.is_file() && self.included(&name_text, &child_relative) {
                self.search_file(&path, &child_shown)?;
            }
        }
        Ok(())
    }

    fn included(&self, name: &str, relative: &str) -> bool {
        self.options.include.is_empty()
            || self.options.include.iter().any(|glob| {
                if glob.contains('/') {
                    glob_match(glob, relative)
                } else {
                    glob_match(glob, name)
                }
            })
    }

    fn search_file(&mut self, path: &Path, shown: &str) -> io::Result<()> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.summary.errors.push(format!("{shown}: {e}"));
                return Ok(());
            }
        };
        match self.search_reader(file, shown) {
            Ok(()) => Ok(()),
            Err(SearchError::Read(e)) => {
                self.summary.errors.push(format!("{shown}: {e}"));
                Ok(())
            }
            Err(SearchError::Write(e)) => Err(e),
        }
    }

    /// Searches one input, printed as `shown`.
    pub fn search_reader(&mut self, reader: impl Read, shown: &str) -> Result<(), SearchError> {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let probe = reader.fill_buf().map_err(SearchError::Read)?;
        if probe[..probe.len().min(BINARY_PROBE_BYTES)].contains(&0) {
            return Ok(());
        }
        let o = self.options;
        let mut line = Vec::new();
        let mut number = 0u64;
        let mut count = 0u64;
        loop {
            if o.max_count.is_some_and(|max| count >= max) {
                break;
            }
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .map_err(SearchError::Read)?
                == 0
            {
                break;
            }
            number += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if !self.regex.is_match(text) {
                continue;
            }
            count += 1;
            self.summary.matched = true;
            if o.files_with_matches {
                writeln!(self.out, "{shown}").map_err(SearchError::Write)?;
                return Ok(());
            }
            if o.count {
                continue;
            }
            let text = String::from_utf8_lossy(text);
            if o.line_number {
                writeln!(self.out, "{shown}:{number}:{text}")
            } else {
                writeln!(self.out, "{shown}:{text}")
            }
            .map_err(SearchError::Write)?;
        }
        if o.count && !o.files_with_matches {
            writeln!(self.out, "{shown}:{count}").map_err(SearchError::Write)?;
        }
        Ok(())
    }
}

/// Why searching one input stopped.
#[derive(Debug)]
pub enum SearchError {
    /// The input could not be read: reported, the search goes on.
    Read(io::Error),
    /// The output could not be written: the search stops.
    Write(io::Error),
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

fn display(shown: &str, dir: &Path) -> String {
    if shown.is_empty() {
        dir.display().to_string()
    } else {
        shown.to_string()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Search(options)) => options,
        Err(message) => {
            eprintln!("grep: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let regex = match compile(&options) {
        Ok(regex) => regex,
        Err(message) => {
            eprintln!("grep: {message}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout().lock();
    let mut searcher = Searcher::new(&options, regex, io::BufWriter::new(stdout));
    let run = searcher.run().and_then(|()| searcher.out.flush());
    if let Err(e) = run {
        eprintln!("grep: cannot write output: {e}");
        return ExitCode::from(2);
    }
    for error in &searcher.summary.errors {
        eprintln!("grep: {error}");
    }
    if !searcher.summary.errors.is_empty() {
        ExitCode::from(2)
    } else if searcher.summary.matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn options(v: &[&str]) -> Options {
        match parse_args(&args(v)).unwrap() {
            Command::Search(o) => o,
            Command::Help => panic!("help"),
        }
    }

    fn search_text(v: &[&str], text: &str) -> (String, bool) {
        let o = options(v);
        let regex = compile(&o).unwrap();
        let mut s = Searcher::new(&o, regex, Vec::new());
        s.search_reader(text.as_bytes(), "f.txt").unwrap();
        (String::from_utf8(s.out).unwrap(), s.summary.matched)
    }

    #[test]
    fn parses_options_pattern_and_paths() {
        let o = options(&[
            "-in",
            "--max-count=3",
            "--include",
            "*.rs",
            "--",
            "-foo",
            "src",
            "b",
        ]);
        assert!(o.ignore_case && o.line_number);
        assert_eq!(o.max_count, Some(3));
        assert_eq!(o.include, vec!["*.rs"]);
        assert_eq!(o.pattern, "-foo");
        assert_eq!(o.paths, vec!["src", "b"]);
        let o = options(&["x", "-m2"]);
        assert_eq!(o.paths, vec!["."]);
        assert_eq!(o.max_count, Some(2));
        assert!(parse_args(&args(&["-q", "x"])).unwrap_err().contains("-q"));
        assert!(parse_args(&args(&["-n"])).unwrap_err().contains("PATTERN"));
        assert!(
            parse_args(&args(&["--max-count=x", "p"]))
                .unwrap_err()
                .contains("whole number")
        );
    }

    #[test]
    fn prints_matching_lines_with_and_without_numbers() {
        let text = "alpha\nbeta\nalphabet\n";
        assert_eq!(
            search_text(&["alpha"], text).0,
            "f.txt:alpha\nf.txt:alphabet\n"
        );
        assert_eq!(
            search_text(&["-n", "bet"], text).0,
            "f.txt:2:beta\nf.txt:3:alphabet\n"
        );
        assert_eq!(search_text(&["zzz"], text), (String::new(), false));
    }

    #[test]
    fn ignore_case_word_count_list_and_max_count() {
        let text = "Foo bar\nfoobar\nfoo\nFOO.\n";
        assert_eq!(
            search_text(&["-i", "-w", "-n", "foo"], text).0,
            "f.txt:1:Foo bar\nf.txt:3:foo\nf.txt:4:FOO.\n"
        );
        assert_eq!(search_text(&["-c", "-i", "foo"], text).0, "f.txt:4\n");
        assert_eq!(search_text(&["-c", "nothing"], text).0, "f.txt:0\n");
        assert_eq!(search_text(&["-l", "foo"], text).0, "f.txt\n");
        assert_eq!(
            search_text(&["-m", "1", "-n", "foo"], text).0,
            "f.txt:2:foobar\n"
        );
        assert_eq!(
            search_text(&["-c", "--max-count=1", "o"], text).0,
            "f.txt:1\n"
        );
    }

    #[test]
    fn word_option_handles_non_word_pattern_edges() {
        assert!(search_text(&["-w", "a.b"], "x a.b y\n").1);
        assert!(!search_text(&["-w", "a.b"], "xa.b\n").1);
    }

    #[test]
    fn skips_binary_and_replaces_invalid_utf8() {
        let o = options(&["x"]);
        let mut s = Searcher::new(&o, compile(&o).unwrap(), Vec::new());
        s.search_reader(&b"x\0x\n"[..], "bin").unwrap();
        s.search_reader(&b"x\xff\n"[..], "latin").unwrap();
        assert_eq!(String::from_utf8(s.out).unwrap(), "latin:x\u{fffd}\n");
    }

    #[test]
    fn bad_pattern_is_an_error() {
        assert!(
            compile(&options(&["("]))
                .unwrap_err()
                .contains("invalid pattern")
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.rs", "main.rs"));
        assert!(!glob_match("*.rs", "main.rs.bak"));
        assert!(glob_match("?.[ch]", "a.c"));
        assert!(!glob_match("?.[!ch]", "a.c"));
        assert!(glob_match("[a-c]*", "beta"));
        assert!(glob_match("src/*.rs", "src/lib.rs"));
        assert!(glob_match("\\*", "*"));
        assert!(glob_match("[", "["));
        assert!(glob_match("[]]", "]"));
    }

    #[test]
    fn searches_directories_recursively_in_sorted_order() {
        let dir = std::env::temp_dir().join(format!("grep-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        fs::write(dir.join("b.txt"), "needle b\n").unwrap();
        fs::write(dir.join("a.rs"), "needle a\nhay\n").unwrap();
        fs::write(dir.join("sub/z.txt"), "NEEDLE z\n").unwrap();
        fs::write(dir.join("sub/deeper/c.rs"), "x\nneedle c\n").unwrap();
        fs::write(dir.join("bin.dat"), b"needle\0").unwrap();
        let root = dir.to_string_lossy().into_owned();

        let o = options(&["-n", "-i", "needle", &root]);
        let mut s = Searcher::new(&o, compile(&o).unwrap(), Vec::new());
        s.run().unwrap();
        let out = String::from_utf8(s.out).unwrap().replace(&root, "R");
        assert_eq!(
            out,
            "R/a.rs:1:needle a\nR/b.txt:1:needle b\nR/sub/deeper/c.rs:2:needle c\nR/sub/z.txt:1:NEEDLE z\n"
        );

        let o = options(&["--include=*.rs", "-l", "needle", &root]);
        let mut s = Searcher::new(&o, compile(&o).unwrap(), Vec::new());
        s.run().unwrap();
        let out = String::from_utf8(s.out).unwrap().replace(&root, "R");
        assert_eq!(out, "R/a.rs\nR/sub/deeper/c.rs\n");

        let missing = dir.join("missing").to_string_lossy().into_owned();
        let o = options(&["needle", &missing]);
        let mut s = Searcher::new(&o, compile(&o).unwrap(), Vec::new());
        s.run().unwrap();
        assert_eq!(s.summary.errors.len(), 1);
        assert!(!s.summary.matched);
        fs::remove_dir_all(&dir).unwrap();
    }
}
