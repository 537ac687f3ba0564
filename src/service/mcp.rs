//! The methods: MCP's (`initialize`, `ping`, `tools/list`, `tools/call`) with their
//! 2025-11-25 shapes, and airlock's own under `airlock/` for admin callers.
//!
//! Owns: checking each method's params, turning a `tools/call` into a [`CallRequest`] (the
//! caller from the connection's [`Identity`](super::peer::Identity), never from params; the
//! workspace from [`WorkspacePolicy`](super::workspace::WorkspacePolicy)), and turning a
//! [`CallOutcome`] into MCP's `CallToolResult`.
//! Must not: decide policy or skip the pipeline: a `tools/call` that passes the protocol
//! checks goes through [`crate::Runtime::call_until`] and is audited, even when it then
//! gets a JSON-RPC error (unknown tool, arguments that fail the schema).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{
    connection::Connection,
    peer::Identity,
    protocol::{
        APPROVAL_FAILED, FORBIDDEN, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, NOT_INITIALIZED,
        POLICY_REJECTED, RequestId, Response, RpcError, SESSION_FAILED, json_type,
    },
    workspace::WORKSPACE_META,
};
use crate::{
    CallOutcome, CallRequest, Status,
    approvals::{DecideParams, GetParams, ListParams},
    audit::{self, AuditRecord},
    policy::{Caller, Decision, PolicySet, ToolInfo, ToolPolicy},
};

/// The protocol revisions this server speaks, newest first; a client asking for another
/// gets the newest (MCP's version negotiation).
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The `tools/call` `_meta` key that names the call's session (default: the connection id).
pub const SESSION_META: &str = "airlock/session";

/// The `tools/call` `_meta` key: how long, in milliseconds, the caller will wait for a
/// human's decision when the call needs approval (default 0: the pending approval's id
/// comes back at once).
pub const APPROVAL_WAIT_META: &str = "airlock/approvalWaitMs";

/// The most audit records one `airlock/audit.tail` returns: bounds the response size.
const MAX_TAIL: u64 = 10_000;

/// Methods that need `initialize` first and run as their own task.
const SPAWNED_METHODS: [&str; 9] = [
    "tools/call",
    "airlock/approvals.list",
    "airlock/approvals.get",
    "airlock/approvals.decide",
    "airlock/audit.tail",
    "airlock/policy.reload",
    "airlock/sessions.list",
    "airlock/sessions.show",
    "airlock/sessions.resume",
];

fn error(id: &RequestId, code: i64, message: impl Into<String>) -> Response {
    Response::error(Some(id), RpcError::new(code, message))
}

/// The value of an optional object member: `Ok(None)` when absent or null.
fn optional_object<'a>(params: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Map<String, Value>>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(other) => Err(format!("`{key}` must be an object, not {}", json_type(other))),
    }
}

impl Connection {
    /// Answers the requests that are answered in line (in order), or `None` for those that
    /// run as their own task.
    pub(super) fn immediate(&self, id: &RequestId, method: &str, params: &Map<String, Value>) -> Option<Response> {
        match method {
            "initialize" => Some(self.initialize(id, params)),
            "ping" => Some(Response::result(id, json!({}))),
            _ if method == "tools/list" || SPAWNED_METHODS.contains(&method) => {
                if !self.state().initialized {
                    return Some(error(
                        id,
                        NOT_INITIALIZED,
                        format!("{method} before initialize: send `initialize` first (MCP lifecycle)"),
                    ));
                }
                (method == "tools/list").then(|| self.tools_list(id, params))
            }
            _ => Some(error(
                id,
                METHOD_NOT_FOUND,
                format!(
                    "no method {method:?}; this server has initialize, ping, tools/list, tools/call and, for admin \
                     callers, airlock/approvals.list|get|decide, airlock/audit.tail, airlock/policy.reload, airlock/sessions.list|show|resume"
                ),
            )),
        }
    }

    fn initialize(&self, id: &RequestId, params: &Map<String, Value>) -> Response {
        let requested = match params.get("protocolVersion") {
            Some(Value::String(version)) => version.clone(),
            Some(other) => {
                return error(
                    id,
                    INVALID_PARAMS,
                    format!("`protocolVersion` must be a string, not {}", json_type(other)),
                );
            }
            None => return error(id, INVALID_PARAMS, "`protocolVersion` is required (e.g. \"2025-11-25\")"),
        };
        for key in ["capabilities", "clientInfo"] {
            if let Err(message) = optional_object(params, key) {
                return error(id, INVALID_PARAMS, message);
            }
        }
        let meta = match optional_object(params, "_meta") {
            Ok(meta) => meta,
            Err(message) => return error(id, INVALID_PARAMS, message),
        };
        let workspace = match meta.and_then(|meta| meta.get(WORKSPACE_META)) {
            Some(requested) => match self.service.workspaces.check(requested) {
                Ok(workspace) => Some(workspace),
                Err(message) => return error(id, INVALID_PARAMS, message),
            },
            None => None,
        };
        let policies = self.service.runtime.policies();
        let caller = match self.identity.caller(&policies) {
            Ok(caller) => caller,
            Err(reason) => return error(id, FORBIDDEN, reason),
        };
        let version = PROTOCOL_VERSIONS.iter().find(|v| **v == requested).unwrap_or(&PROTOCOL_VERSIONS[0]);
        {
            let mut state = self.state();
            if state.initialized {
                return error(id, INVALID_REQUEST, "this connection is already initialized");
            }
            state.initialized = true;
            state.protocol_version = Some(version.to_string());
            state.workspace = workspace.clone();
        }
        let workspace = workspace.or_else(|| self.service.workspaces.default_workspace().map(|w| w.to_path_buf()));
        Response::result(
            id,
            json!({
                "protocolVersion": version,
                "capabilities": { "tools": { "listChanged": true } },
                "serverInfo": { "name": "airlock", "version": env!("CARGO_PKG_VERSION") },
                "instructions": "Tools run sandboxed under airlock's policies; every call is audited. \
                    A call the policy refuses comes back with isError and the reason; \
                    structuredContent carries the whole outcome (status, exit code, usage, audit record number).",
                "_meta": {
                    "airlock/caller": caller.name,
                    "airlock/designation": caller.designation,
                    "airlock/admin": caller.admin,
                    "airlock/session": self.id,
                    "airlock/workspace": workspace,
                },
            }),
        )
    }

    fn tools_list(&self, id: &RequestId, params: &Map<String, Value>) -> Response {
        match params.get("cursor") {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(other) => {
                return error(id, INVALID_PARAMS, format!("`cursor` must be a string, not {}", json_type(other)));
            }
        }
        let policies = self.service.runtime.policies();
        let caller = match self.identity.caller(&policies) {
            Ok(caller) => caller,
            Err(reason) => return error(id, FORBIDDEN, reason),
        };
        let tools: Vec<Value> = policies.tools_for(&caller.name).iter().map(tool_entry).collect();
        Response::result(id, json!({ "tools": tools }))
    }

    /// `tools/call`: checks, then the pipeline (until `stop` fires), then the result.
    pub(super) async fn call_tool(
        &self,
        id: &RequestId,
        params: Map<String, Value>,
        stop: impl Future<Output = ()>,
    ) -> Response {
        let (request, invalid) = match self.call_request(&params) {
            Ok(checked) => checked,
            Err(problem) => return Response::error(Some(id), problem),
        };
        let runtime = &self.service.runtime;
        let slots = self.service.caller_slots(&request.caller);
        let mut stop = std::pin::pin!(stop);
        let slot = tokio::select! {
            biased;
            () = &mut stop => None,
            slot = slots.acquire_owned() => slot.ok(),
        };
        let outcome = match slot {
            Some(_slot) => runtime.call_until(request, stop).await,
            // Cancelled while waiting for a slot: still evaluated and audited, never run.
            None => runtime.call_until(request, std::future::ready(())).await,
        };
        match outcome {
            Err(failure) => {
                error(id, INTERNAL_ERROR, format!("the call could not be audited, so it was not run: {failure}"))
            }
            Ok(outcome) => match invalid {
                Some(message) => Response::error(
                    Some(id),
                    RpcError::new(INVALID_PARAMS, message).with_data(json!({ "auditSeq": outcome.audit_seq })),
                ),
                None => Response::result(id, call_result(&outcome)),
            },
        }
    }

    /// The call a `tools/call` asks for, and the message of the -32602 error the client
    /// will get for it after it is audited (unknown tool, arguments that fail the schema),
    /// if any. `Err`: the params are unusable; the call does not reach the pipeline.
    fn call_request(&self, params: &Map<String, Value>) -> Result<(CallRequest, Option<String>), RpcError> {
        let fail = RpcError::new;
        let name = match params.get("name") {
            Some(Value::String(name)) => name.clone(),
            Some(other) => {
                return Err(fail(INVALID_PARAMS, format!("`name` must be a string, not {}", json_type(other))));
            }
            None => return Err(fail(INVALID_PARAMS, "`name` is required: the tool to call".into())),
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::Object(arguments)) => Value::Object(arguments.clone()),
            Some(other) => {
                return Err(fail(INVALID_PARAMS, format!("`arguments` must be an object, not {}", json_type(other))));
            }
        };
        let meta = optional_object(params, "_meta").map_err(|message| fail(INVALID_PARAMS, message))?;
        let empty = Map::new();
        let meta = meta.unwrap_or(&empty);
        if params.contains_key("caller") || meta.contains_key("airlock/caller") {
            return Err(fail(
                INVALID_PARAMS,
                "a call cannot name its caller: the caller is the connection's peer (its uid, from the kernel), \
                 mapped by callers.toml; remove `caller`"
                    .into(),
            ));
        }
        let workspace = match meta.get(WORKSPACE_META) {
            Some(requested) => {
                self.service.workspaces.check(requested).map_err(|message| fail(INVALID_PARAMS, message))?
            }
            None => match self.state().workspace.clone() {
                Some(workspace) => workspace,
                None => match self.service.workspaces.default_workspace() {
                    Some(workspace) => workspace.to_path_buf(),
                    None => {
                        return Err(fail(
                            INVALID_PARAMS,
                            format!(
                                "no workspace: this service has no default (--workspace); name one inside a \
                                 --workspace-root with `_meta.{WORKSPACE_META}` on initialize or tools/call"
                            ),
                        ));
                    }
                },
            },
        };
        let session = match meta.get(SESSION_META) {
            None | Some(Value::Null) => self.id.clone(),
            Some(Value::String(session)) => session.clone(),
            Some(other) => {
                return Err(fail(
                    INVALID_PARAMS,
                    format!("`_meta.{SESSION_META}` must be a string, not {}", json_type(other)),
                ));
            }
        };
        let approval_wait_ms = match meta.get(APPROVAL_WAIT_META) {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_u64() {
                Some(ms) => Some(ms),
                None => {
                    return Err(fail(
                        INVALID_PARAMS,
                        format!("`_meta.{APPROVAL_WAIT_META}` must be a non-negative integer (milliseconds)"),
                    ));
                }
            },
        };
        let policies = self.service.runtime.policies();
        let caller = self.identity.caller(&policies).map_err(|reason| fail(FORBIDDEN, reason))?;
        let invalid = match policies.tool(&name) {
            None => Some(format!("unknown tool {name:?}; tools/list shows the tools you may call")),
            Some(tool) if visible(&policies, &caller, tool) => tool
                .check_arguments(&arguments)
                .err()
                .map(|errors| format!("the arguments do not match the input schema of {name}: {}", errors.join("; "))),
            // A tool the caller may not use: the pipeline denies it (an ordinary outcome).
            Some(_) => None,
        };
        let mut request = CallRequest::new(caller.name, name, workspace).arguments(arguments).session(session);
        request.approval_wait_ms = approval_wait_ms;
        Ok((request, invalid))
    }

    /// The `airlock/` methods, for admin callers only.
    pub(super) async fn method(&self, id: &RequestId, method: &str, params: Map<String, Value>) -> Response {
        let caller = {
            let policies = self.service.runtime.policies();
            match self.identity.caller(&policies) {
                Ok(caller) => caller,
                Err(reason) => return error(id, FORBIDDEN, reason),
            }
        };
        if !caller.admin {
            return error(
                id,
                FORBIDDEN,
                format!(
                    "{method} is for admin callers (callers.toml `admin = true`); caller {:?} is not one",
                    caller.name
                ),
            );
        }
        match method {
            "airlock/audit.tail" => self.audit_tail(id, &params).await,
            "airlock/policy.reload" => self.policy_reload(id, &caller).await,
            "airlock/approvals.list" => self.approvals_list(id, params).await,
            "airlock/approvals.get" => self.approvals_get(id, params).await,
            "airlock/approvals.decide" => self.approvals_decide(id, params, &caller).await,
            "airlock/sessions.list" => self.sessions_list(id).await,
            "airlock/sessions.show" => self.sessions_show(id, &params).await,
            "airlock/sessions.resume" => self.sessions_resume(id, &params, &caller).await,
            _ => error(id, METHOD_NOT_FOUND, format!("no method {method:?}")),
        }
    }

    /// `airlock/approvals.list` ([`ListParams`]) -> `{approvals: [...]}`.
    async fn approvals_list(&self, id: &RequestId, params: Map<String, Value>) -> Response {
        let ListParams { state } = match approval_params(params) {
            Ok(params) => params,
            Err(message) => return error(id, INVALID_PARAMS, message),
        };
        let approvals = self.service.runtime.approvals().clone();
        match tokio::task::spawn_blocking(move || approvals.list(state)).await {
            Ok(list) => Response::result(id, json!({ "approvals": list })),
            Err(join) => error(id, INTERNAL_ERROR, format!("listing the approvals failed: {join}")),
        }
    }

    /// `airlock/approvals.get` ([`GetParams`]) -> `{approval}`.
    async fn approvals_get(&self, id: &RequestId, params: Map<String, Value>) -> Response {
        let GetParams { id: approval_id } = match approval_params(params) {
            Ok(params) => params,
            Err(message) => return error(id, INVALID_PARAMS, message),
        };
        let approvals = self.service.runtime.approvals().clone();
        match tokio::task::spawn_blocking(move || approvals.load(&approval_id)).await {
            Ok(Ok(approval)) => Response::result(id, json!({ "approval": approval })),
            Ok(Err(failure)) => error(id, APPROVAL_FAILED, failure.to_string()),
            Err(join) => error(id, INTERNAL_ERROR, format!("reading the approval failed: {join}")),
        }
    }

    /// `airlock/approvals.decide` ([`DecideParams`]; `uses` defaults to 1) -> `{approval}`.
    /// The approver is the connection's caller (and its uid), never a param.
    async fn approvals_decide(&self, id: &RequestId, mut params: Map<String, Value>, caller: &Caller) -> Response {
        if params.get("verdict") == Some(&Value::String("approve".into())) && !params.contains_key("uses") {
            params.insert("uses".into(), Value::from(1));
        }
        let DecideParams { id: approval_id, verdict } = match approval_params(params) {
            Ok(params) => params,
            Err(message) => return error(id, INVALID_PARAMS, message),
        };
        let approver = match &self.identity {
            Identity::Peer(peer) => format!("{} (uid {})", caller.name, peer.uid),
            Identity::Named(_) => caller.name.clone(),
        };
        let approvals = self.service.runtime.approvals().clone();
        match tokio::task::spawn_blocking(move || approvals.decide(&approval_id, &approver, verdict)).await {
            Ok(Ok(approval)) => {
                tracing::info!(approval = %approval.id, state = ?approval.state, "approval decided");
                Response::result(id, json!({ "approval": approval }))
            }
            Ok(Err(failure)) => error(id, APPROVAL_FAILED, failure.to_string()),
            Err(join) => error(id, INTERNAL_ERROR, format!("deciding the approval failed: {join}")),
        }
    }

    /// `airlock/sessions.list` -> `{sessions: [SessionInfo...]}`: the sessions this service
    /// has counted, and every suspended one.
    async fn sessions_list(&self, id: &RequestId) -> Response {
        let runtime = Arc::clone(&self.service.runtime);
        match tokio::task::spawn_blocking(move || runtime.sessions().list()).await {
            Ok(Ok(list)) => Response::result(id, json!({ "sessions": list })),
            Ok(Err(failure)) => error(id, SESSION_FAILED, failure.to_string()),
            Err(join) => error(id, INTERNAL_ERROR, format!("listing the sessions failed: {join}")),
        }
    }

    /// `airlock/sessions.show` (`{session}`) -> `{session: SessionInfo}`.
    async fn sessions_show(&self, id: &RequestId, params: &Map<String, Value>) -> Response {
        let Some(session) = params.get("session").and_then(Value::as_str).map(str::to_string) else {
            return error(id, INVALID_PARAMS, "bad params: sessions.show takes {\"session\": ID}");
        };
        let runtime = Arc::clone(&self.service.runtime);
        match tokio::task::spawn_blocking(move || runtime.sessions().show(&session)).await {
            Ok(Ok(info)) => Response::result(id, json!({ "session": info })),
            Ok(Err(failure)) => error(id, SESSION_FAILED, failure.to_string()),
            Err(join) => error(id, INTERNAL_ERROR, format!("reading the session failed: {join}")),
        }
    }

    /// `airlock/sessions.resume` (`{session}`) -> `{resumed: Suspension}`; audited, with the
    /// connection's caller (and uid) as who resumed it.
    async fn sessions_resume(&self, id: &RequestId, params: &Map<String, Value>, caller: &Caller) -> Response {
        let Some(session) = params.get("session").and_then(Value::as_str) else {
            return error(id, INVALID_PARAMS, "bad params: sessions.resume takes {\"session\": ID}");
        };
        let by = match &self.identity {
            Identity::Peer(peer) => format!("{} (uid {})", caller.name, peer.uid),
            Identity::Named(_) => caller.name.clone(),
        };
        match self.service.runtime.resume_session(session, &by).await {
            Ok(lifted) => {
                tracing::info!(session, by, "session resumed");
                Response::result(id, json!({ "resumed": lifted }))
            }
            Err(failure) => error(id, SESSION_FAILED, failure.to_string()),
        }
    }

    async fn audit_tail(&self, id: &RequestId, params: &Map<String, Value>) -> Response {
        let n = match params.get("n") {
            None | Some(Value::Null) => 20,
            Some(value) => match value.as_u64() {
                Some(n) if (1..=MAX_TAIL).contains(&n) => n,
                _ => return error(id, INVALID_PARAMS, format!("`n` must be an integer from 1 to {MAX_TAIL}")),
            },
        };
        let path = self.service.runtime.audit().path().to_path_buf();
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        match tokio::task::spawn_blocking(move || audit::tail(&path, n)).await {
            Ok(Ok(records)) => {
                Response::result(id, json!({ "records": records.iter().map(record_value).collect::<Vec<_>>() }))
            }
            Ok(Err(failure)) => error(id, INTERNAL_ERROR, failure.to_string()),
            Err(join) => error(id, INTERNAL_ERROR, format!("reading the audit log failed: {join}")),
        }
    }

    async fn policy_reload(&self, id: &RequestId, caller: &Caller) -> Response {
        let service = Arc::clone(&self.service);
        let result = tokio::task::spawn_blocking(move || service.reload()).await;
        match result {
            Ok(Ok(())) => {
                let policies = self.service.runtime.policies();
                tracing::info!(caller = %caller.name, digest = %policies.digest(), "policies reloaded");
                Response::result(id, json!({ "digest": policies.digest(), "tools": policies.tools().count() }))
            }
            Ok(Err(errors)) => {
                tracing::error!(caller = %caller.name, "policy reload rejected; the old set stays:\n{errors}");
                let list: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                Response::error(
                    Some(id),
                    RpcError::new(
                        POLICY_REJECTED,
                        format!("the policy set has {} error(s); the old set stays in force", list.len()),
                    )
                    .with_data(json!({ "errors": list })),
                )
            }
            Err(join) => error(id, INTERNAL_ERROR, format!("the reload failed: {join}")),
        }
    }
}

/// The typed params of an `airlock/approvals.*` method, or what is wrong with them.
fn approval_params<T: serde::de::DeserializeOwned>(params: Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(params)).map_err(|problem| {
        format!(
            "bad params ({problem}); list takes {{\"state\"?: \"pending\"|\"approved\"|\"denied\"|\"expired\"|\"used\"|\"all\"}}, \
             get {{\"id\"}}, decide {{\"id\", \"verdict\": \"approve\", \"uses\"?: N}} or {{\"id\", \"verdict\": \"deny\", \"reason\"}}"
        )
    })
}

/// Whether `caller` may see `tool` (its designation does not deny it).
fn visible(policies: &PolicySet, caller: &Caller, tool: &ToolPolicy) -> bool {
    policies.designation(&caller.designation).is_some_and(|d| {
        d.decide_for(tool.categories(), &caller.attributes, !tool.network().is_empty()).decision != Decision::Deny
    })
}

/// One `tools/list` entry, with annotations derived from the risk categories.
fn tool_entry(tool: &ToolInfo) -> Value {
    let has = |category: &str| tool.categories.iter().any(|c| c == category);
    json!({
        "name": tool.name,
        "description": tool.description,
        "inputSchema": tool.input_schema,
        "annotations": {
            "readOnlyHint": !tool.categories.is_empty() && tool.categories.iter().all(|c| c == "read"),
            "destructiveHint": has("write") || has("deploy"),
            "openWorldHint": has("network"),
        },
        "_meta": {
            "airlock/categories": tool.categories,
            "airlock/decision": tool.decision,
        },
    })
}

/// MCP's `CallToolResult` for an outcome: the tool's text output (stdout, plus stderr when
/// it failed, plus a line saying why when it did not run to success), the whole outcome as
/// `structuredContent`, and `isError` unless the tool ran and succeeded.
pub fn call_result(outcome: &CallOutcome) -> Value {
    let mut text = outcome.stdout.text();
    let mut note = |line: String| {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
    };
    let failed = !outcome.is_ok();
    if failed && !outcome.stderr.bytes.is_empty() {
        note(outcome.stderr.text());
    }
    match &outcome.status {
        Status::Ok => {}
        Status::ToolError => note(format!("[airlock: the tool exited with code {}]", outcome.exit_code.unwrap_or(1))),
        Status::Denied { reason } => note(format!("[airlock: denied: {reason}]")),
        Status::LimitExceeded { limit } => note(format!("[airlock: stopped: the {} limit was exceeded]", limit.name())),
        Status::Trapped { trap } => note(format!("[airlock: the tool trapped: {trap}]")),
        Status::Cancelled => note("[airlock: the call was cancelled]".into()),
        Status::Tampered { changed, .. } => note(format!(
            "[airlock: tampered: protected paths changed: {}; the result is not trusted]",
            changed.join("; ")
        )),
        Status::NeedsApproval { approval_id, expires_at } => note(format!(
            "[airlock: this call needs a human's approval: pending approval {approval_id} (expires {expires_at}); \
             once it is approved, make the same call again]"
        )),
    }
    json!({
        "content": [{ "type": "text", "text": text }],
        "structuredContent": outcome,
        "isError": failed,
    })
}

fn record_value(record: &AuditRecord) -> Value {
    serde_json::to_value(record).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}
