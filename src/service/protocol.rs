//! JSON-RPC 2.0 as the service speaks it: one message per line, parsed into an
//! [`Incoming`], answered with a [`Response`] line.
//!
//! Owns: what a well-formed message is, the error codes and their meaning, and the
//! serialization of responses and notifications.
//! Must not: know any method or look at params beyond their JSON type; dispatching is
//! `mcp`'s job. [`parse_line`] is total: any bytes give an [`Incoming`], never a panic, and
//! every line that is not a well-formed notification or response gets exactly one error
//! response (see the fuzz test in `tests/all/service.rs`).
//!
//! Differences from bare JSON-RPC 2.0, as MCP (revision 2025-11-25) requires: batches
//! (a JSON array) are refused, ids are strings or integers (never `null`), and `params`,
//! when present, is an object.

use serde::Serialize;
use serde_json::{Map, Value};

/// The line was not JSON (or not UTF-8).
pub const PARSE_ERROR: i64 = -32700;
/// The JSON is not a valid request: not an object, wrong `jsonrpc`, bad `id`, a batch, a
/// line over the size cap or not finished in time.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The params have the wrong shape or types, the tool is unknown, or the arguments fail the
/// tool's input schema.
pub const INVALID_PARAMS: i64 = -32602;
/// airlock failed (e.g. the audit log cannot be written, so the call was not run).
pub const INTERNAL_ERROR: i64 = -32603;
/// A method other than `initialize` or `ping` came before `initialize`.
pub const NOT_INITIALIZED: i64 = -32050;
/// The caller may not do this: an `airlock/` method from a caller that is not an admin, or
/// a peer whose uid maps to no caller while callers.toml has no `default`.
pub const FORBIDDEN: i64 = -32051;
/// The service cannot take this now: too many connections, too many requests in flight on
/// this connection, or it is shutting down. Retrying later may work.
pub const BUSY: i64 = -32052;
/// `airlock/policy.reload` found mistakes in the policy directory; the old set stays.
pub const POLICY_REJECTED: i64 = -32053;
/// `airlock/approvals.*` failed (no such approval, already decided, expired).
pub const APPROVAL_FAILED: i64 = -32054;
/// `airlock/sessions.*` failed (the session is not suspended, the store cannot be read).
pub const SESSION_FAILED: i64 = -32055;

/// The JSON-RPC version string every message carries.
pub const JSONRPC: &str = "2.0";

/// A request id: a string or an integer (MCP forbids `null`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(i64),
    Text(String),
}

impl RequestId {
    /// The id of `value`, if it is a valid one.
    pub fn from_value(value: &Value) -> Option<RequestId> {
        match value {
            Value::String(text) => Some(RequestId::Text(text.clone())),
            Value::Number(number) => number.as_i64().map(RequestId::Number),
            _ => None,
        }
    }

    /// The id as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Number(number) => Value::from(*number),
            RequestId::Text(text) => Value::String(text.clone()),
        }
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestId::Number(number) => write!(f, "{number}"),
            RequestId::Text(text) => write!(f, "{text:?}"),
        }
    }
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request: it gets exactly one response.
    Request { id: RequestId, method: String, params: Map<String, Value> },
    /// A notification: it gets no response, ever (JSON-RPC 2.0 §4.1).
    Notification { method: String, params: Map<String, Value> },
    /// A response from the client (the service sends no requests, so it is ignored).
    Response,
    /// A blank line (ignored).
    Blank,
    /// Not a valid message: answer with this error response.
    Invalid(Response),
}

/// One response line: `result` or `error`, never both.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub jsonrpc: &'static str,
    /// `null` when the request's id could not be read.
    pub id: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and a message that says what to do next.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into(), data: None }
    }

    /// Adds structured detail.
    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }
}

impl Response {
    /// A success.
    pub fn result(id: &RequestId, result: Value) -> Response {
        Response { jsonrpc: JSONRPC, id: id.to_value(), result: Some(result), error: None }
    }

    /// A failure answering `id` (`None`: the id could not be read).
    pub fn error(id: Option<&RequestId>, error: RpcError) -> Response {
        Response { jsonrpc: JSONRPC, id: id.map_or(Value::Null, RequestId::to_value), result: None, error: Some(error) }
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> String {
        to_line(self)
    }
}

/// A notification from the service (e.g. `notifications/tools/list_changed`), as one line.
pub fn notification_line(method: &str, params: Option<Value>) -> String {
    let mut message = Map::new();
    message.insert("jsonrpc".into(), JSONRPC.into());
    message.insert("method".into(), method.into());
    if let Some(params) = params {
        message.insert("params".into(), params);
    }
    to_line(&Value::Object(message))
}

fn to_line(message: &impl Serialize) -> String {
    // Serializing a `Value`, or a struct of `Value`s and strings, cannot fail: the
    // fallback exists only so that this function has no panic path.
    let mut line = serde_json::to_string(message).unwrap_or_else(|error| {
        format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{INTERNAL_ERROR},"message":"cannot encode the response: {}"}}}}"#,
            error.to_string().replace(['"', '\\'], "'")
        )
    });
    line.push('\n');
    line
}

/// Parses one line (without its newline). Total: never panics, whatever the bytes.
pub fn parse_line(line: &[u8]) -> Incoming {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Incoming::Blank;
    }
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(error) => {
            return Incoming::Invalid(Response::error(
                None,
                RpcError::new(PARSE_ERROR, format!("not valid JSON ({error}); send one JSON-RPC object per line")),
            ));
        }
    };
    parse_message(value)
}

/// Classifies one JSON value.
pub fn parse_message(value: Value) -> Incoming {
    let invalid = |id: Option<&RequestId>, message: String| {
        Incoming::Invalid(Response::error(id, RpcError::new(INVALID_REQUEST, message)))
    };
    let mut object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return invalid(None, "batches (JSON arrays) are not supported; send one request object per line".into());
        }
        other => return invalid(None, format!("a message must be a JSON object, not {}", json_type(&other))),
    };
    // An id we can read is echoed in any error about the rest of the message.
    let id = match object.remove("id") {
        None => None,
        Some(raw) => match RequestId::from_value(&raw) {
            Some(id) => Some(id),
            None => {
                return invalid(None, format!("`id` must be a string or an integer, not {}", json_type(&raw)));
            }
        },
    };
    match object.get("jsonrpc") {
        Some(Value::String(version)) if version == JSONRPC => {}
        _ => return invalid(id.as_ref(), "`jsonrpc` must be \"2.0\"".into()),
    }
    let method = match object.remove("method") {
        Some(Value::String(method)) => method,
        Some(other) => return invalid(id.as_ref(), format!("`method` must be a string, not {}", json_type(&other))),
        None if object.contains_key("result") || object.contains_key("error") => return Incoming::Response,
        None => return invalid(id.as_ref(), "the message has no `method`".into()),
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(other) => {
            return Incoming::Invalid(Response::error(
                id.as_ref(),
                RpcError::new(INVALID_PARAMS, format!("`params` must be an object, not {}", json_type(&other))),
            ));
        }
    };
    match id {
        Some(id) => Incoming::Request { id, method, params },
        None => Incoming::Notification { method, params },
    }
}

/// The JSON type of a value, for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn error_code(incoming: &Incoming) -> Option<i64> {
        match incoming {
            Incoming::Invalid(response) => response.error.as_ref().map(|e| e.code),
            _ => None,
        }
    }

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        assert!(matches!(
            parse_line(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Incoming::Request { id: RequestId::Number(1), .. }
        ));
        assert!(matches!(
            parse_line(br#"{"jsonrpc":"2.0","id":"a","method":"ping","params":{}}"#),
            Incoming::Request { id: RequestId::Text(_), .. }
        ));
        assert!(matches!(
            parse_line(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Incoming::Notification { .. }
        ));
        assert_eq!(parse_line(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#), Incoming::Response);
        assert_eq!(parse_line(b"  \r"), Incoming::Blank);
    }

    #[test]
    fn malformed_messages_get_the_right_code() {
        assert_eq!(error_code(&parse_line(b"{")), Some(PARSE_ERROR));
        assert_eq!(error_code(&parse_line(b"\xff\xfe")), Some(PARSE_ERROR));
        assert_eq!(error_code(&parse_line(b"[]")), Some(INVALID_REQUEST));
        assert_eq!(error_code(&parse_line(b"3")), Some(INVALID_REQUEST));
        assert_eq!(error_code(&parse_line(br#"{"id":1,"method":"ping"}"#)), Some(INVALID_REQUEST));
        assert_eq!(error_code(&parse_line(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#)), Some(INVALID_REQUEST));
        assert_eq!(error_code(&parse_line(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#)), Some(INVALID_REQUEST));
        assert_eq!(error_code(&parse_line(br#"{"jsonrpc":"2.0","id":1,"method":7}"#)), Some(INVALID_REQUEST));
        assert_eq!(
            error_code(&parse_line(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#)),
            Some(INVALID_PARAMS)
        );
    }

    #[test]
    fn errors_echo_the_id_when_it_can_be_read() {
        let Incoming::Invalid(response) = parse_line(br#"{"jsonrpc":"1.0","id":"abc","method":"ping"}"#) else {
            panic!("expected an error");
        };
        assert_eq!(response.id, Value::String("abc".into()));
        let line = response.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    }
}
