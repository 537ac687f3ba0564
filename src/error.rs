//! The library's error type: one variant per module error, collected with `#[from]`.
//!
//! Errors here are for the embedder (a runtime that cannot start, an audit log that cannot
//! be written). A call that policy refuses is not an error: it is a [`crate::CallOutcome`]
//! with a `denied` status and an audit record.

use crate::{
    approvals::ApprovalError,
    audit::AuditError,
    backend::{jail::JailError, wasm::WasmError},
    policy::PolicyErrors,
    service::ServiceError,
    session::SessionError,
};

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Policy(#[from] PolicyErrors),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Wasm(#[from] WasmError),
    #[error(transparent)]
    Jail(#[from] JailError),
    #[error(transparent)]
    Approvals(#[from] ApprovalError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// The library's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
