//! Human approvals: the durable store of approvals, and the gate a call whose decision is
//! [`crate::Decision::NeedsApproval`] goes through.
//!
//! Owns: [`Approvals`] (list, get, decide; and [`Approvals::gate`], which the runtime calls
//! for one call: use a valid approval, or create / reuse the pending one and wait for a
//! decision), the rules of an approval's life ([`ApprovalState`]), and its storage
//! (`store`, `record`).
//! Must not: evaluate policy, run a tool, or check who may decide: the runtime asks the
//! gate only for calls policy sent to a human, and the socket service (admin callers) or
//! the CLI (whoever can write the directory) pass the approver's name to
//! [`Approvals::decide`].
//!
//! # Rules
//!
//! An approval is bound to one exact call: the sha256 of tool, canonical arguments,
//! canonical workspace and caller ([`binding`]). For a call, the gate looks only at the
//! approvals of its binding, under the store's lock, in this order:
//! 1. one denied and not yet expired: the call is refused with the human's reason (an
//!    agent cannot re-ask at once what a human just refused);
//! 2. one approved, unexpired, with uses left: one use is taken (written before the call
//!    runs; the lock makes the last use go to exactly one call) and the call runs;
//! 3. one pending and unexpired: it is reused (never a second pending approval for the
//!    same call);
//! 4. pending or approved ones past their expiry: they are marked expired and the call is
//!    refused with "approval expired" (once: the next identical call asks anew);
//! 5. otherwise a new pending approval is created (at most [`MAX_PENDING_PER_CALLER`] per
//!    caller).
//!
//! A call with other arguments, another workspace or from another caller has another
//! binding, so it never uses (or even sees) this approval. Only a pending, unexpired
//! approval can be decided. Expiry is applied lazily, when a call or a listing looks.
//!
//! # Durability
//!
//! One JSON file per approval, `<binding>-<id>.json`, replaced atomically (temp file,
//! fsync, rename, fsync of the directory) under an exclusive lock (in-process mutex plus
//! `flock` on `.lock`). Chosen over an append-only journal because an approval is a small
//! record that changes state a few times, not a history: each change replaces one file,
//! there is nothing to replay or compact at start, a restart simply reads the directory,
//! a damaged file affects only its own call (which is then refused, fail closed) instead
//! of everything after it in a journal, the binding in the name finds a call's approvals
//! without reading the others, and a human can read (not edit: each file carries a
//! checksum) an approval with `cat`. Once `decide` or a use returns, the change has
//! reached the disk; a crash before that leaves the previous state, never a torn file.
//!
//! A decision wakes the calls of this process that wait on that approval (a `tokio` watch
//! channel per approval); a decision made by another process on the same directory (the
//! CLI with `--state-dir`) is seen by a waiting call within [`WAIT_POLL_INTERVAL`].

mod record;
mod store;

pub use record::{Approval, ApprovalState, BINDING_DOMAIN, FORMAT, binding};
pub use store::MAX_APPROVAL_FILE_BYTES;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use crate::audit::{ApprovalRecord, Redactor, arguments_sha256, format_time};
use record::is_hex;
use store::Store;

/// How long an approval stays decidable and usable when the runtime is not told
/// otherwise: long enough for a human to answer, short enough that a forgotten approval
/// does not wait for a much later, different situation.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(3600);

/// Caps the uses one decision may grant, so that a slip (`--uses 1000000`) does not turn
/// an approval into a standing permission.
pub const MAX_USES: u32 = 1000;

/// Caps the pending approvals of one caller, so that an agent cannot flood the humans
/// (and the disk) with requests by varying its arguments.
pub const MAX_PENDING_PER_CALLER: usize = 100;

/// Caps a denial's reason and an approver's name, which end up in files, audit records
/// and the agent's outcome.
pub const MAX_TEXT_BYTES: usize = 4096;

/// How often a waiting call looks at the directory again, to see decisions made by
/// another process (in-process decisions wake it at once).
pub const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Errors of the approval store. A call whose approval cannot be read or written is
/// refused, never run.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("cannot create the approvals directory {path}: {source}; check the parent's permissions")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("the approvals directory {path} is not a directory; point airlock at a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "the approvals directory {path} is writable by everyone (mode {mode:o}): anyone could approve \
         anything; run `chmod o-w {path}` (airlock creates it 0700)"
    )]
    InsecureDir { path: PathBuf, mode: u32 },
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot lock the approvals directory ({path}): {source}; the file system must support flock")]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "approval file {path} is corrupt: {reason}; no call runs on it (fail closed): inspect it, \
         then move it out of the directory (the call will then ask for a new approval)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "cannot write approval file {path}: {source}; the change was not made: free disk space or \
         fix the directory's permissions"
    )]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot make the approvals directory {path} durable (fsync): {source}; check the disk")]
    Sync { path: PathBuf, source: std::io::Error },
    #[error("cannot encode approval {id} as JSON: {source}")]
    Encode { id: String, source: serde_json::Error },
    #[error(
        "the approval for a call of {tool} would take {bytes} bytes, more than the cap of \
         {MAX_APPROVAL_FILE_BYTES}; pass smaller arguments"
    )]
    TooLarge { tool: String, bytes: u64 },
    #[error("cannot read random bytes for an approval id from /dev/urandom: {source}")]
    Random { source: std::io::Error },
    #[error("{id:?} is not an approval id (32 lowercase hex digits); `airlock approvals list` shows them")]
    BadId { id: String },
    #[error("there is no approval {id}; `airlock approvals list --all` shows them")]
    NotFound { id: String },
    #[error("approval {id} is {state}, not pending: only a pending approval can be decided")]
    NotPending { id: String, state: ApprovalState },
    #[error(
        "approval {id} expired at {expires} and can no longer be decided; the call must be made \
         again to ask for a new approval"
    )]
    Expired { id: String, expires: String },
    #[error("cannot grant {uses} uses: give between 1 and {MAX_USES}")]
    BadUses { uses: u32 },
    #[error("a denial needs a reason (the agent and the audit log see it); give --reason TEXT")]
    MissingReason,
    #[error("the {what} is longer than {MAX_TEXT_BYTES} bytes; shorten it")]
    TextTooLong { what: &'static str },
    #[error("the approver's name must be non-empty text without control characters")]
    BadApprover,
    #[error("the approval TTL must be longer than zero")]
    ZeroTtl,
    #[error("the approval store's worker task failed: {reason}")]
    Task { reason: String },
}

/// The approvals module's result alias.
pub type Result<T, E = ApprovalError> = std::result::Result<T, E>;

/// Which approvals [`Approvals::list`] returns, by state (expiry applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalFilter {
    /// Waiting for a decision (the default: what a human has to look at).
    #[default]
    Pending,
    Approved,
    Denied,
    Expired,
    Used,
    /// Every approval.
    All,
}

impl ApprovalFilter {
    /// True when an approval in `state` passes.
    pub fn admits(self, state: ApprovalState) -> bool {
        match self {
            ApprovalFilter::Pending => state == ApprovalState::Pending,
            ApprovalFilter::Approved => state == ApprovalState::Approved,
            ApprovalFilter::Denied => state == ApprovalState::Denied,
            ApprovalFilter::Expired => state == ApprovalState::Expired,
            ApprovalFilter::Used => state == ApprovalState::Used,
            ApprovalFilter::All => true,
        }
    }
}

impl std::str::FromStr for ApprovalFilter {
    type Err = String;

    /// `pending`, `approved`, `denied`, `expired`, `used` or `all`.
    fn from_str(text: &str) -> Result<Self, String> {
        serde_json::from_value(Value::String(text.to_string()))
            .map_err(|_| format!("{text:?} is not a state; use pending, approved, denied, expired, used or all"))
    }
}

/// A human's decision on a pending approval. In JSON: `{"verdict": "approve", "uses": 2}`
/// or `{"verdict": "deny", "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Let the bound call run `uses` times (1 ..= [`MAX_USES`]) before the approval expires.
    Approve { uses: u32 },
    /// Refuse the bound call, with a reason the agent and the audit log see.
    Deny { reason: String },
}

/// The params of the socket method `airlock/approvals.list`: `{"state": "pending"}`
/// (`state` optional, default pending; `all` for every approval). Result:
/// `{"approvals": [Approval, ...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default)]
    pub state: ApprovalFilter,
}

/// The params of `airlock/approvals.get`: `{"id": "..."}`. Result: `{"approval": Approval}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    pub id: String,
}

/// The params of `airlock/approvals.decide`: `{"id": "...", "verdict": "approve", "uses": 2}`
/// or `{"id": "...", "verdict": "deny", "reason": "..."}`. The approver is the connection's
/// caller, never a param. Result: `{"approval": Approval}` (after the decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecideParams {
    pub id: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The call a [`Approvals::gate`] is asked about.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// The tool.
    pub tool: String,
    /// Who calls.
    pub caller: String,
    /// The canonical workspace (as policy evaluation resolved it).
    pub workspace: PathBuf,
    /// The arguments exactly as given (they are redacted before they are stored).
    pub arguments: Value,
    /// The call's session (shown to the human; not part of the binding).
    pub session: Option<String>,
    /// The policy rule that asked for a human.
    pub rule: String,
}

impl ApprovalRequest {
    /// The call's binding (see [`binding`]).
    pub fn binding(&self) -> String {
        binding(&self.tool, &self.arguments, &self.workspace, &self.caller)
    }
}

/// What the gate says about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// Run the call: a use of this approval was taken (its state is after the use).
    Approved { approval: Approval },
    /// Not decided yet: the call does not run; the caller may retry later.
    Pending { approval: Approval },
    /// Refused: denied by a human, expired, or too many pending approvals.
    Refused { reason: String, approval: Option<Approval> },
}

impl ApprovalOutcome {
    /// The audit log's record of an approval that let a call run.
    pub fn record(&self) -> Option<ApprovalRecord> {
        match self {
            ApprovalOutcome::Approved { approval } => Some(ApprovalRecord {
                id: approval.id.clone(),
                approver: approval.approver.clone().unwrap_or_default(),
                time: approval.decided.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

/// The approvals [`Approvals::list_checked`] could read, and the errors of those it could
/// not.
#[derive(Debug, Default)]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
    pub unreadable: Vec<ApprovalError>,
}

/// The approval store: cheap to clone (the clones share the directory, the lock and the
/// waiting calls).
#[derive(Debug, Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    ttl: Duration,
    redactor: Redactor,
    /// Approval id -> the channel its waiting calls listen on.
    waiters: Mutex<HashMap<String, watch::Sender<()>>>,
}

impl Approvals {
    /// Opens the store in `dir` (created 0700 with its parents when the first approval is
    /// written; refused when anyone may write it). New approvals expire `ttl` after they are created; their arguments are
    /// stored redacted by `redactor`.
    pub fn open(dir: impl AsRef<Path>, ttl: Duration, redactor: Redactor) -> Result<Approvals> {
        if ttl.is_zero() {
            return Err(ApprovalError::ZeroTtl);
        }
        let store = Store::open(dir.as_ref())?;
        Ok(Approvals { inner: Arc::new(Inner { store, ttl, redactor, waiters: Mutex::new(HashMap::new()) }) })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.inner.store.dir()
    }

    /// How long new approvals live.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The approvals in `filter`'s state (expiry applied), oldest first. Files that cannot
    /// be read are left out and logged; [`Approvals::list_checked`] returns them.
    pub fn list(&self, filter: ApprovalFilter) -> Vec<Approval> {
        let list = self.list_checked(filter);
        for error in &list.unreadable {
            tracing::warn!("{error}");
        }
        list.approvals
    }

    /// [`Approvals::list`], with the errors of the files that could not be read.
    pub fn list_checked(&self, filter: ApprovalFilter) -> ApprovalList {
        let mut list = ApprovalList::default();
        let files = match self.inner.store.all_files() {
            Ok(files) => files,
            Err(error) => {
                list.unreadable.push(error);
                return list;
            }
        };
        let now = SystemTime::now();
        for path in files {
            match self.inner.store.read(&path) {
                Ok(mut approval) => {
                    approval.state = approval.state_at(now);
                    if filter.admits(approval.state) {
                        list.approvals.push(approval);
                    }
                }
                // Gone between the listing and the read: it was never there for us.
                Err(ApprovalError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => list.unreadable.push(error),
            }
        }
        list.approvals.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        list
    }

    /// The approval `id` (expiry applied), if it exists and can be read; an unreadable one
    /// is logged. [`Approvals::load`] says why there is none.
    pub fn get(&self, id: &str) -> Option<Approval> {
        match self.load(id) {
            Ok(approval) => Some(approval),
            Err(ApprovalError::NotFound { .. } | ApprovalError::BadId { .. }) => None,
            Err(error) => {
                tracing::warn!("{error}");
                None
            }
        }
    }

    /// The approval `id` (expiry applied), or why it cannot be had.
    pub fn load(&self, id: &str) -> Result<Approval> {
        check_id(id)?;
        let path = self.inner.store.id_file(id)?.ok_or_else(|| ApprovalError::NotFound { id: id.to_string() })?;
        let mut approval = self.inner.store.read(&path)?;
        approval.state = approval.state_at(SystemTime::now());
        Ok(approval)
    }

    /// Decides the pending, unexpired approval `id` as `approver`, durably, and wakes the
    /// calls waiting on it. Who may decide is checked by the caller of this function (the
    /// socket service admits admin callers only; the CLI needs write access to the
    /// directory).
    pub fn decide(&self, id: &str, approver: &str, verdict: Verdict) -> Result<Approval> {
        check_id(id)?;
        let approver = approver.trim();
        if approver.is_empty() || approver.chars().any(char::is_control) {
            return Err(ApprovalError::BadApprover);
        }
        if approver.len() > MAX_TEXT_BYTES {
            return Err(ApprovalError::TextTooLong { what: "approver's name" });
        }
        let verdict = match verdict {
            Verdict::Approve { uses } if (1..=MAX_USES).contains(&uses) => Verdict::Approve { uses },
            Verdict::Approve { uses } => return Err(ApprovalError::BadUses { uses }),
            Verdict::Deny { reason } if reason.trim().is_empty() => return Err(ApprovalError::MissingReason),
            Verdict::Deny { reason } if reason.len() > MAX_TEXT_BYTES => {
                return Err(ApprovalError::TextTooLong { what: "reason" });
            }
            Verdict::Deny { reason } => Verdict::Deny { reason: reason.trim().to_string() },
        };
        let store = &self.inner.store;
        let approval = {
            let locked = store.locked()?;
            let path = store.id_file(id)?.ok_or_else(|| ApprovalError::NotFound { id: id.to_string() })?;
            let mut approval = store.read(&path)?;
            let now = SystemTime::now();
            match approval.state_at(now) {
                ApprovalState::Pending => {}
                ApprovalState::Expired => {
                    return Err(ApprovalError::Expired { id: id.to_string(), expires: approval.expires });
                }
                state => return Err(ApprovalError::NotPending { id: id.to_string(), state }),
            }
            approval.approver = Some(approver.to_string());
            approval.decided = Some(format_time(now));
            match verdict {
                Verdict::Approve { uses } => {
                    approval.state = ApprovalState::Approved;
                    approval.uses_granted = uses;
                    approval.uses_left = uses;
                }
                Verdict::Deny { reason } => {
                    approval.state = ApprovalState::Denied;
                    approval.reason = Some(reason);
                }
            }
            store.write(&locked, &approval)?;
            approval
        };
        self.wake(id);
        Ok(approval)
    }

    /// The gate for one call whose decision is needs-approval (see the module header):
    /// decides at once, or, while the call's approval is pending, waits up to `wait` for
    /// a human (a zero `wait` returns the pending approval at once). Store errors are
    /// returned; the runtime refuses the call on them.
    pub async fn gate(&self, request: ApprovalRequest, wait: Duration) -> Result<ApprovalOutcome> {
        let deadline = tokio::time::Instant::now() + wait;
        let request = Arc::new(request);
        let mut watching: Option<(String, watch::Receiver<()>)> = None;
        loop {
            let outcome = self.resolve_blocking(Arc::clone(&request)).await?;
            let ApprovalOutcome::Pending { approval } = &outcome else { return Ok(outcome) };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(outcome);
            }
            match &mut watching {
                Some((id, receiver)) if *id == approval.id => {
                    let to_expiry = approval
                        .expires_at()
                        .and_then(|expires| expires.duration_since(SystemTime::now()).ok())
                        .unwrap_or_default();
                    let wake = deadline.min(now + WAIT_POLL_INTERVAL).min(now + to_expiry);
                    if let Ok(Err(_closed)) = tokio::time::timeout_at(wake, receiver.changed()).await {
                        // The decision removed the channel: listen afresh next time.
                        watching = None;
                    }
                }
                // Listen first, then look again (the loop), so that a decision made
                // between the look above and the listening is not missed.
                _ => watching = Some((approval.id.clone(), self.subscribe(&approval.id))),
            }
        }
    }

    /// One step of the gate on a blocking thread (the store fsyncs).
    async fn resolve_blocking(&self, request: Arc<ApprovalRequest>) -> Result<ApprovalOutcome> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.resolve(&request))
            .await
            .map_err(|e| ApprovalError::Task { reason: e.to_string() })?
    }

    /// One step of the gate, without waiting (see the module header for the order).
    pub fn resolve(&self, request: &ApprovalRequest) -> Result<ApprovalOutcome> {
        let store = &self.inner.store;
        let binding = request.binding();
        let arguments_sha256 = arguments_sha256(&request.arguments);
        let locked = store.locked()?;
        let now = SystemTime::now();
        let mut found = Vec::new();
        for path in store.binding_files(&binding)? {
            let approval = store.read(&path)?;
            // The binding in the name and content matched; the plain fields must too.
            if approval.tool != request.tool
                || approval.caller != request.caller
                || approval.workspace != request.workspace
                || approval.arguments_sha256 != arguments_sha256
            {
                return Err(ApprovalError::Corrupt {
                    path,
                    reason: "its tool, caller, workspace or arguments are not those of its binding".into(),
                });
            }
            found.push(approval);
        }
        found.sort_by_key(|a| a.expires_at());

        if let Some(denied) = found.iter().rev().find(|a| a.state == ApprovalState::Denied && !a.is_past_expiry(now)) {
            let reason = format!(
                "a human denied this call (approval {}, by {} at {}): {}",
                denied.id,
                denied.approver.as_deref().unwrap_or("?"),
                denied.decided.as_deref().unwrap_or("?"),
                denied.reason.as_deref().unwrap_or("")
            );
            return Ok(ApprovalOutcome::Refused { reason, approval: Some(denied.clone()) });
        }
        if let Some(approval) = found.iter_mut().find(|a| a.state_at(now) == ApprovalState::Approved && a.uses_left > 0)
        {
            approval.uses_left -= 1;
            if approval.uses_left == 0 {
                approval.state = ApprovalState::Used;
            }
            store.write(&locked, approval)?;
            return Ok(ApprovalOutcome::Approved { approval: approval.clone() });
        }
        if let Some(pending) = found.iter().find(|a| a.state_at(now) == ApprovalState::Pending) {
            return Ok(ApprovalOutcome::Pending { approval: pending.clone() });
        }
        let mut lapsed = None;
        for approval in found.iter_mut().filter(|a| a.state_at(now) == ApprovalState::Expired) {
            if matches!(approval.state, ApprovalState::Pending | ApprovalState::Approved) {
                let unused = approval.state == ApprovalState::Approved;
                approval.state = ApprovalState::Expired;
                store.write(&locked, approval)?;
                lapsed = Some((unused, approval.clone()));
            }
        }
        if let Some((unused, approval)) = lapsed {
            let how = if unused { "before this call used it" } else { "before a human decided it" };
            let reason = format!(
                "approval expired: approval {} expired at {} {how}; make the call again to ask for a new approval",
                approval.id, approval.expires
            );
            return Ok(ApprovalOutcome::Refused { reason, approval: Some(approval) });
        }

        let pending = self.pending_of(&request.caller, now);
        if pending >= MAX_PENDING_PER_CALLER {
            let reason = format!(
                "caller \"{}\" already has {pending} approvals waiting for a human (the cap is \
                 {MAX_PENDING_PER_CALLER}); wait until they are decided or expire",
                request.caller
            );
            return Ok(ApprovalOutcome::Refused { reason, approval: None });
        }
        let approval = Approval {
            id: store::random_hex(16)?,
            state: ApprovalState::Pending,
            binding,
            tool: request.tool.clone(),
            caller: request.caller.clone(),
            workspace: request.workspace.clone(),
            session: request.session.clone(),
            arguments: self.inner.redactor.redact_arguments(&request.arguments),
            arguments_sha256,
            rule: request.rule.clone(),
            created: format_time(now),
            expires: format_time(now + self.inner.ttl),
            uses_granted: 0,
            uses_left: 0,
            approver: None,
            decided: None,
            reason: None,
        };
        store.write(&locked, &approval)?;
        Ok(ApprovalOutcome::Pending { approval })
    }

    /// How many approvals of `caller` are pending at `now` (unreadable files, which belong
    /// to other calls, are not counted).
    fn pending_of(&self, caller: &str, now: SystemTime) -> usize {
        let store = &self.inner.store;
        let Ok(files) = store.all_files() else { return 0 };
        files
            .iter()
            .filter_map(|path| store.read(path).ok())
            .filter(|a| a.caller == caller && a.state_at(now) == ApprovalState::Pending)
            .count()
    }

    /// A receiver that changes (or closes) when approval `id` is decided in this process.
    fn subscribe(&self, id: &str) -> watch::Receiver<()> {
        let mut waiters = self.inner.waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        waiters.retain(|_, sender| sender.receiver_count() > 0);
        waiters.entry(id.to_string()).or_insert_with(|| watch::channel(()).0).subscribe()
    }

    /// Wakes the calls waiting on approval `id`.
    fn wake(&self, id: &str) {
        let sender = self.inner.waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id);
        if let Some(sender) = sender {
            sender.send_replace(());
        }
    }
}

/// Refuses anything but 32 lowercase hex digits before an id gets near a file name.
fn check_id(id: &str) -> Result<()> {
    if is_hex(id, 32) { Ok(()) } else { Err(ApprovalError::BadId { id: id.to_string() }) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The runtime shares the store across tasks and threads.
    #[test]
    fn approvals_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Approvals>();
        send_sync::<ApprovalError>();
    }

    #[test]
    fn filters_parse_and_admit() {
        assert_eq!("all".parse::<ApprovalFilter>(), Ok(ApprovalFilter::All));
        assert!("bogus".parse::<ApprovalFilter>().is_err());
        assert!(ApprovalFilter::All.admits(ApprovalState::Used));
        assert!(!ApprovalFilter::Pending.admits(ApprovalState::Approved));
    }

    #[test]
    fn socket_params_json_shape() {
        let decide: DecideParams =
            serde_json::from_value(serde_json::json!({"id": "x", "verdict": "approve", "uses": 3})).unwrap();
        assert_eq!(decide, DecideParams { id: "x".into(), verdict: Verdict::Approve { uses: 3 } });
        let list: Option<ListParams> = serde_json::from_value(serde_json::json!({})).ok();
        assert_eq!(list, Some(ListParams { state: ApprovalFilter::Pending }));
        let list: Option<ListParams> = serde_json::from_value(serde_json::json!({"state": "all"})).ok();
        assert_eq!(list, Some(ListParams { state: ApprovalFilter::All }));
    }

    #[test]
    fn verdict_json_shape() {
        let approve = serde_json::to_value(Verdict::Approve { uses: 2 }).ok();
        assert_eq!(approve, Some(serde_json::json!({"verdict": "approve", "uses": 2})));
        let deny: Option<Verdict> = serde_json::from_value(serde_json::json!({"verdict": "deny", "reason": "no"})).ok();
        assert_eq!(deny, Some(Verdict::Deny { reason: "no".into() }));
    }
}
