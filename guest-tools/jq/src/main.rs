//! `jq`: filters JSON with a subset of the jq language.
//!
//! ```text
//! jq [-c] [-r] [-n] [-s] [--] FILTER [FILE...]
//! ```
//!
//! Reads JSON values from each FILE (standard input when none, or `-`); several values
//! in one input (whitespace-separated, or one per line) are each run through FILTER. Each
//! result is printed pretty (two-space indent), or compact with `-c`; `-r` prints strings
//! raw (no quotes); `-n` runs FILTER once on `null` and reads nothing; `-s` runs it once
//! on an array of all the input values. Object keys keep their input order.
//!
//! The language: `.`, `..`, `.foo`, `.foo.bar`, `."key"`, `.[N]`, `.["key"]`, `.[a:b]`,
//! `.[]`, `.foo[]`, `f?`, `try f`, `|`, `,`, parentheses, literals (numbers, strings,
//! `true`, `false`, `null`), `[f]`, `{a: f, b, "c": f, (f): g}`, unary `-`,
//! `+ - * / %`, `== != < <= > >=`, `and`, `or`, `//`, `if c then f elif c then g else h
//! end`, `# comments`, and the builtins `empty not length keys keys_unsorted values has(k)
//! type add first last first(f) last(f) limit(n; f) range(n) range(a; b) sort sort_by(f)
//! group_by(f) unique unique_by(f) min max min_by(f) max_by(f) reverse select(f) map(f)
//! map_values(f) to_entries from_entries with_entries(f) tostring tonumber tojson fromjson
//! ascii_downcase ascii_upcase join(s) split(s) startswith(s) endswith(s) ltrimstr(s)
//! rtrimstr(s) contains(x) any all any(f) all(f) flatten flatten(d) floor ceil round fabs
//! sqrt error error(m) recurse recurse(f)`. Not supported (a clear error says so):
//! variables and `as`, `def`, `reduce`, `foreach`, assignment operators, string
//! interpolation, `try ... catch`, regular expressions, `--arg`.
//!
//! Structure: [`lexer`] (text -> tokens) -> [`parser`] (tokens -> AST, names and arities
//! checked) -> [`eval`] (AST -> lazy generator of results per input value).
//!
//! Exit codes (stable), as jq:
//! - 0: every input was filtered without error;
//! - 2: usage error, unreadable file, or input that is not valid JSON;
//! - 3: the filter does not parse (the message shows where);
//! - 5: a runtime error in the filter (the results before it are printed; later inputs
//!   are still filtered).
//!
//! This tool only reads. It must not write files.

mod eval;
mod lexer;
mod parser;

use std::{
    io::{self, Read, Write},
    process::ExitCode,
};

use serde_json::Value;

const USAGE: &str = "\
usage: jq [-c] [-r] [-n] [-s] [--] FILTER [FILE...]

Runs FILTER (a subset of the jq language) on each JSON value in the FILEs (standard input
when none) and prints the results.

  -c, --compact-output  one result per line, no indentation
  -r, --raw-output      print strings without quotes
  -n, --null-input      run FILTER once on null; read no input
  -s, --slurp           run FILTER once on an array of all input values
  -h, --help            print this help

Supported: . .. .foo .\"k\" .[n] .[a:b] .[] ? | , () literals [f] {k: f} + - * / %
== != < <= > >= and or // if-then-elif-else-end, and builtins such as select map keys
length has type add first last sort sort_by unique min max to_entries tostring tonumber
empty join split group_by. Not supported: $variables, def, reduce, assignment.
Exit: 0 ok, 2 usage or bad input, 3 filter does not parse, 5 runtime error.
";

/// Parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub compact: bool,
    pub raw: bool,
    pub null_input: bool,
    pub slurp: bool,
    pub filter: String,
    pub files: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Run(Options),
}

/// Parses the arguments after argv[0].
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut o = Options::default();
    let mut positional = Vec::new();
    let mut only_positional = false;
    for arg in args {
        if only_positional || arg == "-" || !arg.starts_with('-') {
            positional.push(arg.clone());
            continue;
        }
        match arg.as_str() {
            "--" => only_positional = true,
            "--help" => return Ok(Command::Help),
            "--compact-output" => o.compact = true,
            "--raw-output" => o.raw = true,
            "--null-input" => o.null_input = true,
            "--slurp" => o.slurp = true,
            long if long.starts_with("--") => return Err(format!("unknown option `{long}`")),
            short => {
                for flag in short[1..].chars() {
                    match flag {
                        'c' => o.compact = true,
                        'r' => o.raw = true,
                        'n' => o.null_input = true,
                        's' => o.slurp = true,
                        'h' => return Ok(Command::Help),
                        other => return Err(format!("unknown option `-{other}`")),
                    }
                }
            }
        }
    }
    let mut positional = positional.into_iter();
    o.filter = positional
        .next()
        .ok_or("missing FILTER (use `.` to print the input)")?;
    o.files = positional.collect();
    Ok(Command::Run(o))
}

/// A filter that does not parse, rendered with a caret under the place.
pub fn render_parse_error(filter: &str, e: &parser::ParseError) -> String {
    let at = e.at.min(filter.len());
    let line_start = filter[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = filter[at..].find('\n').map_or(filter.len(), |i| at + i);
    let column = filter[line_start..at].chars().count();
    let line_no = filter[..at].matches('\n').count() + 1;
    format!(
        "jq: error: {} (line {line_no}, column {}):\n    {}\n    {}^",
        e.message,
        column + 1,
        &filter[line_start..line_end],
        " ".repeat(column)
    )
}

/// Formats one result.
pub fn format_value(v: &Value, compact: bool, raw: bool) -> String {
    match v {
        Value::String(s) if raw => s.clone(),
        _ if compact => v.to_string(),
        _ => serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()),
    }
}

/// Where an input value came from, for error messages.
fn input_name(file: &str) -> &str {
    if file == "-" { "<stdin>" } else { file }
}

/// Runs the filter over every input, writing results to `out` and errors to `err`;
/// returns the exit code.
pub fn run(
    o: &Options,
    ast: &parser::Ast,
    inputs: &[(String, Vec<u8>)],
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<u8> {
    let mut code = 0u8;
    let emit =
        |value: Value, label: &str, out: &mut dyn Write, err: &mut dyn Write| -> io::Result<bool> {
            for result in eval::eval(ast, value) {
                match result {
                    Ok(v) => writeln!(out, "{}", format_value(&v, o.compact, o.raw))?,
                    Err(e) => {
                        writeln!(err, "jq: error (at {label}): {}", e.0)?;
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        };
    if o.null_input {
        if !emit(Value::Null, "<null input>", out, err)? {
            code = 5;
        }
        return Ok(code);
    }
    let mut slurped = Vec::new();
    for (file, data) in inputs {
        let name = input_name(file);
        let stream = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
        for (n, value) in stream.enumerate() {
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    writeln!(
                        err,
                        "jq: error (at {name}): input value #{} is not valid JSON: {e}",
                        n + 1
                    )?;
                    return Ok(2);
                }
            };
            if o.slurp {
                slurped.push(value);
            } else if !emit(value, &format!("{name}, value #{}", n + 1), out, err)? {
                code = 5;
            }
        }
    }
    if o.slurp && !emit(Value::Array(slurped), "slurped input", out, err)? {
        code = 5;
    }
    Ok(code)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(options)) => options,
        Err(message) => {
            eprintln!("jq: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let ast = match parser::parse(&options.filter) {
        Ok(ast) => ast,
        Err(e) => {
            eprintln!("{}", render_parse_error(&options.filter, &e));
            return ExitCode::from(3);
        }
    };
    let mut inputs = Vec::new();
    if !options.null_input {
        let files = if options.files.is_empty() {
            vec!["-".to_string()]
        } else {
            options.files.clone()
        };
        for file in files {
            let data = if file == "-" {
                let mut buf = Vec::new();
                io::stdin().read_to_end(&mut buf).map(|_| buf)
            } else {
                std::fs::read(&file)
            };
            match data {
                Ok(data) => inputs.push((file, data)),
                Err(e) => {
                    eprintln!("jq: error: cannot read {}: {e}", input_name(&file));
                    return ExitCode::from(2);
                }
            }
        }
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let stderr = io::stderr();
    let mut err = stderr.lock();
    match run(&options, &ast, &inputs, &mut out, &mut err)
        .and_then(|code| out.flush().map(|()| code))
    {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("jq: error: cannot write output: {e}");
            ExitCode::from(2)
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

    fn run_text(flags: &[&str], filter: &str, input: &str) -> (String, String, u8) {
        let mut a = args(flags);
        a.push(filter.to_string());
        let Command::Run(o) = parse_args(&a).unwrap() else {
            panic!("help")
        };
        let ast = parser::parse(&o.filter).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            &o,
            &ast,
            &[("-".into(), input.as_bytes().to_vec())],
            &mut out,
            &mut err,
        )
        .unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            code,
        )
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_args(&args(&["-cr", "--slurp", ".a", "f.json"])).unwrap(),
            Command::Run(Options {
                compact: true,
                raw: true,
                null_input: false,
                slurp: true,
                filter: ".a".into(),
                files: vec!["f.json".into()]
            })
        );
        assert!(
            parse_args(&args(&[]))
                .unwrap_err()
                .contains("missing FILTER")
        );
        assert!(parse_args(&args(&["-x", "."])).is_err());
    }

    #[test]
    fn prints_pretty_compact_and_raw_preserving_key_order() {
        let input = r#"{"z": 1, "a": [1, {"b": null}], "s": "hi"}"#;
        assert_eq!(
            run_text(&[], ".", input).0,
            "{\n  \"z\": 1,\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"s\": \"hi\"\n}\n"
        );
        assert_eq!(
            run_text(&["-c"], ".", input).0,
            "{\"z\":1,\"a\":[1,{\"b\":null}],\"s\":\"hi\"}\n"
        );
        assert_eq!(run_text(&["-r"], ".s", input).0, "hi\n");
        assert_eq!(run_text(&[], ".s", input).0, "\"hi\"\n");
    }

    #[test]
    fn filters_each_value_of_a_stream_and_slurps() {
        assert_eq!(
            run_text(&["-c"], ".a", "{\"a\":1}\n{\"a\":2} {\"a\":3}").0,
            "1\n2\n3\n"
        );
        assert_eq!(
            run_text(&["-c", "-s"], "map(.a) | add", "{\"a\":1}\n{\"a\":2}").0,
            "3\n"
        );
        assert_eq!(run_text(&["-n"], "1 + 1", "").0, "2\n");
    }

    #[test]
    fn runtime_errors_exit_5_and_go_on_with_the_next_input() {
        let (out, err, code) = run_text(&["-c"], ".a", "{\"a\":1} 5 {\"a\":3}");
        assert_eq!(out, "1\n3\n");
        assert_eq!(
            err,
            "jq: error (at <stdin>, value #2): Cannot index number with \"a\"\n"
        );
        assert_eq!(code, 5);
    }

    #[test]
    fn invalid_json_input_exits_2() {
        let (out, err, code) = run_text(&["-c"], ".", "{\"a\":1} {oops");
        assert_eq!(out, "{\"a\":1}\n");
        assert!(err.contains("value #2 is not valid JSON"), "{err}");
        assert_eq!(code, 2);
    }

    #[test]
    fn parse_errors_point_at_the_place() {
        let e = parser::parse(".a | map(.b").unwrap_err();
        assert_eq!(
            render_parse_error(".a | map(.b", &e),
            "jq: error: expected `)` to close the arguments of `map`, found the end of the filter (line 1, column 12):\n    .a | map(.b\n               ^"
        );
    }
}
