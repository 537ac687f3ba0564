//! `csv-dedupe`: drops malformed and duplicate rows from a CSV file, and says what it
//! dropped.
//!
//! ```text
//! csv-dedupe [--key=COL,...]... [--no-header] [--] INPUT OUTPUT
//! ```
//!
//! INPUT is read as RFC 4180 CSV: fields separated by `,`, records ended by LF or CRLF,
//! fields in double quotes may hold commas, line breaks and doubled quotes (`""`). A
//! double quote inside an unquoted field is kept as a literal character. A UTF-8
//! byte-order mark at the start is dropped. Blank lines are skipped and not counted.
//!
//! The first record is the header (unless `--no-header`); it is written to OUTPUT as is
//! and not counted as a row. Every other record is a row and is, in this order:
//! - malformed, and dropped, when a quoted field is never closed or text follows its
//!   closing quote (the row then ends at the end of the line where that quote opened, and
//!   reading goes on at the next line: a stray opening quote costs one row, not the rest
//!   of the file), when it is not valid UTF-8, or when its field count differs from the
//!   header's (from the first well-formed row's with `--no-header`);
//! - a duplicate, and dropped, when an earlier kept row has the same fields (all fields,
//!   or only the `--key` columns: header names, or 1-based numbers with `--no-header`);
//!   fields are compared after unquoting, so `"a",b` and `a,b` are the same row;
//! - kept otherwise, and written to OUTPUT.
//!
//! OUTPUT is written as RFC 4180 CSV: a field is quoted only when it holds a comma, a
//! quote or a line break; records end with CRLF when the header did, LF otherwise.
//! OUTPUT may be INPUT (the input is read whole before anything is written); missing
//! parent directories of OUTPUT are created.
//!
//! On success a JSON report goes to stdout, one line:
//! `{"rows_in":N,"kept":N,"duplicates":N,"malformed":N,"malformed_lines":[...]}`, where
//! `rows_in = kept + duplicates + malformed` and `malformed_lines` holds the 1-based line
//! numbers where the first 10 malformed rows start.
//!
//! Exit codes (stable):
//! - 0: OUTPUT written (even when rows were dropped);
//! - 1: INPUT could not be read, its header is malformed or missing, or OUTPUT could not
//!   be written;
//! - 2: usage error (bad option, unknown or ambiguous key column).
//!
//! This tool reads INPUT and writes OUTPUT only. It must not touch other files.

use std::{collections::HashSet, process::ExitCode};

const USAGE: &str = "\
usage: csv-dedupe [--key=COL,...]... [--no-header] [--] INPUT OUTPUT

Reads the CSV file INPUT (RFC 4180), drops malformed rows (unterminated quotes, invalid
UTF-8, wrong field count) and duplicate rows (first occurrence kept), writes OUTPUT and
prints a JSON report: {\"rows_in\", \"kept\", \"duplicates\", \"malformed\", \"malformed_lines\"}.

      --key=COL,...  rows are duplicates when these columns are equal (header names, or
                     1-based numbers with --no-header); default: all columns
      --no-header    the first record is a row, not a header
  -h, --help         print this help

Exit: 0 written, 1 unreadable input, malformed header or unwritable output, 2 usage error.
";

/// How many malformed line numbers the report lists.
const MALFORMED_LINES_SHOWN: usize = 10;

/// Parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub keys: Vec<String>,
    pub no_header: bool,
    pub input: String,
    pub output: String,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Dedupe(Options),
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
        match arg.as_str() {
            "--" => only_positional = true,
            "-h" | "--help" => return Ok(Command::Help),
            "--no-header" => o.no_header = true,
            "--key" => {
                let value = args.get(i).ok_or("option `--key` needs a value")?;
                i += 1;
                push_keys(&mut o.keys, value)?;
            }
            other => match other.strip_prefix("--key=") {
                Some(value) => push_keys(&mut o.keys, value)?,
                None => return Err(format!("unknown option `{other}`")),
            },
        }
    }
    let [input, output]: [String; 2] = positional
        .try_into()
        .map_err(|p: Vec<String>| format!("expected INPUT and OUTPUT, got {} path(s)", p.len()))?;
    o.input = input;
    o.output = output;
    Ok(Command::Dedupe(o))
}

fn push_keys(keys: &mut Vec<String>, value: &str) -> Result<(), String> {
    for key in value.split(',') {
        if key.is_empty() {
            return Err(format!("empty column name in `--key={value}`"));
        }
        keys.push(key.to_string());
    }
    Ok(())
}

/// Why a record is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    UnterminatedQuote,
    TextAfterQuote,
    InvalidUtf8,
    FieldCount { expected: usize, found: usize },
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::UnterminatedQuote => write!(f, "a quoted field is never closed"),
            Malformed::TextAfterQuote => write!(f, "text follows a closing quote"),
            Malformed::InvalidUtf8 => write!(f, "not valid UTF-8"),
            Malformed::FieldCount { expected, found } => {
                write!(f, "{found} fields where the header has {expected}")
            }
        }
    }
}

/// One record as read: where it starts, and its fields or why it is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number where the record starts.
    pub line: usize,
    pub fields: Result<Vec<String>, Malformed>,
    /// True when the record ended with CRLF.
    pub crlf: bool,
}

/// Splits CSV bytes into records (RFC 4180), recovering after malformed ones.
pub fn read_records(data: &[u8]) -> Vec<Record> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let mut records = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    while pos < data.len() {
        // Blank lines are skipped.
        if data[pos] == b'\n' {
            pos += 1;
            line += 1;
            continue;
        }
        if data[pos..].starts_with(b"\r\n") {
            pos += 2;
            line += 1;
            continue;
        }
        let (record, next_pos, next_line) = read_record(data, pos, line);
        records.push(record);
        pos = next_pos;
        line = next_line;
    }
    records
}

/// Position just after the end of the physical line holding `pos`, and how many line
/// breaks were crossed to get there from `from`.
fn skip_line(data: &[u8], from: usize, pos: usize) -> (usize, usize) {
    let end = match data[pos..].iter().position(|&b| b == b'\n') {
        Some(n) => pos + n + 1,
        None => data.len(),
    };
    let lines = data[from..end].iter().filter(|&&b| b == b'\n').count();
    (end, lines)
}

fn read_record(data: &[u8], start: usize, line: usize) -> (Record, usize, usize) {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    let mut i = start;
    let malformed = |why: Malformed, at: usize| {
        let (next, crossed) = skip_line(data, start, at);
        (
            Record {
                line,
                fields: Err(why),
                crlf: false,
            },
            next,
            line + crossed.max(1),
        )
    };
    loop {
        let mut field = Vec::new();
        if data.get(i) == Some(&b'"') {
            let open = i;
            i += 1;
            loop {
                match data.get(i) {
                    None => return malformed(Malformed::UnterminatedQuote, open),
                    Some(b'"') if data.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        field.push(b);
                        i += 1;
                    }
                }
            }
            match data.get(i) {
                None | Some(b',') | Some(b'\n') => {}
                Some(b'\r') if data.get(i + 1) == Some(&b'\n') => {}
                Some(_) => return malformed(Malformed::TextAfterQuote, open),
            }
        } else {
            while let Some(&b) = data.get(i) {
                if b == b',' || b == b'\n' || (b == b'\r' && data.get(i + 1) == Some(&b'\n')) {
                    break;
                }
                field.push(b);
                i += 1;
            }
        }
        fields.push(field);
        match data.get(i) {
            Some(b',') => i += 1,
            end => {
                let crlf = end == Some(&b'\r');
                let next = match end {
                    None => i,
                    Some(b'\r') => i + 2,
                    Some(_) => i + 1,
                };
                let crossed = data[start..next].iter().filter(|&&b| b == b'\n').count();
                let fields = fields
                    .into_iter()
                    .map(String::from_utf8)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| Malformed::InvalidUtf8);
                return (Record { line, fields, crlf }, next, line + crossed);
            }
        }
    }
}

/// Writes one record as RFC 4180 CSV.
pub fn write_record(out: &mut Vec<u8>, fields: &[String], crlf: bool) {
    // A lone empty field is written `""`: an empty line would read back as a blank line.
    if let [only] = fields
        && only.is_empty()
    {
        out.extend_from_slice(if crlf { b"\"\"\r\n" } else { b"\"\"\n" });
        return;
    }
    for (n, field) in fields.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push(b'"');
            out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(field.as_bytes());
        }
    }
    out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
}

/// The report printed on stdout.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub rows_in: u64,
    pub kept: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub malformed_lines: Vec<usize>,
}

impl Report {
    pub fn to_json(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert("rows_in".into(), self.rows_in.into());
        m.insert("kept".into(), self.kept.into());
        m.insert("duplicates".into(), self.duplicates.into());
        m.insert("malformed".into(), self.malformed.into());
        m.insert(
            "malformed_lines".into(),
            self.malformed_lines.clone().into(),
        );
        serde_json::Value::Object(m).to_string()
    }
}

/// Why a run failed.
#[derive(Debug, PartialEq, Eq)]
pub enum DedupeError {
    /// Exit 1: the input cannot be used.
    Input(String),
    /// Exit 2: the key columns do not fit the input.
    Usage(String),
}

/// Cleans CSV bytes: the output bytes and the report.
pub fn dedupe(
    data: &[u8],
    keys: &[String],
    no_header: bool,
) -> Result<(Vec<u8>, Report), DedupeError> {
    let mut records = read_records(data).into_iter();
    let mut out = Vec::new();
    let mut report = Report::default();
    let mut expected: Option<usize> = None;
    let mut crlf = false;
    let mut key_columns: Option<Vec<usize>> = None;
    if !no_header {
        let header = records.next().ok_or_else(|| {
            DedupeError::Input(
                "the input is empty: no header row (use --no-header for headerless CSV)".into(),
            )
        })?;
        let names = header.fields.map_err(|why| {
            DedupeError::Input(format!(
                "the header (line {}) is malformed: {why}; fix it, or use --no-header",
                header.line
            ))
        })?;
        crlf = header.crlf;
        expected = Some(names.len());
        if !keys.is_empty() {
            key_columns = Some(resolve_named_keys(keys, &names)?);
        }
        write_record(&mut out, &names, crlf);
    } else if !keys.is_empty() {
        key_columns = Some(resolve_numbered_keys(keys)?);
    }
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    let mut first_row = true;
    for record in records {
        report.rows_in += 1;
        if no_header && first_row && record.fields.is_ok() {
            crlf = record.crlf;
        }
        let fields = record.fields.and_then(|fields| {
            let expected = *expected.get_or_insert(fields.len());
            if fields.len() == expected {
                Ok(fields)
            } else {
                Err(Malformed::FieldCount {
                    expected,
                    found: fields.len(),
                })
            }
        });
        let fields = match fields {
            Ok(fields) => fields,
            Err(_) => {
                report.malformed += 1;
                if report.malformed_lines.len() < MALFORMED_LINES_SHOWN {
                    report.malformed_lines.push(record.line);
                }
                continue;
            }
        };
        first_row = false;
        let key = match &key_columns {
            Some(columns) => columns
                .iter()
                .map(|&c| fields.get(c).cloned().unwrap_or_default())
                .collect(),
            None => fields.clone(),
        };
        if !seen.insert(key) {
            report.duplicates += 1;
            continue;
        }
        report.kept += 1;
        write_record(&mut out, &fields, crlf);
    }
    if let (Some(columns), Some(expected)) = (&key_columns, expected)
        && let Some(&bad) = columns.iter().find(|&&c| c >= expected)
    {
        return Err(DedupeError::Usage(format!(
            "key column {} is past the last column ({expected})",
            bad + 1
        )));
    }
    Ok((out, report))
}

fn resolve_named_keys(keys: &[String], names: &[String]) -> Result<Vec<usize>, DedupeError> {
    keys.iter()
        .map(|key| {
            let hits: Vec<usize> = names
                .iter()
                .enumerate()
                .filter(|(_, n)| *n == key)
                .map(|(i, _)| i)
                .collect();
            match hits.as_slice() {
                [one] => Ok(*one),
                [] => Err(DedupeError::Usage(format!(
                    "no column `{key}` in the header; the columns are: {}",
                    names.join(", ")
                ))),
                _ => Err(DedupeError::Usage(format!(
                    "column `{key}` appears {} times in the header; name a unique column",
                    hits.len()
                ))),
            }
        })
        .collect()
}

fn resolve_numbered_keys(keys: &[String]) -> Result<Vec<usize>, DedupeError> {
    keys.iter()
        .map(|key| match key.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n - 1),
            _ => Err(DedupeError::Usage(format!(
                "with --no-header, key columns are 1-based numbers, not `{key}`"
            ))),
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Dedupe(options)) => options,
        Err(message) => {
            eprintln!("csv-dedupe: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let data = match std::fs::read(&options.input) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("csv-dedupe: cannot read {}: {e}", options.input);
            return ExitCode::from(1);
        }
    };
    let (out, report) = match dedupe(&data, &options.keys, options.no_header) {
        Ok(result) => result,
        Err(DedupeError::Input(message)) => {
            eprintln!("csv-dedupe: {}: {message}", options.input);
            return ExitCode::from(1);
        }
        Err(DedupeError::Usage(message)) => {
            eprintln!("csv-dedupe: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(parent) = std::path::Path::new(&options.output).parent()
        && !parent.as_os_str().is_empty()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        eprintln!(
            "csv-dedupe: cannot create the directory of {}: {e}",
            options.output
        );
        return ExitCode::from(1);
    }
    if let Err(e) = std::fs::write(&options.output, &out) {
        eprintln!("csv-dedupe: cannot write {}: {e}", options.output);
        return ExitCode::from(1);
    }
    println!("{}", report.to_json());
    ExitCode::SUCCESS
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn fields(v: &[&str]) -> Result<Vec<String>, Malformed> {
        Ok(v.iter().map(|s| s.to_string()).collect())
    }

    fn run(data: &[u8], keys: &[&str], no_header: bool) -> (String, Report) {
        let keys: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
        let (out, report) = dedupe(data, &keys, no_header).unwrap();
        (String::from_utf8(out).unwrap(), report)
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_args(&args(&[
                "--key=a,b",
                "--key",
                "c",
                "--no-header",
                "--",
                "-in.csv",
                "out.csv"
            ]))
            .unwrap(),
            Command::Dedupe(Options {
                keys: vec!["a".into(), "b".into(), "c".into()],
                no_header: true,
                input: "-in.csv".into(),
                output: "out.csv".into(),
            })
        );
        assert!(
            parse_args(&args(&["in.csv"]))
                .unwrap_err()
                .contains("got 1")
        );
        assert!(
            parse_args(&args(&["--key=a,,b", "i", "o"]))
                .unwrap_err()
                .contains("empty column")
        );
        assert!(parse_args(&args(&["--bogus", "i", "o"])).is_err());
    }

    #[test]
    fn reads_rfc4180_quotes_newlines_and_crlf() {
        let data = b"a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",2\r\n,\r\n";
        let records = read_records(data);
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].fields, fields(&["a", "b"]));
        assert!(records[0].crlf);
        assert_eq!(records[1].fields, fields(&["x,1", "say \"hi\""]));
        assert_eq!(records[2].fields, fields(&["multi\nline", "2"]));
        assert_eq!(records[2].line, 3);
        assert_eq!(records[3].fields, fields(&["", ""]));
        assert_eq!(records[3].line, 5);
    }

    #[test]
    fn recovers_after_unterminated_quote_and_text_after_quote() {
        let data = b"h1,h2\n\"open,1\nok,2\n\"x\"y,3\nlast,4";
        let records = read_records(data);
        // The stray quote on line 2 closes at the quote on line 4: reading resumes on line 3.
        assert_eq!(records[1].fields, Err(Malformed::TextAfterQuote));
        assert_eq!(records[1].line, 2);
        assert_eq!(records[2].fields, fields(&["ok", "2"]));
        assert_eq!(records[2].line, 3);
        assert_eq!(records[3].fields, Err(Malformed::TextAfterQuote));
        assert_eq!(records[4].fields, fields(&["last", "4"]));
        assert_eq!(records[4].line, 5);
    }

    #[test]
    fn quote_open_at_end_of_file_costs_one_row() {
        let records = read_records(b"h\n\"never closed\nnext\n");
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].fields, Err(Malformed::UnterminatedQuote));
        assert_eq!(records[2].fields, fields(&["next"]));
        assert_eq!(records[2].line, 3);
    }

    #[test]
    fn stray_quote_in_unquoted_field_is_literal_and_bom_is_dropped() {
        let records = read_records(b"\xef\xbb\xbfname,size\nTV,55\" screen\n");
        assert_eq!(records[0].fields, fields(&["name", "size"]));
        assert_eq!(records[1].fields, fields(&["TV", "55\" screen"]));
    }

    #[test]
    fn cleans_a_messy_file() {
        let data = b"id,name,city\n\
1,Ann,Paris\n\
2,Bob,\"Lyon, FR\"\n\
1,Ann,Paris\n\
\n\
3,Cy\n\
\"1\",\"Ann\",\"Paris\"\n\
4,\"unterminated,Oslo\n\
5,D\xffn,Rome\n\
6,\"Multi\nLine\",Nice\n\
2,Bob,\"Lyon, FR\"\n\
7,Eve,Paris,extra\n";
        let (out, report) = run(data, &[], false);
        assert_eq!(
            report,
            Report {
                rows_in: 10,
                kept: 3,
                duplicates: 3,
                malformed: 4,
                malformed_lines: vec![6, 8, 9, 13]
            }
        );
        assert_eq!(
            out,
            "id,name,city\n1,Ann,Paris\n2,Bob,\"Lyon, FR\"\n6,\"Multi\nLine\",Nice\n"
        );
        assert_eq!(
            report.to_json(),
            r#"{"rows_in":10,"kept":3,"duplicates":3,"malformed":4,"malformed_lines":[6,8,9,13]}"#
        );
    }

    #[test]
    fn dedupes_by_key_columns_keeping_the_first() {
        let data = b"id,email,name\r\n1,a@x,Ann\r\n2,b@x,Bob\r\n3,a@x,Annie\r\n";
        let (out, report) = run(data, &["email"], false);
        assert_eq!(out, "id,email,name\r\n1,a@x,Ann\r\n2,b@x,Bob\r\n");
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.kept, 2);
    }

    #[test]
    fn headerless_input_uses_numbered_keys_and_first_row_width() {
        let (out, report) = run(b"a,1\nb,1\nc,2,x\nd,2\n", &["2"], true);
        assert_eq!(out, "a,1\nd,2\n");
        assert_eq!(
            report,
            Report {
                rows_in: 4,
                kept: 2,
                duplicates: 1,
                malformed: 1,
                malformed_lines: vec![3]
            }
        );
        assert_eq!(run(b"", &[], true).1, Report::default());
    }

    #[test]
    fn bad_keys_and_headers_are_errors() {
        let keys = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            matches!(dedupe(b"a,b\n1,2\n", &keys(&["c"]), false), Err(DedupeError::Usage(m)) if m.contains("a, b"))
        );
        assert!(
            matches!(dedupe(b"a,a\n1,2\n", &keys(&["a"]), false), Err(DedupeError::Usage(m)) if m.contains("2 times"))
        );
        assert!(matches!(
            dedupe(b"1,2\n", &keys(&["x"]), true),
            Err(DedupeError::Usage(_))
        ));
        assert!(
            matches!(dedupe(b"1,2\n", &keys(&["3"]), true), Err(DedupeError::Usage(m)) if m.contains("past the last"))
        );
        assert!(
            matches!(dedupe(b"\"a,b\n1,2\n", &[], false), Err(DedupeError::Input(m)) if m.contains("line 1"))
        );
        assert!(
            matches!(dedupe(b"", &[], false), Err(DedupeError::Input(m)) if m.contains("empty"))
        );
    }

    #[test]
    fn a_lone_empty_field_survives_a_round_trip() {
        let mut out = Vec::new();
        write_record(&mut out, &["".into()], false);
        write_record(&mut out, &["".into(), "".into()], false);
        assert_eq!(out, b"\"\"\n,\n");
        assert_eq!(read_records(&out)[0].fields, fields(&[""]));
    }

    #[test]
    fn writes_minimal_quoting() {
        let mut out = Vec::new();
        write_record(
            &mut out,
            &["plain".into(), "a,b".into(), "q\"".into(), "l\nf".into()],
            true,
        );
        assert_eq!(out, b"plain,\"a,b\",\"q\"\"\",\"l\nf\"\r\n");
    }
}
