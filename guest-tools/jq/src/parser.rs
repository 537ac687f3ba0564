//! Parses tokens into an [`Ast`], by precedence climbing. Checks function names and
//! arities against the builtins the evaluator has; must not evaluate anything.
//!
//! Precedence, lowest first: `|` (right), `,`, `//` (right), `or`, `and`, comparisons
//! (non-associative), `+ -`, `* / %`, then postfix terms (`.foo`, `[i]`, `[]`, `[a:b]`, `?`).

use serde_json::Value;

use crate::lexer::{Spanned, Token, lex};

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// An object-construction key.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjKey {
    /// `name` or `"name"`.
    Literal(String),
    /// `(f)`: each output of `f` (a string) is a key.
    Expr(Ast),
}

/// The syntax tree of a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Ast {
    Identity,
    /// `..`
    Recurse,
    Literal(Value),
    /// `target[index]`, `target.name`, `target."name"`; `index` is evaluated against `.`.
    Index(Box<Ast>, Box<Ast>),
    /// `target[from:to]`.
    Slice(Box<Ast>, Option<Box<Ast>>, Option<Box<Ast>>),
    /// `target[]`
    Iterate(Box<Ast>),
    /// `f?`, `try f`
    Try(Box<Ast>),
    /// `[f]`, or `[]` when `None`.
    Array(Option<Box<Ast>>),
    /// `{k: v, ...}`; a `None` value is the shorthand `{k}` = `{k: .k}`.
    Object(Vec<(ObjKey, Option<Ast>)>),
    Neg(Box<Ast>),
    Pipe(Box<Ast>, Box<Ast>),
    Comma(Box<Ast>, Box<Ast>),
    Binary(BinOp, Box<Ast>, Box<Ast>),
    And(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
    /// `a // b`
    Alternative(Box<Ast>, Box<Ast>),
    /// `if c then t (elif c then t)* (else e)? end`
    If(Vec<(Ast, Ast)>, Option<Box<Ast>>),
    /// A builtin: name and filter arguments.
    Call(String, Vec<Ast>),
}

/// A syntax error: message and byte offset in the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub at: usize,
}

/// The builtins the evaluator implements: name and arity.
pub const BUILTINS: &[(&str, usize)] = &[
    ("empty", 0),
    ("not", 0),
    ("length", 0),
    ("keys", 0),
    ("keys_unsorted", 0),
    ("values", 0),
    ("has", 1),
    ("type", 0),
    ("add", 0),
    ("first", 0),
    ("last", 0),
    ("first", 1),
    ("last", 1),
    ("limit", 2),
    ("range", 1),
    ("range", 2),
    ("sort", 0),
    ("sort_by", 1),
    ("group_by", 1),
    ("unique", 0),
    ("unique_by", 1),
    ("min", 0),
    ("max", 0),
    ("min_by", 1),
    ("max_by", 1),
    ("reverse", 0),
    ("select", 1),
    ("map", 1),
    ("map_values", 1),
    ("to_entries", 0),
    ("from_entries", 0),
    ("with_entries", 1),
    ("tostring", 0),
    ("tonumber", 0),
    ("tojson", 0),
    ("fromjson", 0),
    ("ascii_downcase", 0),
    ("ascii_upcase", 0),
    ("join", 1),
    ("split", 1),
    ("startswith", 1),
    ("endswith", 1),
    ("ltrimstr", 1),
    ("rtrimstr", 1),
    ("contains", 1),
    ("any", 0),
    ("all", 0),
    ("any", 1),
    ("all", 1),
    ("flatten", 0),
    ("flatten", 1),
    ("floor", 0),
    ("ceil", 0),
    ("round", 0),
    ("fabs", 0),
    ("sqrt", 0),
    ("error", 0),
    ("error", 1),
    ("recurse", 0),
    ("recurse", 1),
];

const KEYWORDS: &[&str] = &[
    "and", "or", "if", "then", "elif", "else", "end", "try", "catch",
];

/// Parses a filter.
pub fn parse(src: &str) -> Result<Ast, ParseError> {
    let tokens = lex(src).map_err(|e| ParseError {
        message: e.message,
        at: e.at,
    })?;
    let mut p = Parser {
        tokens,
        pos: 0,
        end: src.len(),
    };
    if p.tokens.is_empty() {
        return Ok(Ast::Identity);
    }
    let ast = p.pipe(false)?;
    match p.peek() {
        None => Ok(ast),
        Some(t) => Err(p.error_at(format!("unexpected {t} after a complete filter"))),
    }
}

struct Parser {
    tokens: Vec<Spanned>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|s| &s.token)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |s| s.at)
    }

    fn error_at(&self, message: String) -> ParseError {
        ParseError {
            message,
            at: self.at(),
        }
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Token::Punct(q)) if *q == p)
    }

    fn is_ident(&self, name: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(n)) if n == name)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str, context: &str) -> Result<(), ParseError> {
        if self.eat_punct(p) {
            return Ok(());
        }
        let found = self
            .peek()
            .map_or("the end of the filter".to_string(), |t| t.to_string());
        Err(self.error_at(format!("expected `{p}` {context}, found {found}")))
    }

    fn expect_ident(&mut self, name: &str, context: &str) -> Result<(), ParseError> {
        if self.is_ident(name) {
            self.pos += 1;
            return Ok(());
        }
        let found = self
            .peek()
            .map_or("the end of the filter".to_string(), |t| t.to_string());
        Err(self.error_at(format!("expected `{name}` {context}, found {found}")))
    }

    /// `a | b`; with `no_comma`, `,` ends the expression (object values).
    fn pipe(&mut self, no_comma: bool) -> Result<Ast, ParseError> {
        let left = if no_comma {
            self.alternative()?
        } else {
            self.comma()?
        };
        if self.is_ident("as") {
            return Err(self
                .error_at("variable bindings (`... as $x`) are not supported by this jq".into()));
        }
        if self.eat_punct("|") {
            let right = self.pipe(no_comma)?;
            return Ok(Ast::Pipe(Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn comma(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.alternative()?;
        while self.eat_punct(",") {
            let right = self.alternative()?;
            left = Ast::Comma(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn alternative(&mut self) -> Result<Ast, ParseError> {
        let left = self.or()?;
        if self.eat_punct("//") {
            let right = self.alternative()?;
            return Ok(Ast::Alternative(Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn or(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.and()?;
        while self.is_ident("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Ast::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.comparison()?;
        while self.is_ident("and") {
            self.pos += 1;
            let right = self.comparison()?;
            left = Ast::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Ast, ParseError> {
        let left = self.additive()?;
        let op = match self.peek() {
            Some(Token::Punct("==")) => BinOp::Eq,
            Some(Token::Punct("!=")) => BinOp::Ne,
            Some(Token::Punct("<")) => BinOp::Lt,
            Some(Token::Punct("<=")) => BinOp::Le,
            Some(Token::Punct(">")) => BinOp::Gt,
            Some(Token::Punct(">=")) => BinOp::Ge,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.additive()?;
        if matches!(
            self.peek(),
            Some(Token::Punct("==" | "!=" | "<" | "<=" | ">" | ">="))
        ) {
            return Err(self.error_at("comparisons do not chain: add parentheses".into()));
        }
        Ok(Ast::Binary(op, Box::new(left), Box::new(right)))
    }

    fn additive(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Some(Token::Punct("+")) => BinOp::Add,
                Some(Token::Punct("-")) => BinOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.multiplicative()?;
            left = Ast::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Result<Ast, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Punct("*")) => BinOp::Mul,
                Some(Token::Punct("/")) => BinOp::Div,
                Some(Token::Punct("%")) => BinOp::Mod,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = Ast::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Ast, ParseError> {
        if self.eat_punct("-") {
            let operand = self.unary()?;
            return Ok(match operand {
                Ast::Literal(Value::Number(n)) => {
                    Ast::Literal(crate::eval::number(-n.as_f64().unwrap_or(0.0)))
                }
                other => Ast::Neg(Box::new(other)),
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Ast, ParseError> {
        let mut term = self.primary()?;
        loop {
            match self.peek() {
                Some(Token::Field(name)) => {
                    let key = Ast::Literal(Value::String(name.clone()));
                    self.pos += 1;
                    term = Ast::Index(Box::new(term), Box::new(key));
                }
                Some(Token::Dot) => {
                    // `."key"` or `.[...]` after a term.
                    match self.tokens.get(self.pos + 1).map(|s| &s.token) {
                        Some(Token::Str(s)) => {
                            let key = Ast::Literal(Value::String(s.clone()));
                            self.pos += 2;
                            term = Ast::Index(Box::new(term), Box::new(key));
                        }
                        Some(Token::Punct("[")) => {
                            self.pos += 1;
                            term = self.bracket_suffix(term)?;
                        }
                        _ => {
                            return Err(
                                self.error_at("expected a name, a string or `[` after `.`".into())
                            );
                        }
                    }
                }
                Some(Token::Punct("[")) => term = self.bracket_suffix(term)?,
                Some(Token::Punct("?")) => {
                    self.pos += 1;
                    term = Ast::Try(Box::new(term));
                }
                _ => return Ok(term),
            }
        }
    }

    /// `[]`, `[f]`, `[a:b]` after a term (the `[` is next).
    fn bracket_suffix(&mut self, term: Ast) -> Result<Ast, ParseError> {
        self.pos += 1;
        if self.eat_punct("]") {
            return Ok(Ast::Iterate(Box::new(term)));
        }
        if self.eat_punct(":") {
            let to = self.pipe(false)?;
            self.expect_punct("]", "to close the slice")?;
            return Ok(Ast::Slice(Box::new(term), None, Some(Box::new(to))));
        }
        let index = self.pipe(false)?;
        if self.eat_punct(":") {
            let to = if self.is_punct("]") {
                None
            } else {
                Some(Box::new(self.pipe(false)?))
            };
            self.expect_punct("]", "to close the slice")?;
            return Ok(Ast::Slice(Box::new(term), Some(Box::new(index)), to));
        }
        self.expect_punct("]", "to close the index")?;
        Ok(Ast::Index(Box::new(term), Box::new(index)))
    }

    fn primary(&mut self) -> Result<Ast, ParseError> {
        let at = self.at();
        let Some(token) = self.peek().cloned() else {
            return Err(self.error_at("unexpected end of the filter: expected a term".into()));
        };
        self.pos += 1;
        match token {
            Token::Dot => match self.peek() {
                Some(Token::Str(s)) => {
                    let key = Ast::Literal(Value::String(s.clone()));
                    self.pos += 1;
                    Ok(Ast::Index(Box::new(Ast::Identity), Box::new(key)))
                }
                _ => Ok(Ast::Identity),
            },
            Token::DotDot => Ok(Ast::Recurse),
            Token::Field(name) => Ok(Ast::Index(
                Box::new(Ast::Identity),
                Box::new(Ast::Literal(Value::String(name))),
            )),
            Token::Number(n) => Ok(Ast::Literal(crate::eval::number(n))),
            Token::Str(s) => Ok(Ast::Literal(Value::String(s))),
            Token::Punct("(") => {
                let inner = self.pipe(false)?;
                self.expect_punct(")", "to close `(`")?;
                Ok(inner)
            }
            Token::Punct("[") => {
                if self.eat_punct("]") {
                    return Ok(Ast::Array(None));
                }
                let inner = self.pipe(false)?;
                self.expect_punct("]", "to close `[`")?;
                Ok(Ast::Array(Some(Box::new(inner))))
            }
            Token::Punct("{") => self.object(),
            Token::Ident(name) => self.named(name, at),
            Token::Punct(p) => Err(ParseError {
                message: format!("unexpected `{p}`: expected a term"),
                at,
            }),
        }
    }

    fn object(&mut self) -> Result<Ast, ParseError> {
        let mut entries = Vec::new();
        if self.eat_punct("}") {
            return Ok(Ast::Object(entries));
        }
        loop {
            let at = self.at();
            let key = match self.peek().cloned() {
                Some(Token::Ident(name)) => {
                    self.pos += 1;
                    ObjKey::Literal(name)
                }
                Some(Token::Str(s)) => {
                    self.pos += 1;
                    ObjKey::Literal(s)
                }
                Some(Token::Punct("(")) => {
                    self.pos += 1;
                    let inner = self.pipe(false)?;
                    self.expect_punct(")", "to close the object key")?;
                    ObjKey::Expr(inner)
                }
                Some(t) => {
                    return Err(ParseError {
                        message: format!(
                            "expected an object key (a name, a string or `(f)`), found {t}"
                        ),
                        at,
                    });
                }
                None => return Err(self.error_at("unterminated object: expected a key".into())),
            };
            let value = if self.eat_punct(":") {
                Some(self.pipe(true)?)
            } else {
                None
            };
            if value.is_none() && matches!(key, ObjKey::Expr(_)) {
                return Err(
                    self.error_at("an object key `(f)` needs a value: `{(f): value}`".into())
                );
            }
            entries.push((key, value));
            if self.eat_punct(",") {
                continue;
            }
            self.expect_punct("}", "to close the object")?;
            return Ok(Ast::Object(entries));
        }
    }

    fn named(&mut self, name: String, at: usize) -> Result<Ast, ParseError> {
        match name.as_str() {
            "true" => return Ok(Ast::Literal(Value::Bool(true))),
            "false" => return Ok(Ast::Literal(Value::Bool(false))),
            "null" => return Ok(Ast::Literal(Value::Null)),
            "if" => return self.if_then(),
            "try" => {
                let body = self.postfix()?;
                if self.is_ident("catch") {
                    return Err(self.error_at(
                        "`try ... catch` is not supported by this jq; use `try f` or `f?`".into(),
                    ));
                }
                return Ok(Ast::Try(Box::new(body)));
            }
            "def" | "reduce" | "foreach" | "label" | "import" | "include" => {
                return Err(ParseError {
                    message: format!("`{name}` is not supported by this jq"),
                    at,
                });
            }
            kw if KEYWORDS.contains(&kw) => {
                return Err(ParseError {
                    message: format!("unexpected keyword `{kw}`: expected a term"),
                    at,
                });
            }
            _ => {}
        }
        let mut args = Vec::new();
        if self.eat_punct("(") {
            loop {
                args.push(self.pipe(false)?);
                if self.eat_punct(";") {
                    continue;
                }
                self.expect_punct(")", &format!("to close the arguments of `{name}`"))?;
                break;
            }
        }
        if !BUILTINS.iter().any(|(n, a)| *n == name && *a == args.len()) {
            let arities: Vec<String> = BUILTINS
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(n, a)| format!("{n}/{a}"))
                .collect();
            let message = if arities.is_empty() {
                format!("`{name}/{}` is not defined (unknown function)", args.len())
            } else {
                format!(
                    "`{name}/{}` is not defined; this jq has {}",
                    args.len(),
                    arities.join(", ")
                )
            };
            return Err(ParseError { message, at });
        }
        Ok(Ast::Call(name, args))
    }

    fn if_then(&mut self) -> Result<Ast, ParseError> {
        let mut branches = Vec::new();
        loop {
            let cond = self.pipe(false)?;
            self.expect_ident("then", "after the `if` condition")?;
            let then = self.pipe(false)?;
            branches.push((cond, then));
            if self.is_ident("elif") {
                self.pos += 1;
                continue;
            }
            let otherwise = if self.is_ident("else") {
                self.pos += 1;
                Some(Box::new(self.pipe(false)?))
            } else {
                None
            };
            self.expect_ident("end", "to close `if`")?;
            return Ok(Ast::If(branches, otherwise));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> Ast {
        Ast::Index(Box::new(Ast::Identity), Box::new(Ast::Literal(json!(name))))
    }

    #[test]
    fn parses_paths_and_precedence() {
        assert_eq!(parse(".").unwrap(), Ast::Identity);
        assert_eq!(parse("").unwrap(), Ast::Identity);
        assert_eq!(
            parse(".a.b").unwrap(),
            Ast::Index(Box::new(field("a")), Box::new(Ast::Literal(json!("b"))))
        );
        assert_eq!(parse(".a[]").unwrap(), Ast::Iterate(Box::new(field("a"))));
        assert_eq!(parse(r#"."x y""#).unwrap(), field("x y"));
        // `|` binds loosest, then `,`.
        assert_eq!(
            parse(".a, .b | .c").unwrap(),
            Ast::Pipe(
                Box::new(Ast::Comma(Box::new(field("a")), Box::new(field("b")))),
                Box::new(field("c"))
            )
        );
        // `*` before `+`, `+` before `==`, `==` before `and`.
        assert_eq!(
            parse("1 + 2 * 3 == 7 and true").unwrap(),
            Ast::And(
                Box::new(Ast::Binary(
                    BinOp::Eq,
                    Box::new(Ast::Binary(
                        BinOp::Add,
                        Box::new(Ast::Literal(json!(1))),
                        Box::new(Ast::Binary(
                            BinOp::Mul,
                            Box::new(Ast::Literal(json!(2))),
                            Box::new(Ast::Literal(json!(3)))
                        )),
                    )),
                    Box::new(Ast::Literal(json!(7))),
                )),
                Box::new(Ast::Literal(json!(true))),
            )
        );
        assert_eq!(parse("-1").unwrap(), Ast::Literal(json!(-1)));
    }

    #[test]
    fn parses_objects_arrays_calls_and_if() {
        assert_eq!(
            parse("{a: .x | length, b, \"c\": 1}").unwrap(),
            Ast::Object(vec![
                (
                    ObjKey::Literal("a".into()),
                    Some(Ast::Pipe(
                        Box::new(field("x")),
                        Box::new(Ast::Call("length".into(), vec![]))
                    ))
                ),
                (ObjKey::Literal("b".into()), None),
                (ObjKey::Literal("c".into()), Some(Ast::Literal(json!(1)))),
            ])
        );
        assert_eq!(parse("[]").unwrap(), Ast::Array(None));
        assert!(
            matches!(parse("select(.a > 1)").unwrap(), Ast::Call(n, a) if n == "select" && a.len() == 1)
        );
        assert!(
            matches!(parse("if . then 1 elif 2 then 3 else 4 end").unwrap(), Ast::If(b, Some(_)) if b.len() == 2)
        );
        assert!(matches!(
            parse(".[1:]").unwrap(),
            Ast::Slice(_, Some(_), None)
        ));
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = parse(".a | (1 + 2").unwrap_err();
        assert_eq!(e.at, 11);
        assert!(
            e.message.contains("expected `)` to close `(`"),
            "{}",
            e.message
        );
        let e = parse("map(.)(").unwrap_err();
        assert!(
            e.message.contains("unexpected `(` after a complete filter"),
            "{}",
            e.message
        );
        assert!(
            parse("nosuch")
                .unwrap_err()
                .message
                .contains("unknown function")
        );
        assert!(parse("map").unwrap_err().message.contains("map/1"));
        assert!(parse("1 < 2 < 3").unwrap_err().message.contains("chain"));
        assert!(
            parse(". as $x | 1")
                .unwrap_err()
                .message
                .contains("not supported")
        );
        assert!(
            parse("reduce .[] as $x (0; . + $x)")
                .unwrap_err()
                .message
                .contains("not supported")
        );
        assert!(
            parse("{(.a)}")
                .unwrap_err()
                .message
                .contains("needs a value")
        );
        assert!(parse("[1,2").unwrap_err().message.contains("to close `[`"));
    }
}
