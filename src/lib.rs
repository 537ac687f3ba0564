//! airlock runs the tools an AI agent asks for, as WebAssembly modules or as jailed Linux
//! processes, under declarative policies, and records every call in a hash-chained audit
//! log.
//!
//! Every call, whichever way it comes in (the library, the socket service, the CLI), goes
//! through one pipeline, put together in [`runtime::Runtime::call`] and nowhere else:
//!
//! ```text
//! CallRequest { caller, tool, arguments, workspace, session }
//!   -> policy::PolicySet::evaluate  -> Evaluation { decision, rule, reasons, grant }
//!   -> approvals::Approvals::gate   needs-approval only: a durable approval bound to the
//!                                   exact call, decided by a human, used up, expiring
//!   -> guard::Guard::check          calls that can write: the protected trees' digests
//!                                   before and after (a change: `tampered`)
//!   -> backend (wasm | jail)        sees only the Grant
//!   -> audit::AuditLog::append      every call, allowed or not, before the reply
//!   -> CallOutcome { status, exit_code, stdout, stderr, usage, audit_seq, violations }
//! ```
//!
//! Imports point backwards along that line: [`policy`] never imports a backend, a backend
//! sees only the [`policy::Grant`] it was given, [`audit`] sees the decision and the
//! report, and nothing in the library imports the CLI. [`service`] (the socket and MCP
//! over stdio) is a way in, like the CLI: it only calls [`Runtime`]; nothing imports it.
//!
//! Before the approval gate, [`session::Sessions`] admits the call against its session's
//! budgets (a suspended or over-budget session is denied); after it, the call is charged to
//! its session and a denial counts towards the session's tripwire.
//!
//! An error anywhere before the backend runs is a denial with a reason, never a run with
//! less isolation; a call whose audit record cannot be written is not reported as run.

pub mod approvals;
pub mod audit;
pub mod backend;
pub mod error;
pub mod guard;
pub(crate) mod inotify;
pub mod outcome;
pub mod policy;
pub mod runtime;
pub mod service;
pub mod session;

pub use error::{Error, Result};
pub use outcome::{CallOutcome, CallRequest, CapturedOutput, Limit, Status, Usage};
pub use policy::{Decision, Grant, PolicySet};
pub use runtime::{Runtime, RuntimeBuilder};
