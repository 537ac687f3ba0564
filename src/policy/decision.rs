//! The decision of one evaluation: an ordered enum where the strictest wins.

use serde::{Deserialize, Serialize};

/// What policy says about a call. Ordered by strictness: combining several matches takes
/// the max, and no match at all is `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// The call may run.
    Allow,
    /// The call may run once a human approves these exact arguments.
    NeedsApproval,
    /// The call must not run.
    Deny,
}
