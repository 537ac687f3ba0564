//! `sha256sum`: computes and checks SHA-256 digests, like coreutils `sha256sum`.
//!
//! ```text
//! sha256sum [-r] [--] [FILE...]          print `HEX  FILE` for each file
//! sha256sum -c|--check [--] [LIST...]    check the digests listed in each LIST
//! ```
//!
//! No FILE, or `-`, is standard input. With `-r`, a directory FILE is walked recursively
//! (entries in byte order of their names, symbolic links not followed) and every regular
//! file in it is printed; without `-r` a directory is an error. Names containing a
//! backslash or a newline are escaped as coreutils does (`\` before the digest, `\\` and
//! `\n` in the name).
//!
//! `--check` reads lines `HEX  NAME` (or `HEX *NAME`, the binary marker coreutils writes)
//! and prints `NAME: OK` or `NAME: FAILED` (`FAILED open or read` when the file cannot be
//! read), then a warning on stderr for mismatches, unreadable files and badly formatted
//! lines.
//!
//! Exit codes (stable):
//! - 0: every file was read (and, with `--check`, every digest matched);
//! - 1: a file could not be read, a digest did not match, or a check line was malformed;
//! - 2: usage error.
//!
//! This tool only reads. It must not write files.

use std::{
    fs::{self, File},
    io::{self, BufRead, Read, Write},
    path::Path,
    process::ExitCode,
};

use sha2::{Digest, Sha256};

const USAGE: &str = "\
usage: sha256sum [-r] [--] [FILE...]
       sha256sum -c|--check [--] [LIST...]

Prints the SHA-256 digest of each FILE as `HEX  FILE` (standard input when no FILE or `-`).

  -r, --recursive  walk directories recursively (sorted; symbolic links not followed)
  -c, --check      read `HEX  FILE` lines from each LIST and check them
  -h, --help       print this help

Exit: 0 all read (and all OK with --check), 1 unreadable file, mismatch or bad line,
2 usage error.
";

/// Parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub check: bool,
    pub recursive: bool,
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
    let mut only_files = false;
    for arg in args {
        if only_files || arg == "-" || !arg.starts_with('-') {
            o.files.push(arg.clone());
            continue;
        }
        match arg.as_str() {
            "--" => only_files = true,
            "--help" => return Ok(Command::Help),
            "--check" => o.check = true,
            "--recursive" => o.recursive = true,
            long if long.starts_with("--") => return Err(format!("unknown option `{long}`")),
            short => {
                for flag in short[1..].chars() {
                    match flag {
                        'c' => o.check = true,
                        'r' => o.recursive = true,
                        'h' => return Ok(Command::Help),
                        other => return Err(format!("unknown option `-{other}`")),
                    }
                }
            }
        }
    }
    if o.check && o.recursive {
        return Err("`--check` and `-r` cannot be combined".into());
    }
    if o.files.is_empty() {
        o.files.push("-".into());
    }
    Ok(Command::Run(o))
}

/// The lowercase hex SHA-256 of everything `reader` yields.
pub fn digest_reader(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(to_hex(&hasher.finalize()))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// One output line `HEX  NAME`, escaped as coreutils does.
pub fn format_line(hex: &str, name: &str) -> String {
    if name.contains('\\') || name.contains('\n') {
        let escaped = name.replace('\\', "\\\\").replace('\n', "\\n");
        format!("\\{hex}  {escaped}")
    } else {
        format!("{hex}  {name}")
    }
}

/// Digests each file (or directory with `recursive`), in order: `(name, hex or error)`.
pub fn digest_files(
    files: &[String],
    recursive: bool,
    stdin: &mut dyn Read,
) -> Vec<(String, Result<String, String>)> {
    let mut out = Vec::new();
    for name in files {
        if name == "-" {
            out.push((
                name.clone(),
                digest_reader(&mut *stdin).map_err(|e| e.to_string()),
            ));
            continue;
        }
        match fs::metadata(name) {
            Ok(meta) if meta.is_dir() => {
                if recursive {
                    walk(Path::new(name), name, &mut out);
                } else {
                    out.push((name.clone(), Err("Is a directory (use -r)".into())));
                }
            }
            Ok(_) => out.push((name.clone(), digest_path(Path::new(name)))),
            Err(e) => out.push((name.clone(), Err(e.to_string()))),
        }
    }
    out
}

fn digest_path(path: &Path) -> Result<String, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    digest_reader(file).map_err(|e| e.to_string())
}

fn walk(dir: &Path, shown: &str, out: &mut Vec<(String, Result<String, String>)>) {
    let mut names = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(e) => names.push(e.file_name()),
                    Err(e) => out.push((shown.to_string(), Err(e.to_string()))),
                }
            }
        }
        Err(e) => {
            out.push((shown.to_string(), Err(e.to_string())));
            return;
        }
    }
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let path = dir.join(&name);
        let child = if shown.ends_with('/') {
            format!("{shown}{}", name.to_string_lossy())
        } else {
            format!("{shown}/{}", name.to_string_lossy())
        };
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, &child, out),
            Ok(meta) if meta.is_file() => out.push((child, digest_path(&path))),
            Ok(_) => {} // symbolic links and special files are not followed
            Err(e) => out.push((child, Err(e.to_string()))),
        }
    }
}

/// One parsed line of a check list.
#[derive(Debug, PartialEq, Eq)]
pub struct CheckLine {
    pub hex: String,
    pub name: String,
}

/// Parses `HEX  NAME`, `HEX *NAME` or the escaped form `\HEX  NAME`.
pub fn parse_check_line(line: &str) -> Option<CheckLine> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let hex = line.get(..64)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let rest = &line[64..];
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    if name.is_empty() {
        return None;
    }
    let name = if escaped {
        unescape(name)?
    } else {
        name.to_string()
    };
    Some(CheckLine {
        hex: hex.to_ascii_lowercase(),
        name,
    })
}

fn unescape(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The tally of a `--check` run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    pub ok: u64,
    pub mismatched: u64,
    pub unreadable: u64,
    pub malformed: u64,
}

/// Checks every line of one list, writing `NAME: OK|FAILED` lines to `out`.
pub fn check_list(
    list: impl BufRead,
    out: &mut impl Write,
    summary: &mut CheckSummary,
) -> io::Result<()> {
    for line in list.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Some(entry) = parse_check_line(&line) else {
            summary.malformed += 1;
            continue;
        };
        match digest_path(Path::new(&entry.name)) {
            Ok(hex) if hex == entry.hex => {
                summary.ok += 1;
                writeln!(out, "{}: OK", entry.name)?;
            }
            Ok(_) => {
                summary.mismatched += 1;
                writeln!(out, "{}: FAILED", entry.name)?;
            }
            Err(_) => {
                summary.unreadable += 1;
                writeln!(out, "{}: FAILED open or read", entry.name)?;
            }
        }
    }
    Ok(())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn run_check(files: &[String]) -> ExitCode {
    let mut summary = CheckSummary::default();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    for name in files {
        let result = if name == "-" {
            check_list(io::stdin().lock(), &mut out, &mut summary)
        } else {
            match File::open(name) {
                Ok(f) => check_list(io::BufReader::new(f), &mut out, &mut summary),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = result {
            eprintln!("sha256sum: {name}: {e}");
            failed = true;
        }
    }
    if summary.malformed > 0 {
        eprintln!(
            "sha256sum: WARNING: {} improperly formatted",
            plural(summary.malformed, "line is", "lines are")
        );
    }
    if summary.unreadable > 0 {
        eprintln!(
            "sha256sum: WARNING: {} could not be read",
            plural(summary.unreadable, "listed file", "listed files")
        );
    }
    if summary.mismatched > 0 {
        eprintln!(
            "sha256sum: WARNING: {} did NOT match",
            plural(
                summary.mismatched,
                "computed checksum",
                "computed checksums"
            )
        );
    }
    if summary.ok + summary.mismatched + summary.unreadable == 0 {
        eprintln!("sha256sum: no properly formatted checksum lines found");
        failed = true;
    }
    if failed || summary.malformed > 0 || summary.unreadable > 0 || summary.mismatched > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
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
            eprintln!("sha256sum: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.check {
        return run_check(&options.files);
    }
    let results = digest_files(&options.files, options.recursive, &mut io::stdin().lock());
    let mut out = io::stdout().lock();
    let mut failed = false;
    for (name, result) in results {
        match result {
            Ok(hex) => {
                if writeln!(out, "{}", format_line(&hex, &name)).is_err() {
                    return ExitCode::from(1);
                }
            }
            Err(e) => {
                eprintln!("sha256sum: {name}: {e}");
                failed = true;
            }
        }
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

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn digests_known_vectors() {
        assert_eq!(digest_reader(&b""[..]).unwrap(), EMPTY);
        assert_eq!(digest_reader(&b"abc"[..]).unwrap(), ABC);
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            parse_args(&args(&["-r", "--", "-x"])).unwrap(),
            Command::Run(Options {
                check: false,
                recursive: true,
                files: vec!["-x".into()]
            })
        );
        assert_eq!(
            parse_args(&args(&["--check"])).unwrap(),
            Command::Run(Options {
                check: true,
                recursive: false,
                files: vec!["-".into()]
            })
        );
        assert!(parse_args(&args(&["-c", "-r"])).is_err());
        assert!(parse_args(&args(&["-z"])).is_err());
    }

    #[test]
    fn formats_and_escapes_like_coreutils() {
        assert_eq!(format_line(ABC, "a b"), format!("{ABC}  a b"));
        assert_eq!(format_line(ABC, "a\\b\nc"), format!("\\{ABC}  a\\\\b\\nc"));
    }

    #[test]
    fn parses_check_lines() {
        assert_eq!(
            parse_check_line(&format!("{ABC}  f.txt")),
            Some(CheckLine {
                hex: ABC.into(),
                name: "f.txt".into()
            })
        );
        assert_eq!(
            parse_check_line(&format!("{ABC} *bin")),
            Some(CheckLine {
                hex: ABC.into(),
                name: "bin".into()
            })
        );
        assert_eq!(
            parse_check_line(&format!("\\{}  a\\\\b\\nc", ABC.to_uppercase())),
            Some(CheckLine {
                hex: ABC.into(),
                name: "a\\b\nc".into()
            })
        );
        assert_eq!(parse_check_line("xyz  f"), None);
        assert_eq!(parse_check_line(&format!("{ABC} f")), None);
    }

    #[test]
    fn digests_directories_recursively_and_checks_lists() {
        let dir = std::env::temp_dir().join(format!("sha256sum-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("b"), "abc").unwrap();
        fs::write(dir.join("a"), "").unwrap();
        fs::write(dir.join("sub/c"), "abc").unwrap();
        let root = dir.to_string_lossy().into_owned();

        let results = digest_files(std::slice::from_ref(&root), true, &mut &b""[..]);
        let names: Vec<String> = results.iter().map(|(n, _)| n.replace(&root, "R")).collect();
        assert_eq!(names, vec!["R/a", "R/b", "R/sub/c"]);
        assert_eq!(results[0].1, Ok(EMPTY.to_string()));
        assert_eq!(results[1].1, Ok(ABC.to_string()));

        let plain = digest_files(std::slice::from_ref(&root), false, &mut &b""[..]);
        assert!(plain[0].1.as_ref().unwrap_err().contains("directory"));

        let list = format!(
            "{}\n{}\n{}\nnot a line\n",
            format_line(ABC, &format!("{root}/b")),
            format_line(ABC, &format!("{root}/a")),
            format_line(ABC, &format!("{root}/missing")),
        );
        let mut out = Vec::new();
        let mut summary = CheckSummary::default();
        check_list(list.as_bytes(), &mut out, &mut summary).unwrap();
        assert_eq!(
            summary,
            CheckSummary {
                ok: 1,
                mismatched: 1,
                unreadable: 1,
                malformed: 1
            }
        );
        let out = String::from_utf8(out).unwrap().replace(&root, "R");
        assert_eq!(
            out,
            "R/b: OK\nR/a: FAILED\nR/missing: FAILED open or read\n"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
