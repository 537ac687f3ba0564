//! A small async client of the socket service, for the CLI (`airlock approvals ...`)
//! and tests: connect, `initialize` once, then request / response by id.
//!
//! Owns: the client side of the framing (one JSON object per line) and matching responses
//! to requests (responses may come in any order; notifications are kept aside).
//! Must not: claim an identity: the service knows who connects from the kernel.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{
        UnixStream,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
};

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
    #[error("the airlock service closed the connection{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Closed { detail: Option<String> },
    #[error("the airlock service sent something that is not a JSON-RPC message: {0}")]
    Protocol(String),
    #[error("{message} (JSON-RPC error {code})")]
    Rpc { code: i64, message: String, data: Option<Value> },
}

/// The client's result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A connection to `airlock serve`.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Option<Duration>,
    next_id: i64,
    initialized: Option<Value>,
    /// Responses read while waiting for another id.
    responses: HashMap<RequestId, Value>,
    /// Notifications from the service, in arrival order.
    notifications: Vec<Value>,
}

impl Client {
    /// Connects (without `initialize`; [`Client::call`] sends it first when needed).
    pub async fn connect(path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|cause| ClientError::Connect { path: path.to_path_buf(), cause })?;
        let (reader, writer) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(reader),
            writer,
            timeout: None,
            next_id: 1,
            initialized: None,
            responses: HashMap::new(),
            notifications: Vec::new(),
        })
    }

    /// Bounds how long [`Client::wait`] waits for one response (`None`: forever, the
    /// default).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sends `initialize` with `meta` as its `_meta` (e.g. `{"airlock/workspace": DIR}`)
    /// and `notifications/initialized`; returns the result.
    pub async fn initialize(&mut self, meta: Value) -> Result<Value> {
        let mut params = json!({
            "protocolVersion": PROTOCOL_VERSIONS[0],
            "capabilities": {},
            "clientInfo": { "name": "airlock-client", "version": env!("CARGO_PKG_VERSION") },
        });
        if !meta.is_null() {
            params["_meta"] = meta;
        }
        let id = self.send("initialize", params).await?;
        let result = self.wait(&id).await?;
        self.notify("notifications/initialized", Value::Null).await?;
        self.initialized = Some(result.clone());
        Ok(result)
    }

    /// The `initialize` result, once initialized (its `_meta` says who the service thinks
    /// this client is).
    pub fn server_info(&self) -> Option<&Value> {
        self.initialized.as_ref()
    }

    /// Calls `method` and waits for its result; initializes first if needed. A JSON-RPC
    /// error is [`ClientError::Rpc`].
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        if self.initialized.is_none() && method != "initialize" {
            self.initialize(Value::Null).await?;
        }
        let id = self.send(method, params).await?;
        self.wait(&id).await
    }

    /// Sends a request without waiting; returns its id (see [`Client::wait`]).
    pub async fn send(&mut self, method: &str, params: Value) -> Result<RequestId> {
        let id = RequestId::Number(self.next_id);
        self.next_id += 1;
        let mut message = json!({ "jsonrpc": JSONRPC, "id": id.to_value(), "method": method });
        if !params.is_null() {
            message["params"] = params;
        }
        self.write(&message).await?;
        Ok(id)
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Value) -> Result<()> {
        let mut message = json!({ "jsonrpc": JSONRPC, "method": method });
        if !params.is_null() {
            message["params"] = params;
        }
        self.write(&message).await
    }

    /// Waits for the response to `id`.
    pub async fn wait(&mut self, id: &RequestId) -> Result<Value> {
        match self.timeout {
            Some(limit) => {
                tokio::time::timeout(limit, self.wait_untimed(id)).await.map_err(|_| ClientError::Timeout(limit))?
            }
            None => self.wait_untimed(id).await,
        }
    }

    async fn wait_untimed(&mut self, id: &RequestId) -> Result<Value> {
        loop {
            if let Some(response) = self.responses.remove(id) {
                return outcome_of(response);
            }
            let message = self.read().await?;
            match message.get("id").and_then(RequestId::from_value) {
                Some(other) if message.get("method").is_none() => {
                    self.responses.insert(other, message);
                }
                None if message.get("method").is_none() => {
                    // An error the service could not tie to a request (id null): it closes
                    // the connection after it.
                    return outcome_of(message);
                }
                _ => self.notifications.push(message),
            }
        }
    }

    /// Notifications received so far (taken).
    pub fn take_notifications(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.notifications)
    }

    /// Sends one raw line (a newline is added): for tests of malformed input.
    pub async fn send_raw(&mut self, line: &[u8]) -> Result<()> {
        self.writer.write_all(line).await?;
        self.writer.write_all(b"\n").await?;
        Ok(())
    }

    /// Reads the next message, whatever it is (response or notification).
    pub async fn next_message(&mut self) -> Result<Value> {
        self.read().await
    }

    async fn write(&mut self, message: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(message).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        Ok(())
    }

    async fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err(ClientError::Closed { detail: None });
        }
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(format!("{e}: {}", line.trim_end())))
    }
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
