//! Turns filter text into tokens, each with the byte offset it starts at. Knows nothing
//! of the grammar; must not evaluate anything.

use std::fmt;

/// A token of the filter language.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// `.`
    Dot,
    /// `..`
    DotDot,
    /// `.name`
    Field(String),
    /// A name: keyword or function.
    Ident(String),
    Number(f64),
    Str(String),
    /// Punctuation and operators: `| , ( ) [ ] { } : ; ? == != < <= > >= + - * / % //`.
    Punct(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Dot => write!(f, "`.`"),
            Token::DotDot => write!(f, "`..`"),
            Token::Field(name) => write!(f, "`.{name}`"),
            Token::Ident(name) => write!(f, "`{name}`"),
            Token::Number(n) => write!(f, "number `{n}`"),
            Token::Str(s) => write!(f, "string {}", serde_json::Value::String(s.clone())),
            Token::Punct(p) => write!(f, "`{p}`"),
        }
    }
}

/// A token and where it starts (byte offset in the filter).
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub at: usize,
}

/// A lexing error: message and byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub message: String,
    pub at: usize,
}

/// Operators, longest first so that `==` wins over `=`.
const PUNCTS: &[&str] = &[
    "//", "==", "!=", "<=", ">=", "|", ",", "(", ")", "[", "]", "{", "}", ":", ";", "?", "<", ">",
    "+", "-", "*", "/", "%",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `src` into tokens.
pub fn lex(src: &str) -> Result<Vec<Spanned>, LexError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let c = src[i..].chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '#' {
            while i < src.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let at = i;
        if c == '.' {
            if bytes.get(i + 1) == Some(&b'.') {
                tokens.push(Spanned {
                    token: Token::DotDot,
                    at,
                });
                i += 2;
                continue;
            }
            let rest = &src[i + 1..];
            if rest.starts_with(is_ident_start) {
                let len = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
                tokens.push(Spanned {
                    token: Token::Field(rest[..len].to_string()),
                    at,
                });
                i += 1 + len;
                continue;
            }
            if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                tokens.push(Spanned {
                    token: Token::Dot,
                    at,
                });
                i += 1;
                continue;
            }
        }
        if c.is_ascii_digit() || c == '.' {
            let (n, len) = lex_number(&src[i..]).ok_or_else(|| LexError {
                message: "malformed number".into(),
                at,
            })?;
            tokens.push(Spanned {
                token: Token::Number(n),
                at,
            });
            i += len;
            continue;
        }
        if c == '"' {
            let (s, len) = lex_string(&src[i..], at)?;
            tokens.push(Spanned {
                token: Token::Str(s),
                at,
            });
            i += len;
            continue;
        }
        if is_ident_start(c) {
            let rest = &src[i..];
            let mut len = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
            // Namespaced builtins like `ltrimstr` need nothing special; `::` is not supported.
            while rest[len..].starts_with("::") {
                len += 2;
                len += rest[len..]
                    .find(|c: char| !is_ident_char(c))
                    .unwrap_or(rest.len() - len);
            }
            tokens.push(Spanned {
                token: Token::Ident(rest[..len].to_string()),
                at,
            });
            i += len;
            continue;
        }
        if c == '$' {
            return Err(LexError {
                message: "variables (`$name`) are not supported by this jq".into(),
                at,
            });
        }
        if let Some(p) = PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
            tokens.push(Spanned {
                token: Token::Punct(p),
                at,
            });
            i += p.len();
            continue;
        }
        let message = match c {
            '=' => "assignment (`=`, `|=`, `+=`, ...) is not supported by this jq".to_string(),
            other => format!("unexpected character `{other}`"),
        };
        return Err(LexError { message, at });
    }
    Ok(tokens)
}

/// A JSON-style number at the start of `s`: its value and length.
fn lex_number(s: &str) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    s[..i].parse().ok().map(|n| (n, i))
}

/// A double-quoted string at the start of `s`: its value and length in bytes.
fn lex_string(s: &str, at: usize) -> Result<(String, usize), LexError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let (j, e) = chars.next().ok_or(LexError {
                    message: "unterminated string".into(),
                    at,
                })?;
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let hex = |k: usize| -> Result<u32, LexError> {
                            s.get(k..k + 4)
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or(LexError {
                                    message: "bad `\\u` escape: expected 4 hex digits".into(),
                                    at: at + k,
                                })
                        };
                        let mut code = hex(j + 1)?;
                        for _ in 0..4 {
                            chars.next();
                        }
                        if (0xD800..0xDC00).contains(&code) && s.get(j + 5..j + 7) == Some("\\u") {
                            let low = hex(j + 7)?;
                            if (0xDC00..0xE000).contains(&low) {
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                for _ in 0..6 {
                                    chars.next();
                                }
                            }
                        }
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    '(' => {
                        return Err(LexError {
                            message: "string interpolation (`\\(...)`) is not supported by this jq"
                                .into(),
                            at: at + j,
                        });
                    }
                    other => {
                        return Err(LexError {
                            message: format!("unknown escape `\\{other}` in string"),
                            at: at + j,
                        });
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(LexError {
        message: "unterminated string".into(),
        at,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tokens(src: &str) -> Vec<Token> {
        lex(src).unwrap().into_iter().map(|s| s.token).collect()
    }

    #[test]
    fn lexes_paths_operators_and_literals() {
        assert_eq!(
            tokens(r#".foo[0] | ."a b" // .. , 1.5e2 >= -3 # comment"#),
            vec![
                Token::Field("foo".into()),
                Token::Punct("["),
                Token::Number(0.0),
                Token::Punct("]"),
                Token::Punct("|"),
                Token::Dot,
                Token::Str("a b".into()),
                Token::Punct("//"),
                Token::DotDot,
                Token::Punct(","),
                Token::Number(150.0),
                Token::Punct(">="),
                Token::Punct("-"),
                Token::Number(3.0),
            ]
        );
        assert_eq!(tokens(".5"), vec![Token::Number(0.5)]);
    }

    #[test]
    fn lexes_string_escapes() {
        assert_eq!(
            tokens(r#""a\n\"\u00e9\ud83d\ude00""#),
            vec![Token::Str("a\n\"é😀".into())]
        );
    }

    #[test]
    fn reports_unsupported_syntax_with_position() {
        let e = lex(".a = 1").unwrap_err();
        assert_eq!(e.at, 3);
        assert!(e.message.contains("assignment"));
        assert!(lex("$x").unwrap_err().message.contains("variables"));
        assert!(
            lex(r#""\(.a)""#)
                .unwrap_err()
                .message
                .contains("interpolation")
        );
        assert!(
            lex(r#""open"#)
                .unwrap_err()
                .message
                .contains("unterminated")
        );
    }
}
