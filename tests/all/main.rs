//! The one integration-test binary: a module per area, shared helpers in `tests/common`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod approvals;
mod audit;
mod budgets;
mod cli;
mod guard;
mod guest_tools;
mod jail;
mod policy;
mod seccomp;
mod service;
mod signing;
mod wasi_testsuite;
mod wasm;
