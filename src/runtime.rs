//! The runtime: the one place where the pipeline's stages meet.
//!
//! [`Runtime::call`] evaluates the request against the current [`PolicySet`], runs an
//! allowed call on the backend with nothing but its [`Grant`], appends the audit record and
//! only then returns the [`CallOutcome`]. Every refusal on the way (policy, a grant that
//! would expose the audit log or the policies, a module that fails its digest) is a
//! `denied` outcome with a reason and an audit record, never a run with less isolation.
//! A call whose record cannot be written returns an error instead of an outcome.
//!
//! A call whose decision is needs-approval goes through the approval gate
//! ([`Approvals::gate`]) first: it runs only on a human's approval bound to its exact
//! arguments; otherwise its outcome is `needs-approval` (with the pending approval's id)
//! or `denied` (a human said no, the approval expired, the store cannot be read).
//!
//! Must not: decide policy itself, or reach into a backend's internals.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use crate::{
    approvals::{ApprovalOutcome, ApprovalRequest, Approvals, DEFAULT_APPROVAL_TTL},
    audit::{AuditConfig, AuditEntry, AuditLog, CheckpointSigner, Fsync, Redactor},
    backend::{
        jail::{JailBackend, JailExit, JailReport},
        wasm::{Exit, RunReport, WasmBackend, WasmConfig},
    },
    error::Result,
    guard::{Guard, GuardCheck},
    outcome::{CallOutcome, CallRequest, CapturedOutput, Status, Usage},
    policy::{
        AuditArguments, Budgets, Decision, Evaluation, Grant, OnTamper, PolicyError, PolicyErrors, PolicySet, Program,
        ToolInfo,
    },
    session::{Sessions, Suspension, default_session},
};

/// The protected paths of one call, for the guard: checked before and after a call that
/// can write.
#[derive(Debug, Clone)]
struct Protection {
    /// The canonical workspace.
    workspace: PathBuf,
    /// Relative to it, existing or not.
    paths: Vec<String>,
    /// The designation's rule after a change (carried into the outcome).
    on_tamper: OnTamper,
}

impl Protection {
    /// What the guard checks for an evaluated call: `None` when it has no grant or no
    /// workspace.
    fn of(evaluation: &Evaluation) -> Option<Protection> {
        let grant = evaluation.grant.as_ref()?;
        Some(Protection {
            workspace: grant.workspace.clone()?,
            paths: evaluation.protected.clone(),
            on_tamper: evaluation.on_tamper,
        })
    }
}

/// The caller name recorded for ad-hoc grants made by the operator at the CLI
/// (`airlock run-wasm`).
pub const OPERATOR_CALLER: &str = "operator(cli)";

/// The rule recorded for a call refused because its grant would expose a guarded path.
const GUARDED_PATH_RULE: &str = "runtime: no grant may expose the policies, audit log or module cache";

/// The rule recorded for a call refused because its session is suspended or over budget.
const SESSION_RULE: &str = "runtime: the session's budgets (designations.toml [designations.NAME.budgets])";

/// The tool name of the audit record of a session's suspension.
pub const SUSPEND_RECORD_TOOL: &str = "airlock/sessions.suspend";

/// The tool name of the audit record of a session's resumption.
pub const RESUME_RECORD_TOOL: &str = "airlock/sessions.resume";

/// Builds a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    policies: PathBuf,
    audit_path: PathBuf,
    fsync: Option<Fsync>,
    cache_dir: Option<PathBuf>,
    approvals_dir: PathBuf,
    approval_ttl: Duration,
    sessions_dir: Option<PathBuf>,
    ready_jails: Option<usize>,
}

impl RuntimeBuilder {
    /// A builder for the policies in `policies`, with these defaults: the audit log at
    /// [`default_audit_path`], the fsync mode from the policies' `audit.toml` (else
    /// `batch`), precompiled modules cached in [`default_cache_dir`], approvals kept in
    /// [`default_approvals_dir`] and expiring after [`DEFAULT_APPROVAL_TTL`] (1 h),
    /// suspended sessions kept in `sessions/` beside the audit log, and audit checkpoints
    /// signed only when `audit.toml` names a `signing_key`.
    pub fn new(policies: impl Into<PathBuf>) -> Self {
        RuntimeBuilder {
            policies: policies.into(),
            audit_path: default_audit_path(),
            fsync: None,
            cache_dir: default_cache_dir(),
            approvals_dir: default_approvals_dir(),
            approval_ttl: DEFAULT_APPROVAL_TTL,
            sessions_dir: None,
            ready_jails: None,
        }
    }

    /// Where suspended sessions are kept (one file each; created 0700 by the first
    /// suspension). Default: `sessions` beside the audit log (with the default log,
    /// [`default_sessions_dir`]), so that a separate log keeps separate suspensions.
    pub fn sessions_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sessions_dir = Some(dir.into());
        self
    }

    /// Where approvals are kept (one file each; created 0700 by the first approval).
    pub fn approvals_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.approvals_dir = dir.into();
        self
    }

    /// How long a new approval stays decidable and usable (must be above zero).
    pub fn approval_ttl(mut self, ttl: Duration) -> Self {
        self.approval_ttl = ttl;
        self
    }

    /// Where the audit log is.
    pub fn audit_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_path = path.into();
        self
    }

    /// Overrides the fsync mode of `audit.toml`.
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = Some(fsync);
        self
    }

    /// How many jails the process backend keeps cloned ahead of their calls (the backend's
    /// default when not set; 0 for a process that makes one call and exits, where jails
    /// cloned ahead would only be killed unused).
    pub fn ready_jails(mut self, count: usize) -> Self {
        self.ready_jails = Some(count);
        self
    }

    /// Where precompiled modules are kept (`None`: in memory only).
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Loads the policies, opens the audit log and builds the wasm engine.
    pub fn build(self) -> Result<Runtime> {
        let policies = PolicySet::load(&self.policies)?;
        let settings = policies.audit_settings();
        let fsync = self.fsync.unwrap_or(settings.fsync);
        let redact = Redactor::new(&settings.redact)?;
        let approvals = Approvals::open(&self.approvals_dir, self.approval_ttl, redact.clone())?;
        let signer = match &settings.signing_key {
            Some(key) => Some(CheckpointSigner::load(key, settings.checkpoint_every)?),
            None => None,
        };
        let audit = AuditLog::open_signed(&self.audit_path, AuditConfig { fsync, redact }, signer)?;
        let wasm = WasmBackend::new(WasmConfig { cache_dir: self.cache_dir.clone(), ..WasmConfig::default() })?;
        // Seccomp profiles are compiled once, now, so that a broken one stops the start
        // and calls only look theirs up.
        let mut jail = JailBackend::new();
        if let Some(count) = self.ready_jails {
            jail.set_ready_jails(count);
        }
        for profile in policies.seccomp_profiles() {
            jail.seccomp(profile)?;
        }
        let sessions_dir = self.sessions_dir.clone().unwrap_or_else(|| sessions_dir_beside(&self.audit_path));
        let mut guarded =
            guarded_paths(&self.policies, &self.audit_path, self.cache_dir.as_deref(), Some(&self.approvals_dir));
        // A tool that could write the sessions directory could resume its own session.
        guarded.push(canonical_or_absolute(&sessions_dir));
        // A tool that could read the signing key could forge checkpoints.
        guarded.extend(settings.signing_key.iter().map(|key| canonical_or_absolute(key)));
        Ok(Runtime {
            policies: RwLock::new(Arc::new(policies)),
            audit,
            wasm,
            jail,
            approvals,
            guard: Arc::new(Guard::new()),
            sessions: Sessions::open(&sessions_dir),
            guarded,
        })
    }
}

/// The audit log's default place: `$AIRLOCK_AUDIT`, else
/// `$XDG_STATE_HOME/airlock/audit.jsonl` (`~/.local/state/airlock/audit.jsonl`).
pub fn default_audit_path() -> PathBuf {
    if let Some(path) = std::env::var_os("AIRLOCK_AUDIT") {
        return PathBuf::from(path);
    }
    xdg_dir("XDG_STATE_HOME", ".local/state").join("airlock/audit.jsonl")
}

/// The approvals' default place: `$XDG_STATE_HOME/airlock/approvals`
/// (`~/.local/state/airlock/approvals`), beside the default audit log.
pub fn default_approvals_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state").join("airlock/approvals")
}

/// The suspended sessions' default place: `$XDG_STATE_HOME/airlock/sessions`
/// (`~/.local/state/airlock/sessions`), beside the approvals.
pub fn default_sessions_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state").join("airlock/sessions")
}

/// The sessions directory beside the audit log at `audit`.
pub fn sessions_dir_beside(audit: &Path) -> PathBuf {
    match audit.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join("sessions"),
        _ => PathBuf::from("sessions"),
    }
}

/// The module cache's default place: `$XDG_CACHE_HOME/airlock/modules`
/// (`~/.cache/airlock/modules`).
pub fn default_cache_dir() -> Option<PathBuf> {
    Some(xdg_dir("XDG_CACHE_HOME", ".cache").join("airlock/modules"))
}

fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from).join(fallback),
    }
}

/// The paths no grant may expose, canonicalized where they exist: the policies, the
/// audit log, the module cache and the approvals (a tool that could write them could
/// rewrite its own rules, history or code, or approve its own calls).
fn guarded_paths(policies: &Path, audit: &Path, cache: Option<&Path>, approvals: Option<&Path>) -> Vec<PathBuf> {
    [Some(policies), Some(audit), cache, approvals].into_iter().flatten().map(canonical_or_absolute).collect()
}

/// The canonical form of `path`, or of its nearest existing ancestor joined with the
/// rest (the audit log may not exist yet).
fn canonical_or_absolute(path: &Path) -> PathBuf {
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => canonical_or_absolute(parent).join(name),
        _ => std::env::current_dir().map_or_else(|_| path.to_path_buf(), |cwd| cwd.join(path)),
    }
}

/// The pipeline: policies, audit log and backends, shared by every call.
pub struct Runtime {
    policies: RwLock<Arc<PolicySet>>,
    audit: AuditLog,
    wasm: WasmBackend,
    jail: JailBackend,
    approvals: Approvals,
    guard: Arc<Guard>,
    sessions: Sessions,
    guarded: Vec<PathBuf>,
}

impl Runtime {
    /// A builder for the policies in `policies` (see [`RuntimeBuilder::new`] for the
    /// defaults).
    pub fn builder(policies: impl Into<PathBuf>) -> RuntimeBuilder {
        RuntimeBuilder::new(policies)
    }

    /// The policy set in force.
    pub fn policies(&self) -> Arc<PolicySet> {
        match self.policies.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The approvals: list, get and decide them (the socket service and the CLI do).
    pub fn approvals(&self) -> &Approvals {
        &self.approvals
    }

    /// The sessions: their counters and suspensions (the socket service and the CLI list
    /// them; [`Runtime::resume_session`] and [`Runtime::suspend_session`] change them).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Lifts the suspension of `session` and audits it (`by`: the admin who resumed it).
    /// Errors when the session is not suspended, or its record cannot be written.
    pub async fn resume_session(&self, session: &str, by: &str) -> Result<Suspension> {
        self.audit.check()?;
        let lifted = self.sessions.resume(session)?;
        let mut entry = AuditEntry::new(
            by,
            RESUME_RECORD_TOOL,
            serde_json::json!({ "session": session }),
            Decision::Allow,
            "an admin resumed the session",
        );
        entry.session = Some(session.to_string());
        entry.reasons.push(format!("it was suspended {} since {}", lifted.reason, lifted.suspended_at));
        self.audit.append(entry).await?;
        Ok(lifted)
    }

    /// Suspends `session` durably and audits it: every later call of it is denied until an
    /// admin runs `airlock sessions resume`. `reason` is a phrase that follows "suspended"
    /// (`for tampering with tests/`); `cause` a word for what suspended it (`tamper`). The
    /// guard's `on_tamper = "suspend"` calls this.
    pub async fn suspend_session(&self, session: &str, reason: &str, cause: &str) -> Result<Suspension> {
        let suspension = self.sessions.suspend(session, reason, cause)?;
        self.audit_suspension(&suspension, suspension.caller.as_deref().unwrap_or("airlock")).await?;
        Ok(suspension)
    }

    /// Appends the record of a session's suspension.
    async fn audit_suspension(&self, suspension: &Suspension, caller: &str) -> Result<()> {
        let mut entry = AuditEntry::new(
            caller,
            SUSPEND_RECORD_TOOL,
            serde_json::json!({ "session": suspension.session, "cause": suspension.cause }),
            Decision::Deny,
            format!("session suspended ({})", suspension.cause),
        );
        entry.session = Some(suspension.session.clone());
        entry.reasons.push(format!("session {} suspended {}", suspension.session, suspension.reason));
        self.audit.append(entry).await?;
        Ok(())
    }

    /// Charges a finished call to its session and counts it towards the denial tripwire;
    /// a suspension it trips is audited.
    async fn account(&self, session: &str, caller: &str, budgets: &Budgets, outcome: &CallOutcome) -> Result<()> {
        self.sessions.charge(session, outcome);
        match self.sessions.count_denial(session, caller, budgets, outcome) {
            None => Ok(()),
            Some(Ok(suspension)) => self.audit_suspension(&suspension, caller).await,
            Some(Err(error)) => {
                // The next call of the session reads the same store and fails closed.
                let mut entry = AuditEntry::new(
                    caller,
                    SUSPEND_RECORD_TOOL,
                    serde_json::json!({ "session": session }),
                    Decision::Deny,
                    "session suspension could not be written",
                );
                entry.session = Some(session.to_string());
                entry.reasons.push(error.to_string());
                self.audit.append(entry).await?;
                Ok(())
            }
        }
    }

    /// The wasm backend (its cache counters, for diagnostics and tests).
    pub fn wasm(&self) -> &WasmBackend {
        &self.wasm
    }

    /// The process jail backend (what the host offers it, for diagnostics and tests).
    pub fn jail(&self) -> &JailBackend {
        &self.jail
    }

    /// Drains and syncs the audit log; the runtime is gone afterwards.
    pub async fn close(self) -> Result<()> {
        Ok(self.audit.close().await?)
    }

    /// The tools `caller` may see: every tool whose decision for it is not deny.
    pub fn tools_for(&self, caller: &str) -> Vec<ToolInfo> {
        self.policies().tools_for(caller)
    }

    /// Loads the policy directory again and puts the new set in force for the calls that
    /// start from now on (calls already running keep the set they started with). On any
    /// error the old set stays in force and every mistake found is returned.
    ///
    /// Seccomp profiles are compiled before the new set is put in force, as at start. Only
    /// the policies are reloaded: the audit log's fsync mode and redaction patterns
    /// (`audit.toml`) are read once, when the runtime is built.
    pub fn reload(&self) -> Result<(), PolicyErrors> {
        let root = self.policies().root().to_path_buf();
        let fresh = Arc::new(PolicySet::load(&root)?);
        // As at start: a seccomp profile that does not compile stops the reload, not a call.
        let broken: Vec<PolicyError> = fresh
            .seccomp_profiles()
            .filter_map(|profile| {
                self.jail.seccomp(profile).err().map(|error| PolicyError {
                    file: profile.path.clone(),
                    line: 1,
                    column: 1,
                    message: error.to_string(),
                    help: "fix the seccomp profile; the policy set in force stays until a reload succeeds".into(),
                })
            })
            .collect();
        if !broken.is_empty() {
            return Err(PolicyErrors(broken));
        }
        match self.policies.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Runs one call through the whole pipeline. `Ok` carries the outcome of an allowed,
    /// denied or failed call alike; `Err` means the call could not be audited and its
    /// outcome is withheld.
    pub async fn call(&self, request: CallRequest) -> Result<CallOutcome> {
        self.call_until(request, std::future::pending()).await
    }

    /// [`Runtime::call`], withdrawn when `cancelled` completes first: if the tool is
    /// running then, it is stopped (its backend future is dropped: a wasm guest stops at
    /// once, its store and pool slot are freed) and the call is audited with
    /// [`Status::Cancelled`]. A call cancelled before it starts still gets its record (the
    /// decision is made and written either way); the audit append itself is never
    /// interrupted, so a call has exactly one record whenever `cancelled` fires.
    pub async fn call_until(&self, request: CallRequest, cancelled: impl Future<Output = ()>) -> Result<CallOutcome> {
        let policies = self.policies();
        let evaluation = policies.evaluate(&request.caller, &request.tool, &request.arguments, &request.workspace);
        let mut entry = AuditEntry::new(
            &request.caller,
            &request.tool,
            request.arguments.clone(),
            evaluation.decision,
            &evaluation.rule,
        );
        entry.designation = evaluation.caller.designation.clone();
        // A call without a session is counted in its caller's default session.
        let session = request.session.clone().unwrap_or_else(|| default_session(&request.caller));
        entry.session = Some(session.clone());
        entry.tool_sha256 = evaluation.tool_sha256.clone();
        entry.policy_digest = Some(policies.digest().to_string());
        // As an absolute path: a relative one (`--workspace ws`) says nothing once the
        // caller's current directory is forgotten.
        entry.workspace = Some(std::path::absolute(&request.workspace).unwrap_or_else(|_| request.workspace.clone()));
        entry.reasons = evaluation.reasons.clone();
        if evaluation.audit_arguments == AuditArguments::Full {
            entry.full_arguments = true;
            entry.reasons.push("arguments audited in full, unredacted (designation audit_arguments = \"full\")".into());
        }
        let budgets = evaluation
            .caller
            .designation
            .as_deref()
            .and_then(|name| policies.designation(name))
            .map(|designation| *designation.budgets())
            .unwrap_or_default();
        // Suspended or over budget: refused before anything else, and not counted as a
        // denial (the tripwire counts what the policy and the runtime refuse).
        if let Err(reason) = self.sessions.admit(&session, &request.caller, &budgets) {
            entry.reasons.push(format!("policy: {} ({})", entry.rule, entry.decision.name()));
            entry.decision = Decision::Deny;
            entry.rule = SESSION_RULE.to_string();
            return self.record(entry, denied(reason)).await;
        }
        let outcome = if evaluation.decision == Decision::NeedsApproval {
            self.gate(entry, evaluation, &request, cancelled).await?
        } else {
            match refusal(&evaluation) {
                Some(reason) => self.record(entry, denied(reason)).await?,
                None => match evaluation.grant.clone() {
                    Some(grant) => self.run(entry, grant, Protection::of(&evaluation), cancelled).await?,
                    None => self.record(entry, denied("policy allowed the call but gave no grant".into())).await?,
                },
            }
        };
        self.account(&session, &request.caller, &budgets, &outcome).await?;
        if let Status::Tampered { changed, on_tamper: OnTamper::Suspend, .. } = &outcome.status {
            let reason = format!("for tampering with protected paths ({})", changed.join(", "));
            self.suspend_session(&session, &reason, "tamper").await?;
        }
        Ok(outcome)
    }

    /// The approval gate of a needs-approval call: runs it on a valid approval (one use
    /// taken, the approval in the audit record), otherwise records it as needs-approval
    /// (the pending approval's id in the outcome) or denied (a human said no, the approval
    /// expired, the store failed: never a run). When `cancelled` completes while it waits
    /// for a decision, the call is recorded as cancelled.
    async fn gate(
        &self,
        mut entry: AuditEntry,
        evaluation: Evaluation,
        request: &CallRequest,
        cancelled: impl Future<Output = ()>,
    ) -> Result<CallOutcome> {
        let protection = Protection::of(&evaluation);
        let Some(grant) = evaluation.grant else {
            return self.record(entry, denied("policy asked for approval but gave no grant".into())).await;
        };
        // Evaluation resolved the workspace already; the binding needs its canonical form.
        let workspace = match request.workspace.canonicalize() {
            Ok(workspace) => workspace,
            Err(error) => {
                let reason = format!("the workspace {} cannot be resolved: {error}", request.workspace.display());
                return self.record(entry, denied(reason)).await;
            }
        };
        // Taking a use of an approval for a call that cannot be audited would waste it.
        self.audit.check()?;
        let ask = ApprovalRequest {
            tool: request.tool.clone(),
            caller: request.caller.clone(),
            workspace,
            arguments: request.arguments.clone(),
            session: request.session.clone(),
            rule: evaluation.rule.clone(),
        };
        let wait = Duration::from_millis(request.approval_wait_ms.unwrap_or(0));
        let mut cancelled = std::pin::pin!(cancelled);
        // Withdrawn while waiting for a human: the pending approval stays for a later call.
        // (Dropping the gate mid-step can leave a use it already took unused.)
        let gated = tokio::select! {
            biased;
            () = &mut cancelled => None,
            gated = self.approvals.gate(ask, wait) => Some(gated),
        };
        let Some(gated) = gated else {
            entry.reasons.push("the caller cancelled the call before the approval gate let it run".into());
            return self.record(entry, cancelled_outcome()).await;
        };
        match gated {
            Ok(outcome @ ApprovalOutcome::Approved { .. }) => {
                if let ApprovalOutcome::Approved { approval } = &outcome {
                    entry.reasons.push(format!(
                        "approval {} by {} at {}: {} of {} uses left",
                        approval.id,
                        approval.approver.as_deref().unwrap_or("?"),
                        approval.decided.as_deref().unwrap_or("?"),
                        approval.uses_left,
                        approval.uses_granted
                    ));
                }
                entry.approval = outcome.record();
                self.run(entry, grant, protection, cancelled).await
            }
            Ok(ApprovalOutcome::Pending { approval }) => {
                let status = Status::NeedsApproval { approval_id: approval.id, expires_at: approval.expires };
                self.record(entry, CallOutcome { status, ..denied(String::new()) }).await
            }
            Ok(ApprovalOutcome::Refused { reason, .. }) => self.record(entry, denied(reason)).await,
            Err(error) => {
                let reason = format!("the approval store cannot be used, so the call does not run: {error}");
                self.record(entry, denied(reason)).await
            }
        }
    }

    /// Runs an ad-hoc grant the operator composed by hand (`airlock run-wasm`, `airlock
    /// run-jail`): no policy evaluation, but the same backend, limits and audit record as
    /// any call.
    pub async fn run_grant(&self, caller: &str, grant: Grant, arguments: serde_json::Value) -> Result<CallOutcome> {
        let command = match grant.program {
            Program::Wasm { .. } => "airlock run-wasm",
            Program::Process { .. } => "airlock run-jail",
        };
        let mut entry = AuditEntry::new(
            caller,
            &grant.tool,
            arguments,
            Decision::Allow,
            format!(
                "ad-hoc grant composed by the operator ({command}): exactly the capabilities given on the command line"
            ),
        );
        entry.tool_sha256 = grant.program_sha256().map(str::to_string);
        entry.workspace = grant.workspace.clone().or_else(|| grant.mounts.first().map(|m| m.host.clone()));
        self.run(entry, grant, None, std::future::pending()).await
    }

    /// Runs an allowed call: guard checks, backend (unless `cancelled` completes first),
    /// audit. A call that can write (a writable mount) has its protected paths checked
    /// before and after the backend runs: a change found before is a `tampered` outcome
    /// without running the tool (it was made between calls, by another route); a change
    /// found after is a `tampered` outcome whatever the exit code; a check that cannot be
    /// made refuses the call (before) or is `tampered` (after).
    async fn run(
        &self,
        mut entry: AuditEntry,
        grant: Grant,
        protection: Option<Protection>,
        cancelled: impl Future<Output = ()>,
    ) -> Result<CallOutcome> {
        entry.env = grant.env.clone();
        let is_process = matches!(grant.program, Program::Process { .. });
        entry.backend = Some(if is_process { "jail" } else { "wasm" }.into());
        if let Some(reason) = self.exposes_guarded_path(&grant) {
            // The runtime, not the policy, refused the call: the record says so, so that
            // `audit query --decision deny` finds it.
            entry.reasons.push(format!("policy: {} ({})", entry.rule, entry.decision.name()));
            entry.decision = Decision::Deny;
            entry.rule = GUARDED_PATH_RULE.to_string();
            return self.record(entry, denied(reason)).await;
        }
        // A call that could not be audited must not run: check the log before, not after.
        self.audit.check()?;
        let can_write = grant.mounts.iter().any(|mount| mount.writable);
        let protection = protection.filter(|p| can_write && !p.paths.is_empty());
        // Where the check before is noted, and whether it was quiet (then a quiet check
        // after shares its line).
        let mut before = None;
        if let Some(protection) = &protection {
            match self.check_protected(protection, false).await {
                Ok(check) => {
                    before = Some((entry.reasons.len(), is_quiet(&check)));
                    entry.reasons.push(guard_note("before", protection, &check));
                    if !check.changes.is_empty() {
                        entry.reasons.push(
                            "protected paths changed since the last call, by another route: the tool was not run"
                                .into(),
                        );
                        return self.record(entry, tampered(check.changes, false, protection.on_tamper, None)).await;
                    }
                }
                Err(error) => {
                    let reason = format!("the protected paths cannot be checked, so the call does not run: {error}");
                    return self.record(entry, denied(reason)).await;
                }
            }
        }
        // Only the backend is raced against `cancelled` (checked first, so a call withdrawn
        // before it starts never starts); the record below always completes.
        let finished = tokio::select! {
            biased;
            () = cancelled => None,
            outcome = self.execute(&mut entry, &grant, is_process) => Some(outcome),
        };
        let mut outcome = match finished {
            Some(outcome) => outcome,
            None => {
                entry.reasons.push("the caller cancelled the call; the tool was stopped, or never started".into());
                cancelled_outcome()
            }
        };
        if let Some(protection) = &protection {
            match self.check_protected(protection, true).await {
                Ok(check) => match before {
                    Some((at, true)) if is_quiet(&check) => {
                        entry.reasons[at] = guard_note("before and after", protection, &check);
                    }
                    _ => {
                        entry.reasons.push(guard_note("after", protection, &check));
                        if !check.changes.is_empty() {
                            entry.reasons.push(format!("the tool's own status was {}", outcome.status.name()));
                            outcome = tampered(check.changes, true, protection.on_tamper, Some(outcome));
                        }
                    }
                },
                Err(error) => {
                    entry.reasons.push(format!("the protected paths could not be checked after the call: {error}"));
                    let changed = vec![format!("(unverifiable: {error})")];
                    outcome = tampered(changed, true, protection.on_tamper, Some(outcome));
                }
            }
        }
        self.record(entry, outcome).await
    }

    /// One guard check: inline when inotify reports nothing (no scan needed), otherwise
    /// on the blocking pool.
    async fn check_protected(
        &self,
        protection: &Protection,
        after_write: bool,
    ) -> std::result::Result<GuardCheck, crate::guard::GuardError> {
        if let Some(check) = self.guard.check_quiet(&protection.workspace, &protection.paths) {
            return Ok(check);
        }
        let guard = Arc::clone(&self.guard);
        let (workspace, paths) = (protection.workspace.clone(), protection.paths.clone());
        match tokio::task::spawn_blocking(move || guard.check(&workspace, &paths, after_write)).await {
            Ok(result) => result,
            Err(join) => Err(crate::guard::GuardError::Read {
                path: protection.workspace.clone(),
                source: std::io::Error::other(format!("the check panicked or was cancelled: {join}")),
            }),
        }
    }

    /// Runs the grant on its backend. Dropping the future stops the tool: a wasm guest's
    /// store is dropped, a jailed process tree is killed and reaped.
    async fn execute(&self, entry: &mut AuditEntry, grant: &Grant, is_process: bool) -> CallOutcome {
        if is_process {
            match self.jail.run(grant).await {
                Ok(report) => {
                    entry.isolation = report.layers.iter().map(|layer| layer.name().to_string()).collect();
                    outcome_of_jail(report)
                }
                Err(error) => denied(format!("the process jail refused or could not start the tool: {error}")),
            }
        } else {
            match self.wasm.run(grant).await {
                Ok(report) => outcome_of(report),
                Err(error) => denied(format!("the wasm backend could not start the tool: {error}")),
            }
        }
    }

    /// Appends the call's record and stamps its sequence number on the outcome.
    async fn record(&self, mut entry: AuditEntry, mut outcome: CallOutcome) -> Result<CallOutcome> {
        entry.violations = outcome.violations.clone();
        entry.outcome = Some(outcome.clone());
        outcome.audit_seq = self.audit.append(entry).await?;
        Ok(outcome)
    }

    /// The reason to refuse a grant that would make the policies, the audit log, the
    /// module cache or the approvals visible to the tool, if it would.
    fn exposes_guarded_path(&self, grant: &Grant) -> Option<String> {
        for mount in grant.mounts.iter().chain(&grant.protected) {
            for guarded in &self.guarded {
                if guarded.starts_with(&mount.host) || mount.host.starts_with(guarded) {
                    return Some(format!(
                        "the grant would expose {} (policies, audit log or module cache) through the mount of {}; \
                         use a workspace that does not contain them",
                        guarded.display(),
                        mount.host.display()
                    ));
                }
            }
        }
        None
    }
}

/// Why an evaluation does not let the call run now, if it does not.
fn refusal(evaluation: &Evaluation) -> Option<String> {
    let because = || {
        let mut text = evaluation.rule.clone();
        for reason in &evaluation.reasons {
            text.push_str("; ");
            text.push_str(reason);
        }
        text
    };
    match evaluation.decision {
        Decision::Allow => None,
        Decision::NeedsApproval => Some(format!("needs a human's approval: {}", because())),
        Decision::Deny => Some(because()),
    }
}

/// The outcome of a call that did not run.
fn denied(reason: String) -> CallOutcome {
    CallOutcome {
        status: Status::Denied { reason },
        exit_code: None,
        signal: None,
        stdout: CapturedOutput::default(),
        stderr: CapturedOutput::default(),
        usage: Usage::default(),
        audit_seq: 0,
        violations: Vec::new(),
    }
}

/// The outcome of a call whose protected paths changed: `ran` with the tool's `outcome`
/// (its exit code, output and usage are kept), or not run.
fn tampered(changed: Vec<String>, ran: bool, on_tamper: OnTamper, outcome: Option<CallOutcome>) -> CallOutcome {
    let mut outcome = outcome.unwrap_or_else(|| denied(String::new()));
    outcome.violations.extend(changed.iter().map(|path| format!("protected path changed: {path}")));
    outcome.status = Status::Tampered { changed, ran, on_tamper };
    outcome
}

/// Whether a check found nothing and has nothing to say: inotify was quiet.
fn is_quiet(check: &GuardCheck) -> bool {
    check.kind == crate::guard::CheckKind::Quiet && check.changes.is_empty() && check.note.is_none()
}

/// The audit reason line of one guard check (or of two quiet ones).
fn guard_note(when: &str, protection: &Protection, check: &GuardCheck) -> String {
    let how = match check.kind {
        crate::guard::CheckKind::Cold => "cold: every tree scanned and hashed".to_string(),
        crate::guard::CheckKind::Quiet => "no change reported by inotify".to_string(),
        crate::guard::CheckKind::Partial(n) => format!("{n} path(s) named by inotify rescanned"),
        crate::guard::CheckKind::Full => "full rescan".to_string(),
    };
    let mut line = format!("guard {when} the call: protected [{}]: {how}", protection.paths.join(", "));
    if let Some(note) = &check.note {
        line.push_str("; ");
        line.push_str(note);
    }
    line
}

/// The outcome of a call withdrawn while it ran (what the tool wrote so far is dropped
/// with its store).
fn cancelled_outcome() -> CallOutcome {
    CallOutcome { status: Status::Cancelled, ..denied(String::new()) }
}

/// The outcome of a call that ran, from the backend's report.
fn outcome_of(report: RunReport) -> CallOutcome {
    let (status, exit_code) = match report.exit {
        Exit::Code(0) => (Status::Ok, Some(0)),
        Exit::Code(code) => (Status::ToolError, Some(code)),
        Exit::Limit(limit) => (Status::LimitExceeded { limit }, None),
        Exit::Trap(trap) => (Status::Trapped { trap }, None),
    };
    CallOutcome {
        status,
        exit_code,
        signal: None,
        stdout: report.stdout,
        stderr: report.stderr,
        usage: report.usage,
        audit_seq: 0,
        violations: Vec::new(),
    }
}

/// The outcome of a call the process jail ran.
fn outcome_of_jail(report: JailReport) -> CallOutcome {
    let (status, exit_code, signal) = match report.exit {
        JailExit::Code(0) => (Status::Ok, Some(0), None),
        JailExit::Code(code) => (Status::ToolError, Some(code), None),
        JailExit::Signal(signal) => (
            Status::Trapped { trap: format!("killed by signal {signal} ({})", signal_name(signal)) },
            None,
            Some(signal),
        ),
        JailExit::Limit { limit, signal } => (Status::LimitExceeded { limit }, None, signal),
    };
    CallOutcome {
        status,
        exit_code,
        signal,
        stdout: report.stdout,
        stderr: report.stderr,
        usage: report.usage,
        audit_seq: 0,
        violations: report.violations,
    }
}

/// The conventional name of a signal (`SIGSEGV`), or `signal N`.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}
