//! How a tool's arguments become its argv and stdin: the `[invoke]` placeholders.
//!
//! Owns: parsing `invoke.args` / `invoke.stdin` templates at load ([`ArgTemplate::parse`],
//! [`StdinTemplate::parse`]) and rendering them from a call's arguments
//! ([`Invocation::argv`], [`Invocation::stdin`]).
//! Must not: check arguments against the tool's schema (evaluation does that first) or
//! touch files. A value that cannot be rendered is an error, never silently reshaped.
//!
//! The four forms of an `args` element:
//! 1. exactly `{name}`: the argument's value; a string as is, a number or bool as JSON, an
//!    array one element per item; absent or null: the element is dropped;
//! 2. exactly `{name?TEXT}`: `TEXT` when the argument is `true`, dropped otherwise;
//! 3. `{name}` inside other text: substituted (scalars only); the element is dropped when
//!    any referenced argument is absent or null;
//! 4. `{{` and `}}` are literal braces. Anything else in braces is a load error.

use serde_json::{Map, Value};

/// A template that cannot be parsed (a load error) or an argument that cannot be rendered
/// (a denial).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("`{element}` has a `{{` with no closing `}}`")]
    UnclosedBrace { element: String },
    #[error("`{element}` has a `}}` with no opening `{{`")]
    StrayClosingBrace { element: String },
    #[error("`{element}` has an empty placeholder `{{}}`")]
    EmptyPlaceholder { element: String },
    #[error(
        "`{element}` has a placeholder `{{{inner}}}` that is neither `{{name}}` nor `{{name?TEXT}}` with a non-empty TEXT"
    )]
    BadName { element: String, inner: String },
    #[error("`{element}`: a flag placeholder `{{name?TEXT}}` must be the whole element")]
    FlagNotWhole { element: String },
    #[error("`{element}`: stdin must be exactly one placeholder `{{name}}`")]
    StdinNotPlaceholder { element: String },
    #[error("argument `{name}` is {kind}; `{element}` takes only a string, number or bool")]
    NotScalar { name: String, kind: &'static str, element: String },
    #[error("argument `{name}` has an item that is {kind}; array items must be strings, numbers or bools")]
    NotScalarItem { name: String, kind: &'static str },
}

/// One piece of an element with placeholders inside other text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Arg(String),
}

/// One parsed `invoke.args` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgTemplate {
    /// Text without placeholders (`{{`/`}}` already unescaped).
    Literal(String),
    /// Exactly `{name}`.
    Whole(String),
    /// Exactly `{name?TEXT}`.
    Flag { name: String, text: String },
    /// `{name}` inside other text.
    Embedded { source: String, pieces: Vec<Piece> },
}

/// A placeholder name: what JSON property names of tool arguments look like in practice.
fn is_argument_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// A placeholder found in an element, before deciding which form the element has.
enum Raw {
    Text(String),
    Arg { name: String, flag: Option<String> },
}

fn scan(element: &str) -> Result<Vec<Raw>, InvokeError> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = element.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => {
                return Err(InvokeError::StrayClosingBrace { element: element.to_string() });
            }
            '{' => {
                let mut inner = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    inner.push(c);
                }
                if !closed {
                    return Err(InvokeError::UnclosedBrace { element: element.to_string() });
                }
                if inner.is_empty() {
                    return Err(InvokeError::EmptyPlaceholder { element: element.to_string() });
                }
                let (name, flag) = match inner.split_once('?') {
                    Some((name, text)) => (name.to_string(), Some(text.to_string())),
                    None => (inner.clone(), None),
                };
                if !is_argument_name(&name) || flag.as_deref().is_some_and(|t| t.is_empty() || t.contains('{')) {
                    return Err(InvokeError::BadName { element: element.to_string(), inner });
                }
                if !text.is_empty() {
                    out.push(Raw::Text(std::mem::take(&mut text)));
                }
                out.push(Raw::Arg { name, flag });
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Raw::Text(text));
    }
    Ok(out)
}

impl ArgTemplate {
    /// Parses one `invoke.args` element.
    pub fn parse(element: &str) -> Result<ArgTemplate, InvokeError> {
        let raw = scan(element)?;
        match raw.as_slice() {
            [] => Ok(ArgTemplate::Literal(String::new())),
            [Raw::Arg { name, flag: None }] => Ok(ArgTemplate::Whole(name.clone())),
            [Raw::Arg { name, flag: Some(text) }] => Ok(ArgTemplate::Flag { name: name.clone(), text: text.clone() }),
            _ => {
                let mut pieces = Vec::new();
                for piece in raw {
                    match piece {
                        Raw::Text(text) => pieces.push(Piece::Text(text)),
                        Raw::Arg { name, flag: None } => pieces.push(Piece::Arg(name)),
                        Raw::Arg { flag: Some(_), .. } => {
                            return Err(InvokeError::FlagNotWhole { element: element.to_string() });
                        }
                    }
                }
                if let [Piece::Text(text)] = pieces.as_slice() {
                    return Ok(ArgTemplate::Literal(text.clone()));
                }
                Ok(ArgTemplate::Embedded { source: element.to_string(), pieces })
            }
        }
    }

    /// The argument names this element refers to.
    pub fn names(&self) -> Vec<&str> {
        match self {
            ArgTemplate::Literal(_) => Vec::new(),
            ArgTemplate::Whole(name) | ArgTemplate::Flag { name, .. } => vec![name.as_str()],
            ArgTemplate::Embedded { pieces, .. } => pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Arg(name) => Some(name.as_str()),
                    Piece::Text(_) => None,
                })
                .collect(),
        }
    }

    /// Appends this element's rendering to `argv` (nothing when it is dropped).
    fn render(&self, arguments: &Map<String, Value>, argv: &mut Vec<String>) -> Result<(), InvokeError> {
        match self {
            ArgTemplate::Literal(text) => argv.push(text.clone()),
            ArgTemplate::Whole(name) => match arguments.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        match scalar_text(item) {
                            Some(text) => argv.push(text),
                            None => {
                                return Err(InvokeError::NotScalarItem { name: name.clone(), kind: kind_of(item) });
                            }
                        }
                    }
                }
                Some(value) => match scalar_text(value) {
                    Some(text) => argv.push(text),
                    None => {
                        return Err(InvokeError::NotScalar {
                            name: name.clone(),
                            kind: kind_of(value),
                            element: format!("{{{name}}}"),
                        });
                    }
                },
            },
            ArgTemplate::Flag { name, text } => {
                if arguments.get(name) == Some(&Value::Bool(true)) {
                    argv.push(text.clone());
                }
            }
            ArgTemplate::Embedded { source, pieces } => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Arg(name) => match arguments.get(name) {
                            None | Some(Value::Null) => return Ok(()),
                            Some(value) => match scalar_text(value) {
                                Some(text) => out.push_str(&text),
                                None => {
                                    return Err(InvokeError::NotScalar {
                                        name: name.clone(),
                                        kind: kind_of(value),
                                        element: source.clone(),
                                    });
                                }
                            },
                        },
                    }
                }
                argv.push(out);
            }
        }
        Ok(())
    }
}

/// A string as is; a number or bool as JSON; anything else has no argv form.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The parsed `invoke.stdin`: the name of the argument whose value is stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StdinTemplate(pub String);

impl StdinTemplate {
    /// Parses `invoke.stdin`, which must be exactly `{name}`.
    pub fn parse(element: &str) -> Result<StdinTemplate, InvokeError> {
        match ArgTemplate::parse(element)? {
            ArgTemplate::Whole(name) => Ok(StdinTemplate(name)),
            _ => Err(InvokeError::StdinNotPlaceholder { element: element.to_string() }),
        }
    }
}

/// A tool's compiled `[invoke]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Invocation {
    pub args: Vec<ArgTemplate>,
    pub stdin: Option<StdinTemplate>,
}

impl Invocation {
    /// argv after argv[0] for these arguments.
    pub fn argv(&self, arguments: &Map<String, Value>) -> Result<Vec<String>, InvokeError> {
        let mut argv = Vec::new();
        for template in &self.args {
            template.render(arguments, &mut argv)?;
        }
        Ok(argv)
    }

    /// The bytes given on stdin: the named argument's string value, other JSON as compact
    /// JSON text, absent or null: empty.
    pub fn stdin(&self, arguments: &Map<String, Value>) -> Vec<u8> {
        let Some(StdinTemplate(name)) = &self.stdin else {
            return Vec::new();
        };
        match arguments.get(name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(other) => other.to_string().into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invocation(args: &[&str]) -> Invocation {
        Invocation {
            args: args.iter().map(|a| ArgTemplate::parse(a)).collect::<Result<_, _>>().unwrap_or_default(),
            stdin: None,
        }
    }

    fn argv(args: &[&str], arguments: Value) -> Result<Vec<String>, InvokeError> {
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        invocation(args).argv(&arguments)
    }

    #[test]
    fn parse_recognises_the_four_forms() {
        assert_eq!(ArgTemplate::parse("{a}"), Ok(ArgTemplate::Whole("a".into())));
        assert_eq!(
            ArgTemplate::parse("{v?--verbose}"),
            Ok(ArgTemplate::Flag { name: "v".into(), text: "--verbose".into() })
        );
        assert_eq!(ArgTemplate::parse("--k={key}").map(|t| t.names().len()), Ok(1));
        assert_eq!(ArgTemplate::parse("{{a}}"), Ok(ArgTemplate::Literal("{a}".into())));
        assert_eq!(ArgTemplate::parse("--"), Ok(ArgTemplate::Literal("--".into())));
    }

    #[test]
    fn parse_rejects_malformed_braces() {
        assert!(matches!(ArgTemplate::parse("{a"), Err(InvokeError::UnclosedBrace { .. })));
        assert!(matches!(ArgTemplate::parse("a}"), Err(InvokeError::StrayClosingBrace { .. })));
        assert!(matches!(ArgTemplate::parse("{}"), Err(InvokeError::EmptyPlaceholder { .. })));
        assert!(matches!(ArgTemplate::parse("{a b}"), Err(InvokeError::BadName { .. })));
        assert!(matches!(ArgTemplate::parse("x{v?y}"), Err(InvokeError::FlagNotWhole { .. })));
        assert!(matches!(StdinTemplate::parse("x{a}"), Err(InvokeError::StdinNotPlaceholder { .. })));
    }

    #[test]
    fn whole_placeholder_renders_scalars_arrays_and_drops_absent() {
        assert_eq!(argv(&["{a}"], json!({"a": "x y"})), Ok(vec!["x y".to_string()]));
        assert_eq!(argv(&["{a}"], json!({"a": 5})), Ok(vec!["5".to_string()]));
        assert_eq!(argv(&["{a}"], json!({"a": false})), Ok(vec!["false".to_string()]));
        assert_eq!(
            argv(&["{a}"], json!({"a": ["p", 1, true]})),
            Ok(vec!["p".to_string(), "1".to_string(), "true".to_string()])
        );
        assert_eq!(argv(&["-", "{a}"], json!({})), Ok(vec!["-".to_string()]));
        assert_eq!(argv(&["{a}"], json!({"a": null})), Ok(vec![]));
        assert!(matches!(argv(&["{a}"], json!({"a": {"x": 1}})), Err(InvokeError::NotScalar { .. })));
        assert!(matches!(argv(&["{a}"], json!({"a": [[1]]})), Err(InvokeError::NotScalarItem { .. })));
    }

    #[test]
    fn flag_placeholder_renders_only_for_true() {
        assert_eq!(argv(&["{v?-v}"], json!({"v": true})), Ok(vec!["-v".to_string()]));
        assert_eq!(argv(&["{v?-v}"], json!({"v": false})), Ok(vec![]));
        assert_eq!(argv(&["{v?-v}"], json!({"v": "true"})), Ok(vec![]));
        assert_eq!(argv(&["{v?-v}"], json!({})), Ok(vec![]));
    }

    #[test]
    fn embedded_placeholder_substitutes_and_drops_when_any_is_absent() {
        assert_eq!(argv(&["--{k}={v}"], json!({"k": "key", "v": 3})), Ok(vec!["--key=3".to_string()]));
        assert_eq!(argv(&["--{k}={v}"], json!({"k": "key"})), Ok(vec![]));
        assert!(matches!(argv(&["--k={k}"], json!({"k": [1]})), Err(InvokeError::NotScalar { .. })));
    }

    #[test]
    fn stdin_is_string_as_is_other_json_compact_absent_empty() {
        let invocation = Invocation { args: Vec::new(), stdin: StdinTemplate::parse("{d}").ok() };
        let of = |v: Value| invocation.stdin(v.as_object().unwrap_or(&Map::new()));
        assert_eq!(of(json!({"d": "a\nb"})), b"a\nb".to_vec());
        assert_eq!(of(json!({"d": {"x": [1, 2]}})), br#"{"x":[1,2]}"#.to_vec());
        assert_eq!(of(json!({})), Vec::<u8>::new());
    }
}
