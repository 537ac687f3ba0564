//! Backends run a program under a [`crate::policy::Grant`] and report how it ended.
//! A backend sees only the grant: never the request, the caller or the policy set.

pub mod jail;
pub mod wasm;
