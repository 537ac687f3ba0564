//! Small clients of the socket service: [`Client`] (blocking, for the CLI: `airlock
//! approvals ...`) and [`AsyncClient`] (tokio, for async callers, tests and benchmarks).
//! Both connect, send `initialize` once (the first [`Client::call`] does it), then match
//! responses to requests by id.
//!
//! Owns: the client side of the framing (one JSON object per line) and matching responses
//! to requests (responses may come in any order; notifications are kept aside).
//! Must not: claim an identity: the service knows who connects from the kernel.

use std::{
    collections::HashMap,
    io::{BufRead, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::{
    mcp::PROTOCOL_VERSIONS,
    protocol::{JSONRPC, RequestId},
};

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the airlock service at {path}: {cause}; is it running? (start `airlock serve`, or name \
         its socket with --socket PATH)"
    )]
    Connect { path: PathBuf, cause: std::io::Error },
    #[error("cannot talk to the airlock service: {0}")]
    Io(#[from] std::io::Error),
    #[error("the airlock service did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the airlock service closed the connection")]
    Closed,
    #[error("the airlock service sent something that is not a JSON-RPC message: {0}")]
    Protocol(String),
    #[error("{message} (JSON-RPC error {code})")]
    Rpc { code: i64, message: String, data: Option<Value> },
}

/// The client's result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What a client keeps between calls, whichever way it does I/O.
#[derive(Debug, Default)]
struct Session {
    next_id: i64,
    initialized: Option<Value>,
    /// Responses read while waiting for another id.
    responses: HashMap<RequestId, Value>,
    /// Notifications from the service, in arrival order.
    notifications: Vec<Value>,
}

impl Session {
    /// A request line and its id.
    fn request(&mut self, method: &str, params: Value) -> Result<(RequestId, Vec<u8>)> {
        self.next_id += 1;
        let id = RequestId::Number(self.next_id);
        let mut message = json!({ "jsonrpc": JSONRPC, "id": id.to_value(), "method": method });
        if !params.is_null() {
            message["params"] = params;
        }
        Ok((id, line(&message)?))
    }

    /// A notification line.
    fn notification(method: &str, params: Value) -> Result<Vec<u8>> {
        let mut message = json!({ "jsonrpc": JSONRPC, "method": method });
        if !params.is_null() {
            message["params"] = params;
        }
        line(&message)
    }

    /// `initialize`'s params, with `meta` as `_meta` unless null.
    fn initialize_params(meta: Value) -> Value {
        let mut params = json!({
            "protocolVersion": PROTOCOL_VERSIONS[0],
            "capabilities": {},
            "clientInfo": { "name": "airlock-client", "version": env!("CARGO_PKG_VERSION") },
        });
        if !meta.is_null() {
            params["_meta"] = meta;
        }
        params
    }

    /// The answer to `id` if it was read already.
    fn answered(&mut self, id: &RequestId) -> Option<Result<Value>> {
        self.responses.remove(id).map(outcome_of)
    }

    /// Files one message read while waiting for `id`; the answer when it is the one.
    fn file(&mut self, id: &RequestId, message: &str) -> Option<Result<Value>> {
        let message: Value = match serde_json::from_str(message) {
            Ok(message) => message,
            Err(e) => return Some(Err(ClientError::Protocol(format!("{e}: {}", message.trim_end())))),
        };
        if message.get("method").is_some() {
            self.notifications.push(message);
            return None;
        }
        match message.get("id").and_then(RequestId::from_value) {
            Some(other) if other == *id => Some(outcome_of(message)),
            Some(other) => {
                self.responses.insert(other, message);
                None
            }
            // An error the service could not tie to a request (id null): it closes the
            // connection after it.
            None => Some(outcome_of(message)),
        }
    }
}

fn line(message: &Value) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(message).map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// The result of a response, or its error.
fn outcome_of(mut response: Value) -> Result<Value> {
    if let Some(error) = response.get_mut("error").map(Value::take) {
        return Err(ClientError::Rpc {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error.get("message").and_then(Value::as_str).unwrap_or("(no message)").to_string(),
            data: error.get("data").cloned(),
        });
    }
    match response.get_mut("result").map(Value::take) {
        Some(result) => Ok(result),
        None => Err(ClientError::Protocol(format!("a response with neither result nor error: {response}"))),
    }
}

/// A blocking connection to `airlock serve`.
pub struct Client {
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
    session: Session,
}

impl Client {
    /// Connects (without `initialize`; [`Client::call`] sends it first when needed).
    pub fn connect(path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref();
        let stream = std::os::unix::net::UnixStream::connect(path)
            .map_err(|cause| ClientError::Connect { path: path.to_path_buf(), cause })?;
        let writer = stream.try_clone()?;
        Ok(Client { reader: std::io::BufReader::new(stream), writer, session: Session::default() })
    }

    /// Bounds how long one read may wait (`None`: forever, the default); a read that
    /// times out is a [`ClientError::Io`] of kind `WouldBlock` or `TimedOut`.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)?;
        Ok(())
    }

    /// Sends `initialize` with `meta` as its `_meta` (e.g. `{"airlock/workspace": DIR}`)
    /// and `notifications/initialized`; returns the result.
    pub fn initialize(&mut self, meta: Value) -> Result<Value> {
        let id = self.send("initialize", Session::initialize_params(meta))?;
        let result = self.wait(&id)?;
        self.notify("notifications/initialized", Value::Null)?;
        self.session.initialized = Some(result.clone());
        Ok(result)
    }

    /// The `initialize` result, once initialized (its `_meta` says who the service thinks
    /// this client is).
    pub fn server_info(&self) -> Option<&Value> {
        self.session.initialized.as_ref()
    }

    /// Calls `method` and waits for its result; initializes first if needed. A JSON-RPC
    /// error is [`ClientError::Rpc`].
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        if self.session.initialized.is_none() && method != "initialize" {
            self.initialize(Value::Null)?;
        }
        let id = self.send(method, params)?;
        self.wait(&id)
    }

    /// Sends a request without waiting; returns its id (see [`Client::wait`]).
    pub fn send(&mut self, method: &str, params: Value) -> Result<RequestId> {
        let (id, line) = self.session.request(method, params)?;
        self.writer.write_all(&line)?;
        Ok(id)
    }

    /// Sends a notification.
    pub fn notify(&mut self, method: &str, params: Value) -> Result<()> {
        self.writer.write_all(&Session::notification(method, params)?)?;
        Ok(())
    }

    /// Waits for the response to `id`.
    pub fn wait(&mut self, id: &RequestId) -> Result<Value> {
        if let Some(answer) = self.session.answered(id) {
            return answer;
        }
        loop {
            let mut message = String::new();
            if self.reader.read_line(&mut message)? == 0 {
                return Err(ClientError::Closed);
            }
            if let Some(answer) = self.session.file(id, &message) {
                return answer;
            }
        }
    }

    /// Notifications received so far (taken).
    pub fn take_notifications(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.session.notifications)
    }
}

/// An async (tokio) connection to `airlock serve`: the same calls as [`Client`].
pub struct AsyncClient {
    reader: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
    timeout: Option<Duration>,
    session: Session,
}

impl AsyncClient {
    /// Connects (without `initialize`; [`AsyncClient::call`] sends it first when needed).
    pub async fn connect(path: impl AsRef<Path>) -> Result<AsyncClient> {
        let path = path.as_ref();
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|cause| ClientError::Connect { path: path.to_path_buf(), cause })?;
        let (reader, writer) = stream.into_split();
        Ok(AsyncClient {
            reader: tokio::io::BufReader::new(reader),
            writer,
            timeout: None,
            session: Session::default(),
        })
    }

    /// Bounds how long [`AsyncClient::wait`] waits for one response (`None`: forever, the
    /// default).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// See [`Client::initialize`].
    pub async fn initialize(&mut self, meta: Value) -> Result<Value> {
        let id = self.send("initialize", Session::initialize_params(meta)).await?;
        let result = self.wait(&id).await?;
        self.notify("notifications/initialized", Value::Null).await?;
        self.session.initialized = Some(result.clone());
        Ok(result)
    }

    /// See [`Client::server_info`].
    pub fn server_info(&self) -> Option<&Value> {
        self.session.initialized.as_ref()
    }

    /// See [`Client::call`].
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        if self.session.initialized.is_none() && method != "initialize" {
            self.initialize(Value::Null).await?;
        }
        let id = self.send(method, params).await?;
        self.wait(&id).await
    }

    /// See [`Client::send`].
    pub async fn send(&mut self, method: &str, params: Value) -> Result<RequestId> {
        let (id, line) = self.session.request(method, params)?;
        self.writer.write_all(&line).await?;
        Ok(id)
    }

    /// See [`Client::notify`].
    pub async fn notify(&mut self, method: &str, params: Value) -> Result<()> {
        self.writer.write_all(&Session::notification(method, params)?).await?;
        Ok(())
    }

    /// Waits for the response to `id`, at most the timeout set.
    pub async fn wait(&mut self, id: &RequestId) -> Result<Value> {
        match self.timeout {
            Some(limit) => {
                tokio::time::timeout(limit, self.wait_untimed(id)).await.map_err(|_| ClientError::Timeout(limit))?
            }
            None => self.wait_untimed(id).await,
        }
    }

    async fn wait_untimed(&mut self, id: &RequestId) -> Result<Value> {
        if let Some(answer) = self.session.answered(id) {
            return answer;
        }
        loop {
            let message = self.read_line().await?;
            if let Some(answer) = self.session.file(id, &message) {
                return answer;
            }
        }
    }

    /// See [`Client::take_notifications`].
    pub fn take_notifications(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.session.notifications)
    }

    /// Sends one raw line (a newline is added): for tests of malformed input.
    pub async fn send_raw(&mut self, line: &[u8]) -> Result<()> {
        self.writer.write_all(line).await?;
        self.writer.write_all(b"\n").await?;
        Ok(())
    }

    /// Reads the next message, whatever it is (response or notification), at most the
    /// timeout set.
    pub async fn next_message(&mut self) -> Result<Value> {
        let message = match self.timeout {
            Some(limit) => {
                tokio::time::timeout(limit, self.read_line()).await.map_err(|_| ClientError::Timeout(limit))??
            }
            None => self.read_line().await?,
        };
        serde_json::from_str(&message).map_err(|e| ClientError::Protocol(format!("{e}: {}", message.trim_end())))
    }

    async fn read_line(&mut self) -> Result<String> {
        let mut message = String::new();
        if self.reader.read_line(&mut message).await? == 0 {
            return Err(ClientError::Closed);
        }
        Ok(message)
    }
}
