//! Sessions: what each session of calls has spent against its designation's budgets, the
//! denial tripwire, and durable suspension.
//!
//! Owns: the per-session counters (calls in the last minute, CPU and wall time, output
//! bytes, denials), the budget check before a call ([`Sessions::admit`]), the charge after
//! it ([`Sessions::charge`], [`Sessions::count_denial`]), and the suspensions on disk
//! (`store`: one JSON file per suspended session, written under `flock`), so that a
//! suspension outlives the process that made it.
//! Must not: decide policy or write the audit log; the runtime reads the budgets from the
//! caller's designation, asks here, and records what happened.
//!
//! A call belongs to the session its [`crate::CallRequest`] names; the socket service names
//! the connection (unless the client sets `_meta["airlock/session"]`). A library or CLI
//! call without one is counted in its caller's default session `caller:NAME`
//! ([`default_session`]), so that leaving the session out never escapes a budget.
//!
//! Counters live in memory and start at zero with the process; suspensions are durable.
//! Concurrent calls of one session are admitted against what was charged when they start,
//! so CPU, wall and output budgets can be overshot by the calls in flight when the budget
//! runs out (calls per minute cannot: a call is counted when it is admitted).
//! Fail closed: a suspension store that cannot be read denies the call, with the reason.

mod store;

use std::{
    collections::{BTreeMap, VecDeque},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use serde::{Deserialize, Serialize};

use crate::{
    audit::format_time,
    outcome::{CallOutcome, Status},
    policy::Budgets,
};
use store::Store;

/// The window `calls_per_minute` counts calls in.
const CALL_WINDOW: Duration = Duration::from_secs(60);

/// Counters of a session idle this long are forgotten, so that a long-running service
/// (every connection is a session) does not grow without bound. A session that comes back
/// later starts from zero; its suspension, being on disk, stays.
const SESSION_IDLE_EVICT: Duration = Duration::from_secs(24 * 3600);

/// Idle sessions are looked for once per this many admitted calls.
const EVICT_EVERY_CALLS: u64 = 4096;

/// Errors of the session store.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot create the sessions directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error(
        "the sessions directory {path} may be written by anyone (mode {mode:o}); whoever can write it \
         can resume any session: chmod 0700 it"
    )]
    InsecureDir { path: PathBuf, mode: u32 },
    #[error("cannot read {path}: {source}; check the sessions directory's permissions")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}; check the sessions directory's permissions and free space")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("suspension file {path} is damaged ({reason}); look at it, then remove it to resume the session")]
    Corrupt { path: PathBuf, reason: String },
    #[error("session {session:?} is not suspended; `airlock sessions list` shows the suspended ones")]
    NotSuspended { session: String },
}

/// The session module's result alias.
pub type Result<T, E = SessionError> = std::result::Result<T, E>;

/// The session a call without one is counted in: `caller:NAME`.
pub fn default_session(caller: &str) -> String {
    format!("caller:{caller}")
}

/// Why a session is suspended (the content of its file in the sessions directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suspension {
    /// The session's id.
    pub session: String,
    /// When, RFC 3339 UTC.
    pub suspended_at: String,
    /// Why, as a phrase that follows "suspended": `after 5 denials (...)`, `for tampering
    /// with ...`.
    pub reason: String,
    /// What suspended it: `denials` (the tripwire), `tamper` (the guard), or another word
    /// a caller of [`Sessions::suspend`] chose.
    pub cause: String,
    /// The caller of the call that tripped it, when one did.
    #[serde(default)]
    pub caller: Option<String>,
}

/// What a session has spent since this process started counting it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUsage {
    /// Calls admitted.
    pub calls: u64,
    /// Calls admitted in the last minute.
    pub calls_last_minute: u64,
    /// CPU time charged, in microseconds (wasm: its wall time).
    pub cpu_us: u64,
    /// Wall time charged, in microseconds.
    pub wall_us: u64,
    /// stdout + stderr bytes the tools wrote.
    pub output_bytes: u64,
    /// Denied calls counted by the tripwire since the last resume.
    pub denials: u64,
    /// The caller of the latest call.
    pub caller: Option<String>,
    /// When the latest call started, RFC 3339 UTC.
    pub last_call: Option<String>,
}

/// One session as `airlock sessions list|show` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session: String,
    /// Counters, when this process has seen the session.
    pub usage: Option<SessionUsage>,
    /// Set when the session is suspended.
    pub suspension: Option<Suspension>,
}

/// The live counters of one session.
#[derive(Debug, Default)]
struct Live {
    usage: SessionUsage,
    /// Start times of the calls admitted in the last minute.
    recent: VecDeque<Instant>,
    /// When the session last started or finished a call.
    last_active: Option<Instant>,
}

impl Live {
    fn prune(&mut self, now: Instant) {
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= CALL_WINDOW) {
            self.recent.pop_front();
        }
        self.usage.calls_last_minute = self.recent.len() as u64;
    }
}

/// Every session's counters, and the suspensions on disk.
#[derive(Debug)]
pub struct Sessions {
    store: Store,
    live: Mutex<BTreeMap<String, Live>>,
    /// Calls admitted, to space out the eviction of idle sessions.
    admitted: std::sync::atomic::AtomicU64,
}

impl Sessions {
    /// Sessions whose suspensions are kept in `dir` (created 0700 by the first suspension).
    pub fn open(dir: &Path) -> Sessions {
        Sessions { store: Store::new(dir), live: Mutex::new(BTreeMap::new()), admitted: Default::default() }
    }

    /// The sessions directory.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Live>> {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets a call of `session` start, or says why not: the session is suspended (or its
    /// suspension cannot be read: fail closed), or a budget is spent. An admitted call is
    /// counted against `calls_per_minute` at once.
    pub fn admit(&self, session: &str, caller: &str, budgets: &Budgets) -> Result<(), String> {
        match self.store.load(session) {
            Ok(None) => {}
            Ok(Some(suspension)) => {
                return Err(format!(
                    "session {session} is suspended {} (since {}); an admin must run `airlock sessions resume {session}`",
                    suspension.reason, suspension.suspended_at
                ));
            }
            Err(error) => {
                return Err(format!(
                    "cannot tell whether session {session} is suspended, so the call does not run: {error}"
                ));
            }
        }
        let now = Instant::now();
        let mut live = self.live();
        if self.admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % EVICT_EVERY_CALLS == EVICT_EVERY_CALLS - 1
        {
            live.retain(|_, state| state.last_active.is_none_or(|t| now.duration_since(t) < SESSION_IDLE_EVICT));
        }
        let state = live.entry(session.to_string()).or_default();
        state.prune(now);
        state.last_active = Some(now);
        let usage = &state.usage;
        let exceeded = |budget: &str, limit: String, spent: String| {
            Err(format!(
                "budget exceeded: {budget} {limit} (session {session}; spent {spent}); the session's designation \
                 allows no more"
            ))
        };
        if let Some(limit) = budgets.calls_per_minute
            && state.recent.len() as u64 >= limit
        {
            return exceeded("calls_per_minute", limit.to_string(), format!("{} calls in the last minute", limit));
        }
        if let Some(limit) = budgets.cpu_seconds
            && usage.cpu_us as f64 >= limit * 1e6
        {
            return exceeded("cpu_seconds", limit.to_string(), format!("{:.6} s", usage.cpu_us as f64 / 1e6));
        }
        if let Some(limit) = budgets.wall_seconds
            && usage.wall_us as f64 >= limit * 1e6
        {
            return exceeded("wall_seconds", limit.to_string(), format!("{:.6} s", usage.wall_us as f64 / 1e6));
        }
        if let Some(limit) = budgets.output_bytes
            && usage.output_bytes >= limit
        {
            return exceeded("output_bytes", limit.to_string(), format!("{} bytes", usage.output_bytes));
        }
        state.recent.push_back(now);
        state.usage.calls_last_minute = state.recent.len() as u64;
        state.usage.calls += 1;
        state.usage.caller = Some(caller.to_string());
        state.usage.last_call = Some(format_time(SystemTime::now()));
        Ok(())
    }

    /// Charges what a finished call used to its session: wall time, CPU time (a process's
    /// measured CPU; a wasm guest's wall time, as it runs on one thread), and the bytes it
    /// wrote to stdout and stderr (kept or dropped).
    pub fn charge(&self, session: &str, outcome: &CallOutcome) {
        let usage = &outcome.usage;
        let mut live = self.live();
        let state = live.entry(session.to_string()).or_default();
        state.last_active = Some(Instant::now());
        state.usage.wall_us = state.usage.wall_us.saturating_add(usage.wall_us);
        state.usage.cpu_us = state.usage.cpu_us.saturating_add(usage.cpu_us.unwrap_or(usage.wall_us));
        let output = outcome.stdout.total_bytes.saturating_add(outcome.stderr.total_bytes);
        state.usage.output_bytes = state.usage.output_bytes.saturating_add(output);
    }

    /// Counts a denied call of `session` towards the tripwire; once the count reaches
    /// `denials_before_suspend`, suspends the session and returns the suspension (the
    /// runtime audits it). A call that is not `denied` is not counted; a session already
    /// suspended (by a concurrent call) returns `None`.
    pub fn count_denial(
        &self,
        session: &str,
        caller: &str,
        budgets: &Budgets,
        outcome: &CallOutcome,
    ) -> Option<Result<Suspension>> {
        if !matches!(outcome.status, Status::Denied { .. }) {
            return None;
        }
        let denials = {
            let mut live = self.live();
            let state = live.entry(session.to_string()).or_default();
            state.usage.denials += 1;
            state.usage.denials
        };
        let limit = budgets.denials_before_suspend?;
        if denials < limit {
            return None;
        }
        let reason = format!("after {denials} denials (denials_before_suspend {limit})");
        match self.suspend_as(session, &reason, "denials", Some(caller)) {
            Ok((suspension, true)) => Some(Ok(suspension)),
            Ok((_, false)) => None,
            Err(error) => Some(Err(error)),
        }
    }

    /// Suspends `session` (durably) for `reason` (a phrase that follows "suspended", such as
    /// `for tampering with tests/`): every later call of it is denied until an admin
    /// resumes it. `cause` names what suspended it (`tamper`, `admin`, ...).
    /// Suspending a suspended session keeps the first suspension.
    pub fn suspend(&self, session: &str, reason: &str, cause: &str) -> Result<Suspension> {
        self.suspend_as(session, reason, cause, None).map(|(suspension, _)| suspension)
    }

    fn suspend_as(&self, session: &str, reason: &str, cause: &str, caller: Option<&str>) -> Result<(Suspension, bool)> {
        let suspension = Suspension {
            session: session.to_string(),
            suspended_at: format_time(SystemTime::now()),
            reason: reason.to_string(),
            cause: cause.to_string(),
            caller: caller.map(str::to_string),
        };
        self.store.save_new(&suspension)
    }

    /// Lifts the suspension of `session` and resets its denial count; returns the
    /// suspension lifted.
    pub fn resume(&self, session: &str) -> Result<Suspension> {
        let lifted = self.store.remove(session)?;
        if let Some(state) = self.live().get_mut(session) {
            state.usage.denials = 0;
        }
        Ok(lifted)
    }

    /// The session's counters and suspension.
    pub fn show(&self, session: &str) -> Result<SessionInfo> {
        let suspension = self.store.load(session)?;
        let usage = self.live().get_mut(session).map(|state| {
            state.prune(Instant::now());
            state.usage.clone()
        });
        Ok(SessionInfo { session: session.to_string(), usage, suspension })
    }

    /// Every session this process has counted, and every suspended session, by id.
    pub fn list(&self) -> Result<Vec<SessionInfo>> {
        let mut sessions: BTreeMap<String, SessionInfo> = BTreeMap::new();
        let now = Instant::now();
        for (id, state) in self.live().iter_mut() {
            state.prune(now);
            sessions.insert(
                id.clone(),
                SessionInfo { session: id.clone(), usage: Some(state.usage.clone()), suspension: None },
            );
        }
        for suspension in self.store.all()? {
            let id = suspension.session.clone();
            sessions
                .entry(id.clone())
                .or_insert_with(|| SessionInfo { session: id, usage: None, suspension: None })
                .suspension = Some(suspension);
        }
        Ok(sessions.into_values().collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::outcome::{CapturedOutput, Usage};

    fn outcome(status: Status) -> CallOutcome {
        CallOutcome {
            status,
            exit_code: None,
            signal: None,
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            usage: Usage::default(),
            audit_seq: 0,
            violations: Vec::new(),
        }
    }

    #[test]
    fn calls_are_counted_when_admitted_and_refusals_name_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Sessions::open(&dir.path().join("sessions"));
        let budgets = Budgets { calls_per_minute: Some(2), ..Budgets::default() };
        assert!(sessions.admit("s", "agent", &budgets).is_ok());
        assert!(sessions.admit("s", "agent", &budgets).is_ok());
        let refused = sessions.admit("s", "agent", &budgets).unwrap_err();
        assert!(refused.starts_with("budget exceeded: calls_per_minute 2 (session s;"), "{refused}");
        assert_eq!(sessions.show("s").unwrap().usage.unwrap().calls, 2);
        assert!(sessions.admit("t", "agent", &budgets).is_ok());
    }

    #[test]
    fn the_tripwire_suspends_once_and_a_resume_resets_it() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Sessions::open(&dir.path().join("sessions"));
        let budgets = Budgets { denials_before_suspend: Some(2), ..Budgets::default() };
        let denied = outcome(Status::Denied { reason: "no".into() });
        assert!(sessions.count_denial("s", "agent", &budgets, &outcome(Status::Ok)).is_none());
        assert!(sessions.count_denial("s", "agent", &budgets, &denied).is_none());
        let suspension = sessions.count_denial("s", "agent", &budgets, &denied).unwrap().unwrap();
        assert_eq!((suspension.cause.as_str(), suspension.caller.as_deref()), ("denials", Some("agent")));
        // A denial that raced the suspension does not suspend (or audit) twice.
        assert!(sessions.count_denial("s", "agent", &budgets, &denied).is_none());
        assert!(sessions.admit("s", "agent", &budgets).unwrap_err().contains("is suspended after 2 denials"));
        assert_eq!(sessions.resume("s").unwrap(), suspension);
        assert_eq!(sessions.show("s").unwrap().usage.unwrap().denials, 0);
        assert!(matches!(sessions.resume("s"), Err(SessionError::NotSuspended { .. })));
        assert!(sessions.admit("s", "agent", &budgets).is_ok());
    }
}
