//! Evaluates an [`Ast`] against a JSON value. Every filter is a generator: it yields zero
//! or more results lazily (`Outputs`), and an error ends the stream at the point it
//! happens, as in jq. Also holds jq's value semantics: the total order of values,
//! arithmetic, truthiness. Must not do I/O.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use crate::parser::{Ast, BinOp, ObjKey};

/// A runtime error, with jq's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JqError(pub String);

/// The results of a filter: values, possibly ended by an error.
pub type Outputs<'a> = Box<dyn Iterator<Item = Result<Value, JqError>> + 'a>;

/// Caps `..`, `recurse` and `flatten` depth so a deeply nested input cannot exhaust the
/// stack of the wasm guest.
const MAX_DEPTH: usize = 512;

/// Caps `range` and string repetition so one expression cannot exhaust memory.
const MAX_GENERATED: usize = 10_000_000;

fn one<'a>(v: Value) -> Outputs<'a> {
    Box::new(std::iter::once(Ok(v)))
}

fn fail<'a>(message: impl Into<String>) -> Outputs<'a> {
    Box::new(std::iter::once(Err(JqError(message.into()))))
}

fn none<'a>() -> Outputs<'a> {
    Box::new(std::iter::empty())
}

fn from_result<'a>(r: Result<Value, JqError>) -> Outputs<'a> {
    Box::new(std::iter::once(r))
}

/// Defers building a generator until it is first pulled.
fn defer<'a>(f: impl FnOnce() -> Outputs<'a> + 'a) -> Outputs<'a> {
    Box::new(std::iter::once(f).flat_map(|f| f()))
}

/// A number value: integral values that fit are stored as integers (printed without
/// `.0`), non-finite ones become `null` (JSON has no NaN or infinity).
pub fn number(n: f64) -> Value {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(0.0)
}

/// jq's type name.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `type (value)` with the value cut short, as in jq's messages.
fn describe(v: &Value) -> String {
    let text = v.to_string();
    let shown = if text.chars().count() > 11 {
        format!("{}...", text.chars().take(10).collect::<String>())
    } else {
        text
    };
    format!("{} ({shown})", type_name(v))
}

/// jq truthiness: everything but `false` and `null` is true.
pub fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(false) => 1,
        Value::Bool(true) => 2,
        Value::Number(_) => 3,
        Value::String(_) => 4,
        Value::Array(_) => 5,
        Value::Object(_) => 6,
    }
}

/// jq's total order: null < false < true < numbers < strings < arrays < objects; arrays
/// element by element; objects by their sorted keys, then their values in key order.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            as_f64(x).partial_cmp(&as_f64(y)).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut kx: Vec<&String> = x.keys().collect();
            let mut ky: Vec<&String> = y.keys().collect();
            kx.sort();
            ky.sort();
            match kx.cmp(&ky) {
                Ordering::Equal => {}
                o => return o,
            }
            for k in kx {
                let o = compare(&x[k.as_str()], &y[k.as_str()]);
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        }
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn sorted_keys(m: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = m.keys().cloned().collect();
    keys.sort();
    keys
}

/// `a op b`.
pub fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, JqError> {
    use Value::*;
    let cannot = |verb: &str, a: &Value, b: &Value| {
        Err(JqError(format!(
            "{} and {} cannot be {verb}",
            describe(a),
            describe(b)
        )))
    };
    match op {
        BinOp::Eq => Ok(Bool(compare(&a, &b) == Ordering::Equal)),
        BinOp::Ne => Ok(Bool(compare(&a, &b) != Ordering::Equal)),
        BinOp::Lt => Ok(Bool(compare(&a, &b) == Ordering::Less)),
        BinOp::Le => Ok(Bool(compare(&a, &b) != Ordering::Greater)),
        BinOp::Gt => Ok(Bool(compare(&a, &b) == Ordering::Greater)),
        BinOp::Ge => Ok(Bool(compare(&a, &b) != Ordering::Less)),
        BinOp::Add => match (a, b) {
            (Null, b) => Ok(b),
            (a, Null) => Ok(a),
            (Number(x), Number(y)) => Ok(number(as_f64(&x) + as_f64(&y))),
            (String(x), String(y)) => Ok(String(x + &y)),
            (Array(mut x), Array(y)) => {
                x.extend(y);
                Ok(Array(x))
            }
            (Object(mut x), Object(y)) => {
                x.extend(y);
                Ok(Object(x))
            }
            (a, b) => cannot("added", &a, &b),
        },
        BinOp::Sub => match (a, b) {
            (Number(x), Number(y)) => Ok(number(as_f64(&x) - as_f64(&y))),
            (Array(x), Array(y)) => Ok(Array(
                x.into_iter()
                    .filter(|v| !y.iter().any(|w| compare(v, w) == Ordering::Equal))
                    .collect(),
            )),
            (a, b) => cannot("subtracted", &a, &b),
        },
        BinOp::Mul => match (a, b) {
            (Number(x), Number(y)) => Ok(number(as_f64(&x) * as_f64(&y))),
            (String(s), Number(n)) | (Number(n), String(s)) => {
                let times = as_f64(&n);
                if times <= 0.0 {
                    return Ok(Null);
                }
                let count = times.ceil() as usize;
                if count.saturating_mul(s.len().max(1)) > MAX_GENERATED {
                    return Err(JqError(format!(
                        "string repeated {count} times is too long"
                    )));
                }
                Ok(String(s.repeat(count)))
            }
            (Object(x), Object(y)) => Ok(Object(deep_merge(x, y))),
            (a, b) => cannot("multiplied", &a, &b),
        },
        BinOp::Div => match (a, b) {
            (Number(x), Number(y)) => {
                if as_f64(&y) == 0.0 {
                    return Err(JqError(format!(
                        "{} and {} cannot be divided because the divisor is zero",
                        describe(&Number(x)),
                        describe(&Number(y))
                    )));
                }
                Ok(number(as_f64(&x) / as_f64(&y)))
            }
            (String(x), String(y)) => Ok(split(&x, &y)),
            (a, b) => cannot("divided", &a, &b),
        },
        BinOp::Mod => match (a, b) {
            (Number(x), Number(y)) => {
                let (p, q) = (as_f64(&x) as i64, as_f64(&y) as i64);
                if q == 0 {
                    return Err(JqError(format!(
                        "{} and {} cannot be divided because the divisor is zero",
                        describe(&Number(x)),
                        describe(&Number(y))
                    )));
                }
                Ok(number(p.wrapping_rem(q) as f64))
            }
            (a, b) => cannot("divided", &a, &b),
        },
    }
}

fn deep_merge(mut x: Map<String, Value>, y: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in y {
        let merged = match (x.remove(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => Value::Object(deep_merge(a, b)),
            (_, v) => v,
        };
        // `remove` + `insert` would move the key last; keep its place when it was there.
        x.insert(k, merged);
    }
    x
}

fn split(s: &str, sep: &str) -> Value {
    if s.is_empty() {
        return Value::Array(Vec::new());
    }
    if sep.is_empty() {
        return Value::Array(s.chars().map(|c| Value::String(c.to_string())).collect());
    }
    Value::Array(s.split(sep).map(|p| Value::String(p.to_string())).collect())
}

/// `v[i]`.
fn index(v: &Value, i: &Value) -> Result<Value, JqError> {
    match (v, i) {
        (Value::Null, Value::String(_) | Value::Number(_) | Value::Null) => Ok(Value::Null),
        (Value::Object(m), Value::String(k)) => Ok(m.get(k).cloned().unwrap_or(Value::Null)),
        (Value::Array(a), Value::Number(n)) => {
            let n = as_f64(n).floor();
            let at = if n < 0.0 { a.len() as f64 + n } else { n };
            Ok(if at < 0.0 {
                Value::Null
            } else {
                a.get(at as usize).cloned().unwrap_or(Value::Null)
            })
        }
        (Value::Array(_) | Value::Null, Value::Object(_)) => Err(JqError(
            "slicing with an object index is not supported by this jq; use .[a:b]".into(),
        )),
        (v, Value::String(k)) => Err(JqError(format!(
            "Cannot index {} with \"{k}\"",
            type_name(v)
        ))),
        (v, i) => Err(JqError(format!(
            "Cannot index {} with {}",
            type_name(v),
            type_name(i)
        ))),
    }
}

fn slice_bounds(len: usize, from: &Value, to: &Value) -> Result<(usize, usize), JqError> {
    let bound = |b: &Value, default: usize, round_up: bool| -> Result<usize, JqError> {
        match b {
            Value::Null => Ok(default),
            Value::Number(n) => {
                let n = as_f64(n);
                let n = if round_up { n.ceil() } else { n.floor() };
                let n = if n < 0.0 { len as f64 + n } else { n };
                Ok(n.clamp(0.0, len as f64) as usize)
            }
            other => Err(JqError(format!(
                "Start and end indices of an array slice must be numbers, not {}",
                type_name(other)
            ))),
        }
    };
    let start = bound(from, 0, false)?;
    let end = bound(to, len, true)?;
    Ok((start, end.max(start)))
}

fn slice(v: &Value, from: &Value, to: &Value) -> Result<Value, JqError> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::Array(a) => {
            let (s, e) = slice_bounds(a.len(), from, to)?;
            Ok(Value::Array(a[s..e].to_vec()))
        }
        Value::String(text) => {
            let chars: Vec<char> = text.chars().collect();
            let (s, e) = slice_bounds(chars.len(), from, to)?;
            Ok(Value::String(chars[s..e].iter().collect()))
        }
        other => Err(JqError(format!(
            "Cannot index {} with object",
            type_name(other)
        ))),
    }
}

/// `v[]`.
fn iterate(v: Value) -> Result<Vec<Value>, JqError> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Object(m) => Ok(m.into_iter().map(|(_, v)| v).collect()),
        other => Err(JqError(format!("Cannot iterate over {}", describe(&other)))),
    }
}

fn collect_all(out: Outputs<'_>) -> Result<Vec<Value>, JqError> {
    out.collect()
}

/// Runs a filter against an input.
pub fn eval<'a>(ast: &'a Ast, input: Value) -> Outputs<'a> {
    match ast {
        Ast::Identity => one(input),
        Ast::Recurse => match recurse_values(input, 0) {
            Ok(values) => Box::new(values.into_iter().map(Ok)),
            Err(e) => from_result(Err(e)),
        },
        Ast::Literal(v) => one(v.clone()),
        Ast::Index(target, idx) => {
            let input2 = input.clone();
            Box::new(eval(target, input).flat_map(move |t| -> Outputs<'a> {
                match t {
                    Err(e) => from_result(Err(e)),
                    Ok(t) => Box::new(
                        eval(idx, input2.clone()).map(move |i| i.and_then(|i| index(&t, &i))),
                    ),
                }
            }))
        }
        Ast::Slice(target, from, to) => {
            let input2 = input.clone();
            Box::new(eval(target, input).flat_map(move |t| -> Outputs<'a> {
                let t = match t {
                    Err(e) => return from_result(Err(e)),
                    Ok(t) => t,
                };
                let froms = match from {
                    Some(f) => collect_all(eval(f, input2.clone())),
                    None => Ok(vec![Value::Null]),
                };
                let tos = match to {
                    Some(f) => collect_all(eval(f, input2.clone())),
                    None => Ok(vec![Value::Null]),
                };
                match (froms, tos) {
                    (Ok(froms), Ok(tos)) => {
                        let mut out = Vec::new();
                        for f in &froms {
                            for t2 in &tos {
                                out.push(slice(&t, f, t2));
                            }
                        }
                        Box::new(out.into_iter())
                    }
                    (Err(e), _) | (_, Err(e)) => from_result(Err(e)),
                }
            }))
        }
        Ast::Iterate(target) => Box::new(eval(target, input).flat_map(|t| -> Outputs<'a> {
            match t.and_then(iterate) {
                Ok(values) => Box::new(values.into_iter().map(Ok)),
                Err(e) => from_result(Err(e)),
            }
        })),
        Ast::Try(body) => Box::new(eval(body, input).map_while(|r| r.ok()).map(Ok)),
        Ast::Array(None) => one(Value::Array(Vec::new())),
        Ast::Array(Some(body)) => from_result(collect_all(eval(body, input)).map(Value::Array)),
        Ast::Object(entries) => from_result_list(build_object(entries, &input)),
        Ast::Neg(body) => Box::new(eval(body, input).map(|r| {
            r.and_then(|v| match v {
                Value::Number(n) => Ok(number(-as_f64(&n))),
                other => Err(JqError(format!("{} cannot be negated", describe(&other)))),
            })
        })),
        Ast::Pipe(left, right) => Box::new(eval(left, input).flat_map(move |v| -> Outputs<'a> {
            match v {
                Ok(v) => eval(right, v),
                Err(e) => from_result(Err(e)),
            }
        })),
        Ast::Comma(left, right) => {
            let input2 = input.clone();
            Box::new(eval(left, input).chain(defer(move || eval(right, input2))))
        }
        Ast::Binary(op, left, right) => {
            // As jq: the right operand is the outer loop.
            let input2 = input.clone();
            Box::new(eval(right, input).flat_map(move |r| -> Outputs<'a> {
                match r {
                    Err(e) => from_result(Err(e)),
                    Ok(r) => Box::new(
                        eval(left, input2.clone())
                            .map(move |l| l.and_then(|l| binary(*op, l, r.clone()))),
                    ),
                }
            }))
        }
        Ast::And(left, right) | Ast::Or(left, right) => {
            let is_and = matches!(ast, Ast::And(..));
            let input2 = input.clone();
            Box::new(eval(left, input).flat_map(move |l| -> Outputs<'a> {
                match l {
                    Err(e) => from_result(Err(e)),
                    Ok(l) if truthy(&l) != is_and => one(Value::Bool(!is_and)),
                    Ok(_) => Box::new(
                        eval(right, input2.clone()).map(|r| r.map(|r| Value::Bool(truthy(&r)))),
                    ),
                }
            }))
        }
        Ast::Alternative(left, right) => {
            let mut good = Vec::new();
            for r in eval(left, input.clone()) {
                match r {
                    Ok(v) if truthy(&v) => good.push(Ok(v)),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            if good.is_empty() {
                eval(right, input)
            } else {
                Box::new(good.into_iter())
            }
        }
        Ast::If(branches, otherwise) => if_branch(branches, otherwise.as_deref(), input),
        Ast::Call(name, args) => call(name, args, input),
    }
}

fn from_result_list<'a>(r: Result<Vec<Value>, JqError>) -> Outputs<'a> {
    match r {
        Ok(values) => Box::new(values.into_iter().map(Ok)),
        Err(e) => from_result(Err(e)),
    }
}

fn if_branch<'a>(
    branches: &'a [(Ast, Ast)],
    otherwise: Option<&'a Ast>,
    input: Value,
) -> Outputs<'a> {
    let Some(((cond, then), rest)) = branches.split_first() else {
        return match otherwise {
            Some(e) => eval(e, input),
            None => one(input),
        };
    };
    let input2 = input.clone();
    Box::new(eval(cond, input).flat_map(move |c| -> Outputs<'a> {
        match c {
            Err(e) => from_result(Err(e)),
            Ok(c) if truthy(&c) => eval(then, input2.clone()),
            Ok(_) => if_branch(rest, otherwise, input2.clone()),
        }
    }))
}

/// Every combination of the entries' keys and values, first entry outermost.
fn build_object(entries: &[(ObjKey, Option<Ast>)], input: &Value) -> Result<Vec<Value>, JqError> {
    let mut partials = vec![Map::new()];
    for (key, value) in entries {
        let keys: Vec<Value> = match key {
            ObjKey::Literal(k) => vec![Value::String(k.clone())],
            ObjKey::Expr(f) => collect_all(eval(f, input.clone()))?,
        };
        let mut next = Vec::new();
        for partial in &partials {
            for k in &keys {
                let Value::String(k) = k else {
                    return Err(JqError(format!(
                        "Object keys must be strings, not {}",
                        describe(k)
                    )));
                };
                let values = match value {
                    Some(f) => collect_all(eval(f, input.clone()))?,
                    None => vec![index(input, &Value::String(k.clone()))?],
                };
                for v in values {
                    let mut m = partial.clone();
                    m.insert(k.clone(), v);
                    next.push(m);
                }
            }
        }
        partials = next;
    }
    Ok(partials.into_iter().map(Value::Object).collect())
}

fn recurse_values(v: Value, depth: usize) -> Result<Vec<Value>, JqError> {
    if depth > MAX_DEPTH {
        return Err(JqError(format!(
            "input nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let mut out = vec![v.clone()];
    match v {
        Value::Array(a) => {
            for x in a {
                out.extend(recurse_values(x, depth + 1)?);
            }
        }
        Value::Object(m) => {
            for (_, x) in m {
                out.extend(recurse_values(x, depth + 1)?);
            }
        }
        _ => {}
    }
    Ok(out)
}

fn recurse_with(f: &Ast, v: Value, depth: usize, out: &mut Vec<Value>) -> Result<(), JqError> {
    if depth > MAX_DEPTH {
        return Err(JqError(format!("recursion deeper than {MAX_DEPTH} levels")));
    }
    out.push(v.clone());
    for next in eval(f, v) {
        recurse_with(f, next?, depth + 1, out)?;
    }
    Ok(())
}

fn flatten(a: Vec<Value>, depth: f64, out: &mut Vec<Value>, level: usize) -> Result<(), JqError> {
    if level > MAX_DEPTH {
        return Err(JqError(format!(
            "array nested deeper than {MAX_DEPTH} levels"
        )));
    }
    for v in a {
        match v {
            Value::Array(inner) if depth > 0.0 => flatten(inner, depth - 1.0, out, level + 1)?,
            other => out.push(other),
        }
    }
    Ok(())
}

fn length(v: &Value) -> Result<Value, JqError> {
    match v {
        Value::Null => Ok(number(0.0)),
        Value::Bool(_) => Err(JqError(format!("{} has no length", describe(v)))),
        Value::Number(n) => Ok(number(as_f64(n).abs())),
        Value::String(s) => Ok(number(s.chars().count() as f64)),
        Value::Array(a) => Ok(number(a.len() as f64)),
        Value::Object(m) => Ok(number(m.len() as f64)),
    }
}

fn keys(v: &Value, sorted: bool) -> Result<Value, JqError> {
    match v {
        Value::Object(m) => {
            let keys = if sorted {
                sorted_keys(m)
            } else {
                m.keys().cloned().collect()
            };
            Ok(Value::Array(keys.into_iter().map(Value::String).collect()))
        }
        Value::Array(a) => Ok(Value::Array(
            (0..a.len()).map(|i| number(i as f64)).collect(),
        )),
        other => Err(JqError(format!("{} has no keys", describe(other)))),
    }
}

fn has(v: &Value, k: &Value) -> Result<Value, JqError> {
    match (v, k) {
        (Value::Object(m), Value::String(k)) => Ok(Value::Bool(m.contains_key(k))),
        (Value::Array(a), Value::Number(n)) => {
            let n = as_f64(n);
            Ok(Value::Bool(n >= 0.0 && (n as usize) < a.len()))
        }
        (v, k) => Err(JqError(format!(
            "Cannot check whether {} has a {} key",
            type_name(v),
            type_name(k)
        ))),
    }
}

fn array_of<'v>(v: &'v Value, what: &str) -> Result<&'v Vec<Value>, JqError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(JqError(format!(
            "{} cannot be {what}, as it is not an array",
            describe(other)
        ))),
    }
}

/// `[f]` for each element, the key `sort_by` and friends order by.
fn keyed(f: &Ast, a: &[Value]) -> Result<Vec<(Value, Value)>, JqError> {
    a.iter()
        .map(|x| Ok((Value::Array(collect_all(eval(f, x.clone()))?), x.clone())))
        .collect()
}

fn contains(a: &Value, b: &Value) -> Result<bool, JqError> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, bv) in y {
                match x.get(k) {
                    Some(av) if contains(av, bv)? => {}
                    _ => return Ok(false),
                }
            }
            Ok(true)
        }
        (Value::Array(x), Value::Array(y)) => {
            for bv in y {
                let mut found = false;
                for av in x {
                    if contains(av, bv)? {
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        (Value::String(x), Value::String(y)) => Ok(x.contains(y.as_str())),
        (a, b) if type_name(a) == type_name(b) => Ok(compare(a, b) == Ordering::Equal),
        (a, b) => Err(JqError(format!(
            "{} and {} cannot have their containment checked",
            describe(a),
            describe(b)
        ))),
    }
}

fn tostring(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        other => Value::String(other.to_string()),
    }
}

fn string_arg<'v>(v: &'v Value, name: &str) -> Result<&'v str, JqError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(JqError(format!(
            "{name} input and argument must be strings, not {}",
            describe(other)
        ))),
    }
}

/// Evaluates a one-argument builtin whose argument is a value: one call per output of
/// the argument.
fn with_arg<'a>(
    arg: &'a Ast,
    input: Value,
    f: impl Fn(&Value, Value) -> Result<Value, JqError> + 'a,
) -> Outputs<'a> {
    let input2 = input.clone();
    Box::new(eval(arg, input).map(move |a| a.and_then(|a| f(&input2, a))))
}

fn call<'a>(name: &str, args: &'a [Ast], input: Value) -> Outputs<'a> {
    let result: Result<Value, JqError> = match (name, args) {
        ("empty", []) => return none(),
        ("not", []) => Ok(Value::Bool(!truthy(&input))),
        ("length", []) => length(&input),
        ("keys", []) => keys(&input, true),
        ("keys_unsorted", []) => keys(&input, false),
        ("values", []) => return if input.is_null() { none() } else { one(input) },
        ("type", []) => Ok(Value::String(type_name(&input).into())),
        ("has", [k]) => return with_arg(k, input, |v, k| has(v, &k)),
        ("add", []) => match iterate(input) {
            Ok(values) => values
                .into_iter()
                .try_fold(Value::Null, |acc, v| binary(BinOp::Add, acc, v)),
            Err(e) => Err(e),
        },
        ("first", []) => index(&input, &number(0.0)),
        ("last", []) => index(&input, &number(-1.0)),
        ("first", [f]) => return Box::new(eval(f, input).take(1)),
        ("last", [f]) => {
            let mut last = None;
            for r in eval(f, input) {
                match r {
                    Ok(v) => last = Some(v),
                    Err(e) => return from_result(Err(e)),
                }
            }
            return match last {
                Some(v) => one(v),
                None => none(),
            };
        }
        ("limit", [n, f]) => {
            let counts = match collect_all(eval(n, input.clone())) {
                Ok(c) => c,
                Err(e) => return from_result(Err(e)),
            };
            let mut out: Vec<Result<Value, JqError>> = Vec::new();
            for c in counts {
                let Value::Number(c) = c else {
                    return fail("limit's count must be a number");
                };
                let take = as_f64(&c).max(0.0) as usize;
                out.extend(eval(f, input.clone()).take(take));
            }
            return Box::new(out.into_iter());
        }
        ("range", [n]) => {
            return Box::new(eval(n, input).flat_map(move |n| -> Outputs<'a> {
                match n {
                    Ok(Value::Number(n)) => range(0.0, as_f64(&n)),
                    Ok(other) => fail(format!(
                        "Range bounds must be numeric, not {}",
                        describe(&other)
                    )),
                    Err(e) => from_result(Err(e)),
                }
            }));
        }
        ("range", [from, to]) => {
            let froms = collect_all(eval(from, input.clone()));
            let tos = collect_all(eval(to, input));
            let (froms, tos) = match (froms, tos) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(e), _) | (_, Err(e)) => return from_result(Err(e)),
            };
            let mut out: Vec<Outputs<'a>> = Vec::new();
            for f in &froms {
                for t in &tos {
                    match (f, t) {
                        (Value::Number(a), Value::Number(b)) => {
                            out.push(range(as_f64(a), as_f64(b)))
                        }
                        _ => out.push(fail("Range bounds must be numeric")),
                    }
                }
            }
            return Box::new(out.into_iter().flatten());
        }
        ("sort", []) => array_of(&input, "sorted").map(|a| {
            let mut a = a.clone();
            a.sort_by(compare);
            Value::Array(a)
        }),
        ("sort_by", [f]) => array_of(&input, "sorted").and_then(|a| {
            let mut k = keyed(f, a)?;
            k.sort_by(|x, y| compare(&x.0, &y.0));
            Ok(Value::Array(k.into_iter().map(|(_, v)| v).collect()))
        }),
        ("group_by", [f]) => array_of(&input, "grouped").and_then(|a| {
            let mut k = keyed(f, a)?;
            k.sort_by(|x, y| compare(&x.0, &y.0));
            let mut groups: Vec<(Value, Vec<Value>)> = Vec::new();
            for (key, v) in k {
                match groups.last_mut() {
                    Some((last, g)) if compare(last, &key) == Ordering::Equal => g.push(v),
                    _ => groups.push((key, vec![v])),
                }
            }
            Ok(Value::Array(
                groups.into_iter().map(|(_, g)| Value::Array(g)).collect(),
            ))
        }),
        ("unique", []) => array_of(&input, "sorted").map(|a| {
            let mut a = a.clone();
            a.sort_by(compare);
            a.dedup_by(|x, y| compare(x, y) == Ordering::Equal);
            Value::Array(a)
        }),
        ("unique_by", [f]) => array_of(&input, "sorted").and_then(|a| {
            let mut k = keyed(f, a)?;
            k.sort_by(|x, y| compare(&x.0, &y.0));
            k.dedup_by(|x, y| compare(&x.0, &y.0) == Ordering::Equal);
            Ok(Value::Array(k.into_iter().map(|(_, v)| v).collect()))
        }),
        ("min", []) => array_of(&input, "compared").map(|a| {
            a.iter()
                .min_by(|x, y| compare(x, y))
                .cloned()
                .unwrap_or(Value::Null)
        }),
        ("max", []) => array_of(&input, "compared").map(|a| {
            // The last of equal maxima, as jq.
            a.iter()
                .max_by(|x, y| compare(x, y))
                .cloned()
                .unwrap_or(Value::Null)
        }),
        ("min_by", [f]) => array_of(&input, "compared").and_then(|a| {
            let k = keyed(f, a)?;
            Ok(k.into_iter()
                .min_by(|x, y| compare(&x.0, &y.0))
                .map_or(Value::Null, |(_, v)| v))
        }),
        ("max_by", [f]) => array_of(&input, "compared").and_then(|a| {
            let k = keyed(f, a)?;
            Ok(k.into_iter()
                .max_by(|x, y| compare(&x.0, &y.0))
                .map_or(Value::Null, |(_, v)| v))
        }),
        ("reverse", []) => match input {
            Value::Array(mut a) => {
                a.reverse();
                Ok(Value::Array(a))
            }
            Value::String(s) => Ok(Value::String(s.chars().rev().collect())),
            Value::Null => Ok(Value::Array(Vec::new())),
            other => Err(JqError(format!("Cannot reverse {}", describe(&other)))),
        },
        ("select", [f]) => {
            let input2 = input.clone();
            return Box::new(eval(f, input).filter_map(move |c| match c {
                Ok(c) if truthy(&c) => Some(Ok(input2.clone())),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }));
        }
        ("map", [f]) => iterate(input).and_then(|values| {
            let mut out = Vec::new();
            for v in values {
                out.extend(collect_all(eval(f, v))?);
            }
            Ok(Value::Array(out))
        }),
        ("map_values", [f]) => (|| match input {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    if let Some(r) = eval(f, v).next() {
                        out.insert(k, r?);
                    }
                }
                Ok(Value::Object(out))
            }
            Value::Array(a) => {
                let mut out = Vec::new();
                for v in a {
                    if let Some(r) = eval(f, v).next() {
                        out.push(r?);
                    }
                }
                Ok(Value::Array(out))
            }
            other => Err(JqError(format!("Cannot iterate over {}", describe(&other)))),
        })(),
        ("to_entries", []) => to_entries(&input),
        ("from_entries", []) => from_entries(&input),
        ("with_entries", [f]) => to_entries(&input).and_then(|entries| {
            let mut mapped = Vec::new();
            for e in iterate(entries)? {
                mapped.extend(collect_all(eval(f, e))?);
            }
            from_entries(&Value::Array(mapped))
        }),
        ("tostring", []) => Ok(tostring(&input)),
        ("tonumber", []) => match &input {
            Value::Number(_) => Ok(input.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(number)
                .ok_or_else(|| JqError(format!("Cannot parse '{s}' as a number"))),
            other => Err(JqError(format!(
                "{} cannot be parsed as a number",
                describe(other)
            ))),
        },
        ("tojson", []) => Ok(Value::String(input.to_string())),
        ("fromjson", []) => match &input {
            Value::String(s) => serde_json::from_str(s).map_err(|e| {
                JqError(format!(
                    "{} cannot be parsed as JSON: {e}",
                    describe(&input)
                ))
            }),
            other => Err(JqError(format!(
                "{} cannot be parsed as JSON, as it is not a string",
                describe(other)
            ))),
        },
        ("ascii_downcase", []) => {
            string_arg(&input, "ascii_downcase").map(|s| Value::String(s.to_ascii_lowercase()))
        }
        ("ascii_upcase", []) => {
            string_arg(&input, "ascii_upcase").map(|s| Value::String(s.to_ascii_uppercase()))
        }
        ("join", [sep]) => {
            return with_arg(sep, input, |v, sep| {
                let sep = string_arg(&sep, "join separator")?.to_string();
                let mut parts = Vec::new();
                for x in iterate(v.clone())? {
                    parts.push(match x {
                        Value::Null => String::new(),
                        Value::String(s) => s,
                        Value::Number(_) | Value::Bool(_) => x.to_string(),
                        other => {
                            return Err(JqError(format!("Cannot join with {}", describe(&other))));
                        }
                    });
                }
                Ok(Value::String(parts.join(&sep)))
            });
        }
        ("split", [sep]) => {
            return with_arg(sep, input, |v, sep| {
                Ok(split(string_arg(v, "split")?, string_arg(&sep, "split")?))
            });
        }
        ("startswith", [p]) => {
            return with_arg(p, input, |v, p| {
                Ok(Value::Bool(
                    string_arg(v, "startswith")?.starts_with(string_arg(&p, "startswith")?),
                ))
            });
        }
        ("endswith", [p]) => {
            return with_arg(p, input, |v, p| {
                Ok(Value::Bool(
                    string_arg(v, "endswith")?.ends_with(string_arg(&p, "endswith")?),
                ))
            });
        }
        ("ltrimstr", [p]) => {
            return with_arg(p, input, |v, p| {
                Ok(match (v, &p) {
                    (Value::String(s), Value::String(p)) => {
                        Value::String(s.strip_prefix(p.as_str()).unwrap_or(s).to_string())
                    }
                    _ => v.clone(),
                })
            });
        }
        ("rtrimstr", [p]) => {
            return with_arg(p, input, |v, p| {
                Ok(match (v, &p) {
                    (Value::String(s), Value::String(p)) => {
                        Value::String(s.strip_suffix(p.as_str()).unwrap_or(s).to_string())
                    }
                    _ => v.clone(),
                })
            });
        }
        ("contains", [b]) => return with_arg(b, input, |v, b| contains(v, &b).map(Value::Bool)),
        ("any", []) => iterate(input).map(|vs| Value::Bool(vs.iter().any(truthy))),
        ("all", []) => iterate(input).map(|vs| Value::Bool(vs.iter().all(truthy))),
        ("any", [f]) | ("all", [f]) => iterate(input).and_then(|vs| {
            let want_any = name == "any";
            for v in vs {
                for r in eval(f, v) {
                    if truthy(&r?) == want_any {
                        return Ok(Value::Bool(want_any));
                    }
                }
            }
            Ok(Value::Bool(!want_any))
        }),
        ("flatten", []) => array_of(&input, "flattened").and_then(|a| {
            let mut out = Vec::new();
            flatten(a.clone(), f64::INFINITY, &mut out, 0)?;
            Ok(Value::Array(out))
        }),
        ("flatten", [d]) => {
            return with_arg(d, input, |v, d| {
                let depth = match d {
                    Value::Number(n) if as_f64(&n) >= 0.0 => as_f64(&n),
                    _ => return Err(JqError("flatten depth must not be negative".into())),
                };
                let mut out = Vec::new();
                flatten(array_of(v, "flattened")?.clone(), depth, &mut out, 0)?;
                Ok(Value::Array(out))
            });
        }
        ("floor", []) | ("ceil", []) | ("round", []) | ("fabs", []) | ("sqrt", []) => {
            match &input {
                Value::Number(n) => {
                    let x = as_f64(n);
                    Ok(number(match name {
                        "floor" => x.floor(),
                        "ceil" => x.ceil(),
                        "round" => x.round(),
                        "fabs" => x.abs(),
                        _ => x.sqrt(),
                    }))
                }
                other => Err(JqError(format!("{} number required", describe(other)))),
            }
        }
        ("error", []) => Err(error_message(&input)),
        ("error", [m]) => {
            return Box::new(eval(m, input).map(|m| m.and_then(|m| Err(error_message(&m)))));
        }
        ("recurse", []) => return eval_recurse(input),
        ("recurse", [f]) => {
            let mut out = Vec::new();
            return match recurse_with(f, input, 0, &mut out) {
                Ok(()) => Box::new(out.into_iter().map(Ok)),
                Err(e) => Box::new(out.into_iter().map(Ok).chain(std::iter::once(Err(e)))),
            };
        }
        (other, args) => Err(JqError(format!("{other}/{} is not defined", args.len()))),
    };
    from_result(result)
}

fn eval_recurse<'a>(input: Value) -> Outputs<'a> {
    match recurse_values(input, 0) {
        Ok(values) => Box::new(values.into_iter().map(Ok)),
        Err(e) => from_result(Err(e)),
    }
}

fn error_message(v: &Value) -> JqError {
    match v {
        Value::String(s) => JqError(s.clone()),
        other => JqError(format!("{other} (not a string)")),
    }
}

fn range<'a>(from: f64, to: f64) -> Outputs<'a> {
    if to - from > MAX_GENERATED as f64 {
        return fail(format!("range of more than {MAX_GENERATED} values"));
    }
    let mut x = from;
    Box::new(std::iter::from_fn(move || {
        if x < to {
            let v = number(x);
            x += 1.0;
            Some(Ok(v))
        } else {
            None
        }
    }))
}

fn to_entries(v: &Value) -> Result<Value, JqError> {
    match v {
        Value::Array(a) => Ok(Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut e = Map::new();
                    e.insert("key".into(), number(i as f64));
                    e.insert("value".into(), v.clone());
                    Value::Object(e)
                })
                .collect(),
        )),
        Value::Object(m) => Ok(Value::Array(
            m.iter()
                .map(|(k, v)| {
                    let mut e = Map::new();
                    e.insert("key".into(), Value::String(k.clone()));
                    e.insert("value".into(), v.clone());
                    Value::Object(e)
                })
                .collect(),
        )),
        other => Err(JqError(format!("{} has no keys", describe(other)))),
    }
}

fn from_entries(v: &Value) -> Result<Value, JqError> {
    let mut out = Map::new();
    for e in iterate(v.clone())? {
        let Value::Object(m) = &e else {
            return Err(JqError(format!(
                "Cannot index {} with \"key\"",
                type_name(&e)
            )));
        };
        let key = ["key", "k", "name", "Name", "Key", "K"]
            .iter()
            .find_map(|k| m.get(*k).filter(|v| truthy(v)))
            .cloned()
            .unwrap_or(Value::Null);
        let value = ["value", "v", "Value", "V"]
            .iter()
            .find_map(|k| m.get(*k))
            .cloned()
            .unwrap_or(Value::Null);
        let key = match key {
            Value::String(s) => s,
            Value::Number(_) | Value::Bool(_) => key.to_string(),
            other => {
                return Err(JqError(format!(
                    "Cannot use {} as object key",
                    describe(&other)
                )));
            }
        };
        out.insert(key, value);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::parser::parse;
    use serde_json::json;

    fn run(filter: &str, input: Value) -> Result<Vec<Value>, JqError> {
        let ast = parse(filter).unwrap();
        eval(&ast, input).collect()
    }

    fn ok(filter: &str, input: Value) -> Vec<Value> {
        run(filter, input).unwrap_or_else(|e| panic!("{filter}: {}", e.0))
    }

    fn err(filter: &str, input: Value) -> String {
        run(filter, input).unwrap_err().0
    }

    #[test]
    fn paths_and_iteration() {
        let doc = json!({"a": {"b": [1, 2, 3]}, "x y": 5});
        assert_eq!(ok(".", doc.clone()), vec![doc.clone()]);
        assert_eq!(ok(".a.b", doc.clone()), vec![json!([1, 2, 3])]);
        assert_eq!(ok(".a.b[1]", doc.clone()), vec![json!(2)]);
        assert_eq!(ok(".a.b[-1]", doc.clone()), vec![json!(3)]);
        assert_eq!(ok(".a.b[9]", doc.clone()), vec![json!(null)]);
        assert_eq!(
            ok(".a.b[]", doc.clone()),
            vec![json!(1), json!(2), json!(3)]
        );
        assert_eq!(ok(r#"."x y""#, doc.clone()), vec![json!(5)]);
        assert_eq!(ok(r#".["x y"]"#, doc.clone()), vec![json!(5)]);
        assert_eq!(ok(".missing.deeper", doc.clone()), vec![json!(null)]);
        assert_eq!(ok(".a.b[1:]", doc.clone()), vec![json!([2, 3])]);
        assert_eq!(ok(".[]", json!({"p": 1, "q": 2})), vec![json!(1), json!(2)]);
        assert_eq!(ok("[..]", json!([[1]])), vec![json!([[[1]], [1], 1])]);
    }

    #[test]
    fn pipes_commas_and_construction() {
        let doc = json!({"user": "ann", "titles": ["a", "b"], "n": 2});
        assert_eq!(ok(".user, .n", doc.clone()), vec![json!("ann"), json!(2)]);
        assert_eq!(ok("[.titles[] | length]", doc.clone()), vec![json!([1, 1])]);
        assert_eq!(
            ok("{user, title: .titles[]}", doc.clone()),
            vec![
                json!({"user": "ann", "title": "a"}),
                json!({"user": "ann", "title": "b"})
            ]
        );
        assert_eq!(
            ok(r#"{(.user): .n, "k": (1, 2) | . * 10}"#, doc.clone()).len(),
            2
        );
        assert_eq!(ok("{}", doc.clone()), vec![json!({})]);
        assert_eq!(
            ok("[(1,2) + (10,20)]", json!(null)),
            vec![json!([11, 12, 21, 22])]
        );
    }

    #[test]
    fn arithmetic_and_comparison() {
        assert_eq!(ok("1 + 2 * 3 - 4 / 2", json!(null)), vec![json!(5)]);
        assert_eq!(ok("7 % 3", json!(null)), vec![json!(1)]);
        assert_eq!(ok("0.1 + 0.2 > 0.3", json!(null)), vec![json!(true)]);
        assert_eq!(ok(r#""a" + "b""#, json!(null)), vec![json!("ab")]);
        assert_eq!(ok("[1,2] + [3]", json!(null)), vec![json!([1, 2, 3])]);
        assert_eq!(ok("[1,2,1] - [1]", json!(null)), vec![json!([2])]);
        assert_eq!(
            ok(r#"{"a":1} + {"b":2}"#, json!(null)),
            vec![json!({"a": 1, "b": 2})]
        );
        assert_eq!(
            ok(r#"{"a":{"x":1}} * {"a":{"y":2}}"#, json!(null)),
            vec![json!({"a": {"x": 1, "y": 2}})]
        );
        assert_eq!(ok("null + 1", json!(null)), vec![json!(1)]);
        assert_eq!(ok(r#""a,b" / ",""#, json!(null)), vec![json!(["a", "b"])]);
        assert_eq!(ok("1 == 1.0", json!(null)), vec![json!(true)]);
        assert_eq!(
            ok(r#"[null, false, 1, "a", [], {}] | . == sort"#, json!(null)),
            vec![json!(true)]
        );
        assert_eq!(ok("-(.a)", json!({"a": 3})), vec![json!(-3)]);
        assert_eq!(ok("10 / 4", json!(null)), vec![json!(2.5)]);
        assert!(err("1 / 0", json!(null)).contains("divisor is zero"));
        assert_eq!(
            err(r#"{} + 1"#, json!(null)),
            "object ({}) and number (1) cannot be added"
        );
    }

    #[test]
    fn boolean_logic_alternative_and_if() {
        assert_eq!(
            ok("true and (true, false)", json!(null)),
            vec![json!(true), json!(false)]
        );
        assert_eq!(ok("false and error", json!(null)), vec![json!(false)]);
        assert_eq!(ok("null or 1", json!(null)), vec![json!(true)]);
        assert_eq!(ok("not", json!(false)), vec![json!(true)]);
        assert_eq!(ok(".a // \"d\"", json!({})), vec![json!("d")]);
        assert_eq!(ok(".a // \"d\"", json!({"a": 0})), vec![json!(0)]);
        assert_eq!(
            ok(
                "if . > 2 then \"big\" elif . > 1 then \"mid\" else \"small\" end",
                json!(2)
            ),
            vec![json!("mid")]
        );
        assert_eq!(ok("if . then 1 end", json!(false)), vec![json!(false)]);
    }

    #[test]
    fn select_map_and_aggregates() {
        let people =
            json!([{"name": "b", "age": 30}, {"name": "a", "age": 25}, {"name": "c", "age": 30}]);
        assert_eq!(
            ok("map(select(.age > 26) | .name)", people.clone()),
            vec![json!(["b", "c"])]
        );
        assert_eq!(
            ok(".[] | select(.name == \"a\") | .age", people.clone()),
            vec![json!(25)]
        );
        assert_eq!(
            ok("sort_by(.age) | map(.name)", people.clone()),
            vec![json!(["a", "b", "c"])]
        );
        assert_eq!(ok("map(.age) | add", people.clone()), vec![json!(85)]);
        assert_eq!(
            ok("map(.age) | unique", people.clone()),
            vec![json!([25, 30])]
        );
        assert_eq!(
            ok("map(.age) | min, max", people.clone()),
            vec![json!(25), json!(30)]
        );
        assert_eq!(
            ok("group_by(.age) | map(length)", people.clone()),
            vec![json!([1, 2])]
        );
        assert_eq!(ok("max_by(.age) | .name", people.clone()), vec![json!("c")]);
        assert_eq!(
            ok("first, last | .name", people.clone()),
            vec![json!("b"), json!("c")]
        );
        assert_eq!(ok("first(.[] | .age)", people.clone()), vec![json!(30)]);
        assert_eq!(ok("length", people.clone()), vec![json!(3)]);
        assert_eq!(
            ok("[] | add, min", json!(null)),
            vec![json!(null), json!(null)]
        );
        assert_eq!(ok("[limit(2; .[])]", json!([1, 2, 3])), vec![json!([1, 2])]);
        assert_eq!(
            ok("[range(3)], [range(1; 3)]", json!(null)),
            vec![json!([0, 1, 2]), json!([1, 2])]
        );
    }

    #[test]
    fn objects_keys_entries_and_strings() {
        let obj = json!({"b": 1, "a": 2});
        assert_eq!(ok("keys", obj.clone()), vec![json!(["a", "b"])]);
        assert_eq!(ok("keys_unsorted", obj.clone()), vec![json!(["b", "a"])]);
        assert_eq!(
            ok("has(\"a\"), has(\"z\")", obj.clone()),
            vec![json!(true), json!(false)]
        );
        assert_eq!(ok("has(1)", json!([0, 1])), vec![json!(true)]);
        assert_eq!(
            ok("to_entries", obj.clone()),
            vec![json!([{"key": "b", "value": 1}, {"key": "a", "value": 2}])]
        );
        assert_eq!(
            ok("to_entries | from_entries", obj.clone()),
            vec![obj.clone()]
        );
        assert_eq!(
            ok("with_entries(select(.value > 1))", obj.clone()),
            vec![json!({"a": 2})]
        );
        assert_eq!(
            ok("map(type)", json!([null, true, 1, "s", [], {}])),
            vec![json!([
                "null", "boolean", "number", "string", "array", "object"
            ])]
        );
        assert_eq!(ok("tostring", json!([1])), vec![json!("[1]")]);
        assert_eq!(ok("tostring", json!("s")), vec![json!("s")]);
        assert_eq!(ok("tonumber", json!("42")), vec![json!(42)]);
        assert_eq!(
            ok("join(\"-\")", json!(["a", 1, null])),
            vec![json!("a-1-")]
        );
        assert_eq!(ok("split(\",\")", json!("a,b")), vec![json!(["a", "b"])]);
        assert_eq!(ok("ascii_upcase", json!("abc")), vec![json!("ABC")]);
        assert_eq!(
            ok("contains({a: [1]})", json!({"a": [1, 2], "b": 0})),
            vec![json!(true)]
        );
        assert_eq!(ok(".[1:3]", json!("héllo")), vec![json!("él")]);
        assert_eq!(ok("empty", json!(1)), Vec::<Value>::new());
    }

    #[test]
    fn errors_are_jq_worded_and_optional_suppresses_them() {
        assert_eq!(err(".a", json!(5)), "Cannot index number with \"a\"");
        assert_eq!(err(".[0]", json!({})), "Cannot index object with number");
        assert_eq!(err(".[]", json!(5)), "Cannot iterate over number (5)");
        assert_eq!(
            err("keys", json!("long string here")),
            "string (\"long stri...) has no keys"
        );
        assert_eq!(err("tonumber", json!("x")), "Cannot parse 'x' as a number");
        assert_eq!(err("error(\"boom\")", json!(null)), "boom");
        assert_eq!(ok("[.[] | .a?]", json!([1, {"a": 2}])), vec![json!([2])]);
        assert_eq!(ok("[.[]?]", json!(3)), vec![json!([])]);
        assert_eq!(ok("try error(\"x\")", json!(null)), Vec::<Value>::new());
        assert_eq!(
            err("sort", json!({})),
            "object ({}) cannot be sorted, as it is not an array"
        );
        assert_eq!(err("length", json!(true)), "boolean (true) has no length");
    }

    #[test]
    fn errors_end_the_stream_where_they_happen() {
        let ast = parse(".[] | (1 / .)").unwrap();
        let out: Vec<_> = eval(&ast, json!([1, 0, 2])).collect();
        assert_eq!(out[0], Ok(json!(1)));
        assert!(out[1].is_err());
    }

    #[test]
    fn numbers_print_like_jq() {
        assert_eq!(number(3.0).to_string(), "3");
        assert_eq!(number(2.5).to_string(), "2.5");
        assert_eq!(number(f64::NAN), Value::Null);
    }
}
