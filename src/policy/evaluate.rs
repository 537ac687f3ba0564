//! Evaluation: one call (caller, tool, arguments, workspace) against a [`PolicySet`] gives
//! an [`Evaluation`]: the decision, the rule that made it, the reasons, and the [`Grant`]
//! the backend will see.
//!
//! Owns: the order of the checks and how each failure becomes a denial.
//! Must not: fail open. Every step that cannot be completed (unknown caller or tool,
//! arguments that fail the schema, a placeholder that cannot be rendered, a workspace that
//! is not a directory, a granted path that escapes it) ends in [`Decision::Deny`] with no
//! grant. Nothing here runs the tool or writes anything.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{
    AuditArguments, Caller, Decision, Grant, OnTamper, PolicySet, Program,
    error::list_or_none,
    grant::{FileGrants, canonical_workspace, resolve_env, resolve_host_paths, resolve_mounts},
};
use crate::outcome::CallRequest;

/// What policy says about one call, and why. Printed as JSON by `airlock policy explain`
/// and recorded in the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Allow, needs-approval or deny.
    pub decision: Decision,
    /// One sentence naming the file and rule that decided.
    pub rule: String,
    /// The rule that decided, as a key into the policy files:
    /// `designations.high-cyber.deny[security-testing] (caller lacks attribute trusted_access)`,
    /// `designations.standard.approve[deploy]`, `tools/jq.toml [input]`.
    pub decided_by: String,
    /// Everything else worth knowing: each category's rule, schema errors, grants left out.
    pub reasons: Vec<String>,
    /// Who asked, as resolved.
    pub caller: EvaluatedCaller,
    /// The tool asked for.
    pub tool: String,
    /// The pinned sha256 of the tool's module or executable (none for an unknown tool or
    /// an unpinned executable).
    pub tool_sha256: Option<String>,
    /// [`PolicySet::digest`] of the policy that decided.
    pub policy_digest: String,
    /// The resolved capabilities; present unless the decision is `Deny`.
    pub grant: Option<Grant>,
    /// The protected paths of the call, relative to the workspace: the designation's (or
    /// [`super::DEFAULT_PROTECTED`]) and the tool's `files.protected`, whether they exist
    /// or not (creating one is a change too). The runtime digests them around every call
    /// that can write.
    pub protected: Vec<String>,
    /// The designation's `on_tamper`: what a session does after a call changed a
    /// protected path.
    pub on_tamper: OnTamper,
    /// The designation's `audit_arguments`.
    pub audit_arguments: AuditArguments,
}

/// The caller as evaluation saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvaluatedCaller {
    /// The name the call came with.
    pub name: String,
    /// Its designation; `None` when it is unknown and there is no default.
    pub designation: Option<String>,
    /// Attributes from callers.toml.
    pub attributes: Vec<String>,
    /// Whether it is an admin.
    pub admin: bool,
    /// Whether it is listed in callers.toml.
    pub listed: bool,
}

impl From<Caller> for EvaluatedCaller {
    fn from(caller: Caller) -> Self {
        EvaluatedCaller {
            name: caller.name,
            designation: Some(caller.designation),
            attributes: caller.attributes,
            admin: caller.admin,
            listed: caller.listed,
        }
    }
}

/// A tool as offered to one caller (MCP `tools/list`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolInfo {
    /// The tool's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its arguments.
    pub input_schema: Value,
    /// Its risk categories.
    pub categories: Vec<String>,
    /// What this caller's designation decides for it (allow or needs-approval).
    pub decision: Decision,
}

impl Evaluation {
    /// Turns this evaluation into a denial: `rule` decided, `reasons` are added, no grant.
    fn deny(mut self, rule: String, reasons: impl IntoIterator<Item = String>) -> Evaluation {
        self.decision = Decision::Deny;
        self.decided_by = rule.split(':').next().unwrap_or_default().to_string();
        self.rule = rule;
        self.reasons.extend(reasons);
        self.grant = None;
        self
    }
}

impl PolicySet {
    /// Evaluates one call. Never fails: anything that goes wrong is a denial with the
    /// reason. Reads the file system only to resolve `workspace` and the granted paths in
    /// it, and the process environment for `env.pass`.
    pub fn evaluate(&self, caller: &str, tool: &str, arguments: &Value, workspace: &Path) -> Evaluation {
        let evaluation = Evaluation {
            decision: Decision::Deny,
            rule: String::new(),
            decided_by: String::new(),
            reasons: Vec::new(),
            caller: EvaluatedCaller {
                name: caller.to_string(),
                designation: None,
                attributes: Vec::new(),
                admin: false,
                listed: false,
            },
            tool: tool.to_string(),
            tool_sha256: None,
            policy_digest: self.digest.clone(),
            grant: None,
            protected: Vec::new(),
            on_tamper: OnTamper::default(),
            audit_arguments: AuditArguments::default(),
        };
        self.evaluate_into(evaluation, caller, tool, arguments, workspace)
    }

    /// [`PolicySet::evaluate`] for a [`CallRequest`].
    pub fn evaluate_request(&self, request: &CallRequest) -> Evaluation {
        self.evaluate(&request.caller, &request.tool, &request.arguments, &request.workspace)
    }

    fn evaluate_into(
        &self,
        mut evaluation: Evaluation,
        caller: &str,
        tool: &str,
        arguments: &Value,
        workspace: &Path,
    ) -> Evaluation {
        let Some(resolved) = self.resolve_caller(caller) else {
            let rule = format!(
                "callers.toml: caller \"{caller}\" is not listed and there is no `default` designation (unknown callers are refused)"
            );
            return evaluation.deny(rule, []);
        };
        if !resolved.listed {
            evaluation.reasons.push(format!(
                "caller \"{caller}\" is not listed in callers.toml; the default designation \"{}\" applies",
                resolved.designation
            ));
        }
        evaluation.caller = resolved.clone().into();
        let Some(designation) = self.designations.get(&resolved.designation) else {
            // Load checks every designation callers.toml names; this is a second lock.
            let rule =
                format!("callers.toml: designation \"{}\" is not declared in designations.toml", resolved.designation);
            return evaluation.deny(rule, []);
        };
        let Some(tool_policy) = self.tools.get(tool) else {
            let known: Vec<&str> = self.tools.keys().map(String::as_str).collect();
            let rule = format!("tools/: there is no tool \"{tool}\" (no tools/{tool}.toml)");
            let reason = format!("known tools: {}", list_or_none(&known));
            return evaluation.deny(rule, [reason]);
        };
        evaluation.tool_sha256 = tool_policy.sha256().map(str::to_string);

        evaluation.on_tamper = designation.on_tamper();
        evaluation.audit_arguments = designation.audit_arguments();
        let verdict =
            designation.decide_for(tool_policy.categories(), &resolved.attributes, !tool_policy.network().is_empty());
        evaluation.decision = verdict.decision;
        evaluation.rule = verdict.rule;
        evaluation.decided_by = verdict.decided_by;
        evaluation.reasons.extend(verdict.per_category);
        if verdict.decision == Decision::Deny {
            return evaluation;
        }
        let mut protected_files = FileGrants { protected: designation.protected().to_vec(), ..FileGrants::default() };
        for path in &tool_policy.files().protected {
            if !protected_files.protected.contains(path) {
                protected_files.protected.push(path.clone());
            }
        }
        evaluation.protected = protected_files.protected.iter().map(|p| p.as_str().to_string()).collect();

        let file = tool_policy.file();
        let arguments = match tool_policy.check_arguments(arguments) {
            Ok(arguments) => arguments,
            Err(errors) => {
                let rule = format!("{file}: the arguments do not match the tool's [input] schema");
                return evaluation.deny(rule, errors);
            }
        };
        let (args, stdin) = match tool_policy.render(&arguments) {
            Ok(rendered) => rendered,
            Err(error) => {
                let rule = format!("{file}: [invoke] cannot turn these arguments into argv");
                return evaluation.deny(rule, [error.to_string()]);
            }
        };
        let workspace = match canonical_workspace(workspace) {
            Ok(workspace) => workspace,
            Err(error) => {
                let rule = "workspace: the call's workspace cannot be used".to_string();
                return evaluation.deny(rule, [error.to_string()]);
            }
        };
        let is_process = matches!(tool_policy.program(), Program::Process { .. });
        if is_process && !tool_policy.network().is_empty() {
            let rule = format!("{file}: a process tool with `network` entries needs the egress proxy");
            let reason = "the egress proxy is not available yet: process tools run with loopback only; \
                          remove `network` from the tool or make it a wasm tool"
                .to_string();
            return evaluation.deny(rule, [reason]);
        }
        let mut mounts = match resolve_mounts(tool_policy.files(), &workspace) {
            Ok(mounts) => mounts,
            Err(error) => {
                let rule = format!("{file}: a [files] grant resolves outside the workspace");
                return evaluation.deny(rule, [error.to_string()]);
            }
        };
        // Protected paths are resolved (bound read-only, split out of writable preopens)
        // only where the tool may write: without a write grant the whole workspace is
        // read-only to it in either backend.
        if tool_policy.files().write.is_empty() {
            protected_files.protected.clear();
        }
        let protected = match self.protected_cache.resolve(&protected_files, &workspace) {
            Ok(protected) => protected,
            Err(error) => {
                let rule = format!("{file}: a files.protected path resolves outside the workspace");
                return evaluation.deny(rule, [error.to_string()]);
            }
        };
        match resolve_host_paths(tool_policy.files()) {
            Ok(host) => {
                mounts.mounts.extend(host.mounts);
                mounts.notes.extend(host.notes);
            }
            Err(error) => {
                let rule = format!("{file}: a files.host_read path cannot be used");
                return evaluation.deny(rule, [error.to_string()]);
            }
        }
        evaluation.reasons.extend(mounts.notes);
        evaluation.reasons.extend(protected.notes);
        let (env, env_notes) = resolve_env(tool_policy.env());
        evaluation.reasons.extend(env_notes);

        let mut grant = Grant::new(tool_policy.name(), tool_policy.program().clone());
        grant.args = args;
        grant.stdin = stdin;
        grant.mounts = mounts.mounts;
        grant.protected = protected.mounts;
        grant.jail = tool_policy.jail().clone();
        grant.workspace = Some(workspace);
        grant.env = env;
        grant.network = tool_policy.network().to_vec();
        grant.limits = tool_policy.limits().clone();
        evaluation.grant = Some(grant);
        evaluation
    }

    /// The tools `caller` may call or ask approval for (every tool whose decision for it
    /// is not `Deny`), by name. Empty for a caller that is refused.
    pub fn tools_for(&self, caller: &str) -> Vec<ToolInfo> {
        let Some(resolved) = self.resolve_caller(caller) else {
            return Vec::new();
        };
        let Some(designation) = self.designations.get(&resolved.designation) else {
            return Vec::new();
        };
        self.tools
            .values()
            .filter_map(|tool| {
                let decision = designation
                    .decide_for(tool.categories(), &resolved.attributes, !tool.network().is_empty())
                    .decision;
                (decision != Decision::Deny).then(|| ToolInfo {
                    name: tool.name().to_string(),
                    description: tool.description().to_string(),
                    input_schema: tool.input_schema().clone(),
                    categories: tool.categories().to_vec(),
                    decision,
                })
            })
            .collect()
    }
}
