//! The one integration-test binary: a module per area, shared helpers in `tests/common`.

#[path = "../common/mod.rs"]
mod common;

mod approvals;
mod audit;
mod guest_tools;
mod policy;
mod service;
mod wasi_testsuite;
mod wasm;
