//! `wc`: counts lines, words, characters and bytes of files, like coreutils `wc`.
//!
//! ```text
//! wc [-l] [-w] [-m] [-c] [--json] [--] [PATH...]
//! ```
//!
//! Without a column flag it prints lines, words and bytes (coreutils' default); `-l`, `-w`,
//! `-m` (characters) and `-c` (bytes) pick columns, always printed in that order. Several
//! paths add a `total` line. No PATH, or `-`, reads standard input.
//!
//! Counting rules: a line is a `\n` byte; a word is a maximal run of characters that are
//! not whitespace (Unicode `White_Space`); characters are UTF-8 scalar values, and bytes
//! that are not valid UTF-8 count as word characters but not as characters. On UTF-8 text
//! the counts equal coreutils' in a UTF-8 locale; on binary data words and characters
//! may differ (coreutils treats non-printable bytes differently), lines and bytes never.
//!
//! `--json` prints one JSON object per line for each path,
//! `{"path": P, "lines": L, "words": W, "chars": M, "bytes": B}` (all four counts
//! whatever the column flags), and for several paths a last object with `"total": true`
//! and the summed counts.
//!
//! Exit codes (stable):
//! - 0: every path was counted;
//! - 1: at least one path could not be read (the others are still printed);
//! - 2: usage error (unknown option).
//!
//! This tool only reads. It must not write files.

use std::{
    fs::File,
    io::{self, Read, Write},
    process::ExitCode,
};

const USAGE: &str = "\
usage: wc [-l] [-w] [-m] [-c] [--json] [--] [PATH...]

Counts lines, words, characters and bytes of each PATH (standard input when no PATH or `-`).

  -l, --lines    print the line count
  -w, --words    print the word count
  -m, --chars    print the character count (UTF-8)
  -c, --bytes    print the byte count
      --json     print a JSON object per path (all counts) instead of columns
  -h, --help     print this help

Without -l/-w/-m/-c: lines, words and bytes. Several paths add a total.
Exit: 0 all counted, 1 a path could not be read, 2 usage error.
";

/// Counts of one input.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub lines: u64,
    pub words: u64,
    pub chars: u64,
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.lines += other.lines;
        self.words += other.words;
        self.chars += other.chars;
        self.bytes += other.bytes;
    }
}

/// A streaming counter: feed it chunks of any size, then `finish`.
#[derive(Debug, Default)]
pub struct Counter {
    counts: Counts,
    in_word: bool,
    /// The start of a UTF-8 sequence cut by the chunk boundary (at most 3 bytes).
    pending: Vec<u8>,
}

impl Counter {
    /// Counts one chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.counts.bytes += chunk.len() as u64;
        self.counts.lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            let mut v = std::mem::take(&mut self.pending);
            v.extend_from_slice(chunk);
            joined = v;
            &joined
        };
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.text(text);
                    return;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid_up_to` guarantees this prefix is valid UTF-8.
                    if let Ok(text) = std::str::from_utf8(valid) {
                        self.text(text);
                    }
                    match e.error_len() {
                        Some(n) => {
                            self.invalid();
                            rest = &after[n..];
                        }
                        None => {
                            // An incomplete sequence at the end: wait for the next chunk.
                            self.pending = after.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn text(&mut self, text: &str) {
        for c in text.chars() {
            self.counts.chars += 1;
            if c.is_whitespace() {
                self.in_word = false;
            } else if !self.in_word {
                self.in_word = true;
                self.counts.words += 1;
            }
        }
    }

    /// Bytes that are not UTF-8: part of a word, not characters.
    fn invalid(&mut self) {
        if !self.in_word {
            self.in_word = true;
            self.counts.words += 1;
        }
    }

    /// The counts, after the last chunk.
    pub fn finish(mut self) -> Counts {
        if !self.pending.is_empty() {
            self.invalid();
        }
        self.counts
    }
}

/// Counts everything a reader yields.
pub fn count_reader(mut reader: impl Read) -> io::Result<Counts> {
    let mut counter = Counter::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        counter.feed(&buf[..n]);
    }
    Ok(counter.finish())
}

/// Which columns to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    pub lines: bool,
    pub words: bool,
    pub chars: bool,
    pub bytes: bool,
}

/// Parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub columns: Columns,
    pub json: bool,
    pub paths: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Count(Options),
}

/// Parses the arguments after argv[0].
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut columns = Columns {
        lines: false,
        words: false,
        chars: false,
        bytes: false,
    };
    let mut json = false;
    let mut paths = Vec::new();
    let mut only_paths = false;
    for arg in args {
        if only_paths || arg == "-" || !arg.starts_with('-') {
            paths.push(arg.clone());
            continue;
        }
        match arg.as_str() {
            "--" => only_paths = true,
            "--help" => return Ok(Command::Help),
            "--json" => json = true,
            "--lines" => columns.lines = true,
            "--words" => columns.words = true,
            "--chars" => columns.chars = true,
            "--bytes" => columns.bytes = true,
            long if long.starts_with("--") => return Err(format!("unknown option `{long}`")),
            short => {
                for flag in short[1..].chars() {
                    match flag {
                        'l' => columns.lines = true,
                        'w' => columns.words = true,
                        'm' => columns.chars = true,
                        'c' => columns.bytes = true,
                        'h' => return Ok(Command::Help),
                        other => return Err(format!("unknown option `-{other}`")),
                    }
                }
            }
        }
    }
    if !(columns.lines || columns.words || columns.chars || columns.bytes) {
        columns = Columns {
            lines: true,
            words: true,
            chars: false,
            bytes: true,
        };
    }
    if paths.is_empty() {
        paths.push("-".to_string());
    }
    Ok(Command::Count(Options {
        columns,
        json,
        paths,
    }))
}

/// One path's result.
pub type Row = (String, Result<Counts, String>);

/// Counts each path (`-` is standard input).
pub fn count_paths(paths: &[String], stdin: impl Read) -> Vec<Row> {
    let mut stdin = Some(stdin);
    paths
        .iter()
        .map(|path| {
            let result = if path == "-" {
                match stdin.take() {
                    Some(input) => count_reader(input).map_err(|e| e.to_string()),
                    None => Ok(Counts::default()),
                }
            } else {
                count_file(path)
            };
            (path.clone(), result)
        })
        .collect()
}

fn count_file(path: &str) -> Result<Counts, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("Is a directory".to_string());
    }
    let file = File::open(path).map_err(|e| e.to_string())?;
    count_reader(file).map_err(|e| e.to_string())
}

/// Renders the rows as columns (coreutils layout: right-aligned to the widest number).
pub fn render_columns(rows: &[Row], columns: Columns) -> String {
    let ok: Vec<(&str, Counts)> = rows
        .iter()
        .filter_map(|(p, r)| r.as_ref().ok().map(|c| (p.as_str(), *c)))
        .collect();
    let mut total = Counts::default();
    for (_, c) in &ok {
        total.add(c);
    }
    let mut lines: Vec<(String, Counts)> = ok.iter().map(|(p, c)| (p.to_string(), *c)).collect();
    if rows.len() > 1 {
        lines.push(("total".to_string(), total));
    }
    let pick = |c: &Counts| {
        let mut v = Vec::new();
        if columns.lines {
            v.push(c.lines);
        }
        if columns.words {
            v.push(c.words);
        }
        if columns.chars {
            v.push(c.chars);
        }
        if columns.bytes {
            v.push(c.bytes);
        }
        v
    };
    let width = lines
        .iter()
        .flat_map(|(_, c)| pick(c))
        .map(|n| n.to_string().len())
        .max()
        .unwrap_or(1);
    let mut out = String::new();
    for (path, counts) in &lines {
        let numbers: Vec<String> = pick(counts)
            .iter()
            .map(|n| format!("{n:>width$}"))
            .collect();
        out.push_str(&numbers.join(" "));
        if path != "-" {
            out.push(' ');
            out.push_str(path);
        }
        out.push('\n');
    }
    out
}

fn counts_json(counts: &Counts) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("lines".into(), counts.lines.into());
    m.insert("words".into(), counts.words.into());
    m.insert("chars".into(), counts.chars.into());
    m.insert("bytes".into(), counts.bytes.into());
    m
}

/// Renders the rows as JSON lines.
pub fn render_json(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut total = Counts::default();
    for (path, result) in rows {
        if let Ok(counts) = result {
            total.add(counts);
            let mut m = serde_json::Map::new();
            m.insert("path".into(), path.clone().into());
            m.extend(counts_json(counts));
            out.push_str(&serde_json::Value::Object(m).to_string());
            out.push('\n');
        }
    }
    if rows.len() > 1 {
        let mut m = serde_json::Map::new();
        m.insert("total".into(), true.into());
        m.extend(counts_json(&total));
        out.push_str(&serde_json::Value::Object(m).to_string());
        out.push('\n');
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
        Ok(Command::Count(options)) => options,
        Err(message) => {
            eprintln!("wc: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rows = count_paths(&options.paths, io::stdin().lock());
    let mut failed = false;
    for (path, result) in &rows {
        if let Err(message) = result {
            eprintln!("wc: {path}: {message}");
            failed = true;
        }
    }
    let text = if options.json {
        render_json(&rows)
    } else {
        render_columns(&rows, options.columns)
    };
    if io::stdout().lock().write_all(text.as_bytes()).is_err() {
        return ExitCode::from(1);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn count(bytes: &[u8]) -> Counts {
        count_reader(bytes).unwrap()
    }

    #[test]
    fn counts_like_coreutils() {
        assert_eq!(
            count(b"hello world\nsecond  line here\n"),
            Counts {
                lines: 2,
                words: 5,
                chars: 30,
                bytes: 30
            }
        );
        assert_eq!(count(b""), Counts::default());
        assert_eq!(
            count(b"no newline"),
            Counts {
                lines: 0,
                words: 2,
                chars: 10,
                bytes: 10
            }
        );
    }

    #[test]
    fn counts_utf8_characters_and_unicode_spaces() {
        // "héllo wörld" + NO-BREAK SPACE is whitespace in Unicode.
        let text = "héllo\u{00a0}wörld\n";
        let c = count(text.as_bytes());
        assert_eq!(c.chars, 12);
        assert_eq!(c.bytes, text.len() as u64);
        assert_eq!(c.words, 2);
    }

    #[test]
    fn invalid_utf8_counts_as_word_not_char() {
        let c = count(b"a \xff\xfe b\n");
        assert_eq!(c.words, 3);
        assert_eq!(c.chars, 5); // a, space, space, b, newline
        assert_eq!(c.bytes, 7);
    }

    #[test]
    fn sequences_split_across_chunks_are_whole_characters() {
        let text = "ab€cd ✓\n".as_bytes();
        for cut in 0..text.len() {
            let mut counter = Counter::default();
            counter.feed(&text[..cut]);
            counter.feed(&text[cut..]);
            let c = counter.finish();
            assert_eq!(c, count(text), "cut at {cut}");
            assert_eq!(c.chars, 8);
            assert_eq!(c.words, 2);
        }
    }

    #[test]
    fn truncated_sequence_at_end_is_a_word() {
        let c = count(b"x \xe2\x82");
        assert_eq!(c.words, 2);
        assert_eq!(c.chars, 2);
    }

    #[test]
    fn parses_flags_and_defaults() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match parse_args(&args(&["a.txt"])).unwrap() {
            Command::Count(o) => {
                assert_eq!(
                    o.columns,
                    Columns {
                        lines: true,
                        words: true,
                        chars: false,
                        bytes: true
                    }
                );
                assert_eq!(o.paths, vec!["a.txt"]);
            }
            other => panic!("{other:?}"),
        }
        match parse_args(&args(&["-lm", "--json", "--", "-odd"])).unwrap() {
            Command::Count(o) => {
                assert_eq!(
                    o.columns,
                    Columns {
                        lines: true,
                        words: false,
                        chars: true,
                        bytes: false
                    }
                );
                assert!(o.json);
                assert_eq!(o.paths, vec!["-odd"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_args(&args(&[])).unwrap(),
            Command::Count(Options {
                columns: Columns {
                    lines: true,
                    words: true,
                    chars: false,
                    bytes: true
                },
                json: false,
                paths: vec!["-".into()],
            })
        );
        assert!(parse_args(&args(&["-x"])).unwrap_err().contains("-x"));
        assert_eq!(parse_args(&args(&["--help"])).unwrap(), Command::Help);
    }

    #[test]
    fn renders_columns_with_total() {
        let rows: Vec<Row> = vec![
            (
                "a".into(),
                Ok(Counts {
                    lines: 1,
                    words: 2,
                    chars: 10,
                    bytes: 10,
                }),
            ),
            (
                "b".into(),
                Ok(Counts {
                    lines: 100,
                    words: 3,
                    chars: 5,
                    bytes: 5,
                }),
            ),
        ];
        let all = Columns {
            lines: true,
            words: true,
            chars: false,
            bytes: true,
        };
        assert_eq!(
            render_columns(&rows, all),
            "  1   2  10 a\n100   3   5 b\n101   5  15 total\n"
        );
    }

    #[test]
    fn renders_json_per_path_and_total() {
        let rows: Vec<Row> = vec![
            (
                "a".into(),
                Ok(Counts {
                    lines: 1,
                    words: 2,
                    chars: 3,
                    bytes: 4,
                }),
            ),
            ("missing".into(), Err("No such file or directory".into())),
        ];
        assert_eq!(
            render_json(&rows),
            "{\"path\":\"a\",\"lines\":1,\"words\":2,\"chars\":3,\"bytes\":4}\n\
             {\"total\":true,\"lines\":1,\"words\":2,\"chars\":3,\"bytes\":4}\n"
        );
    }

    #[test]
    fn counts_files_and_reports_unreadable_ones() {
        let dir = std::env::temp_dir().join(format!("wc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f.txt");
        std::fs::write(&file, "one two\nthree\n").unwrap();
        let paths = vec![
            file.to_string_lossy().into_owned(),
            dir.join("missing").to_string_lossy().into_owned(),
            dir.to_string_lossy().into_owned(),
        ];
        let rows = count_paths(&paths, &b""[..]);
        assert_eq!(
            rows[0].1,
            Ok(Counts {
                lines: 2,
                words: 3,
                chars: 14,
                bytes: 14
            })
        );
        assert!(rows[1].1.is_err());
        assert_eq!(rows[2].1, Err("Is a directory".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
