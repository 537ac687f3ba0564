//! The decision of one evaluation: an ordered enum where the strictest wins, and the
//! category rules of a designation that produce it.
//!
//! Owns: [`Decision`] and [`Designation`] (a designation's allow / approve / deny lists and
//! how they decide a set of categories, with the sentence that explains it).
//! Must not: know about tools, callers or files on disk; `compile` builds designations and
//! evaluation asks them.

use std::collections::BTreeMap;

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

impl Decision {
    /// The decision's name as it appears in policy files and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::NeedsApproval => "needs-approval",
            Decision::Deny => "deny",
        }
    }

    /// The strictest of `decisions`; `Deny` when there are none (no match is deny).
    pub fn strictest(decisions: impl IntoIterator<Item = Decision>) -> Decision {
        decisions.into_iter().max().unwrap_or(Decision::Deny)
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A designation: the security designation of a calling agent, as category rules.
///
/// Built only by `compile` from a validated designations.toml: every category it lists is
/// known and listed once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Designation {
    name: String,
    justification: String,
    /// Category -> what this designation does with it. An unlisted category is `Deny`.
    rules: BTreeMap<String, Decision>,
    /// What one session may spend (`[designations.NAME.budgets]`).
    budgets: Budgets,
}

/// Per-session budgets of a designation; `None` is no budget. Validated by `compile`:
/// counts are above zero, seconds finite and above zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Budgets {
    /// Calls started in any 60 s window.
    pub calls_per_minute: Option<u64>,
    /// CPU time of the session's calls, in seconds (wasm: its wall time).
    pub cpu_seconds: Option<f64>,
    /// Wall time of the session's calls, in seconds.
    pub wall_seconds: Option<f64>,
    /// stdout + stderr bytes the session's tools wrote.
    pub output_bytes: Option<u64>,
    /// Denied calls after which the session is suspended until an admin resumes it.
    pub denials_before_suspend: Option<u64>,
}

// Budgets hold finite floats only (compile checks), so equality is total.
impl Eq for Budgets {}

/// Why a designation decided what it did for a set of categories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryVerdict {
    /// The strictest decision over the categories.
    pub decision: Decision,
    /// The category that decided (the first with the strictest decision); `None` only for
    /// an empty set of categories.
    pub category: Option<String>,
    /// One line per category: `"read": allow`.
    pub per_category: Vec<String>,
    /// A sentence naming the file and rule that decided.
    pub rule: String,
}

impl Designation {
    /// A designation from its validated parts.
    pub(crate) fn new(name: String, justification: String, rules: BTreeMap<String, Decision>) -> Self {
        Designation { name, justification, rules, budgets: Budgets::default() }
    }

    /// The designation with its validated budgets.
    pub(crate) fn with_budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// What one session of a caller with this designation may spend.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// The designation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the designation has these rules.
    pub fn justification(&self) -> &str {
        &self.justification
    }

    /// What this designation does with `category`; `None` when it does not list it (which
    /// decides `Deny`).
    pub fn rule_for(&self, category: &str) -> Option<Decision> {
        self.rules.get(category).copied()
    }

    /// The categories listed with `decision`, sorted.
    pub fn categories_with(&self, decision: Decision) -> Vec<&str> {
        self.rules.iter().filter(|(_, d)| **d == decision).map(|(c, _)| c.as_str()).collect()
    }

    /// Decides a tool with these categories: the strictest rule over them, an unlisted
    /// category being `Deny`, no category at all being `Deny`.
    pub fn decide<S: AsRef<str>>(&self, categories: &[S]) -> CategoryVerdict {
        let mut decision = None;
        let mut deciding: Option<&str> = None;
        let mut per_category = Vec::new();
        for category in categories {
            let category = category.as_ref();
            let rule = self.rule_for(category);
            let this = rule.unwrap_or(Decision::Deny);
            per_category.push(match rule {
                Some(d) => format!("category \"{category}\": {d} (designation \"{}\")", self.name),
                None => format!("category \"{category}\": deny (designation \"{}\" does not list it)", self.name),
            });
            if decision.is_none_or(|d| this > d) {
                decision = Some(this);
                deciding = Some(category);
            }
        }
        let name = &self.name;
        let decision = decision.unwrap_or(Decision::Deny);
        let rule = match (deciding, deciding.and_then(|c| self.rule_for(c))) {
            (None, _) => format!(
                "designations.toml: designation \"{name}\" cannot decide a tool with no categories (no match is deny)"
            ),
            (Some(c), None) => {
                format!("designations.toml: designation \"{name}\" does not list category \"{c}\" (unlisted is deny)")
            }
            (Some(c), Some(Decision::Deny)) => {
                format!("designations.toml: designation \"{name}\" denies category \"{c}\"")
            }
            (Some(c), Some(Decision::NeedsApproval)) => format!(
                "designations.toml: designation \"{name}\" lists category \"{c}\" under approve (a human must approve)"
            ),
            (Some(_), Some(Decision::Allow)) => {
                let all: Vec<&str> = categories.iter().map(|c| c.as_ref()).collect();
                format!(
                    "designations.toml: designation \"{name}\" allows every category of the tool ({})",
                    all.join(", ")
                )
            }
        };
        CategoryVerdict { decision, category: deciding.map(str::to_string), per_category, rule }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> Designation {
        let rules = [
            ("read", Decision::Allow),
            ("write", Decision::Allow),
            ("deploy", Decision::NeedsApproval),
            ("secrets", Decision::Deny),
        ]
        .into_iter()
        .map(|(c, d)| (c.to_string(), d))
        .collect();
        Designation::new("standard".into(), "j".into(), rules)
    }

    #[test]
    fn decisions_are_ordered_by_strictness() {
        assert!(Decision::Allow < Decision::NeedsApproval);
        assert!(Decision::NeedsApproval < Decision::Deny);
        assert_eq!(Decision::strictest([Decision::Allow, Decision::NeedsApproval]), Decision::NeedsApproval);
        assert_eq!(Decision::strictest([]), Decision::Deny);
    }

    #[test]
    fn strictest_category_wins_and_names_the_rule() {
        let d = standard();
        let v = d.decide(&["read", "write"]);
        assert_eq!(v.decision, Decision::Allow);
        assert!(v.rule.contains("allows every category of the tool (read, write)"));

        let v = d.decide(&["read", "deploy"]);
        assert_eq!(v.decision, Decision::NeedsApproval);
        assert_eq!(v.category.as_deref(), Some("deploy"));

        let v = d.decide(&["deploy", "secrets", "read"]);
        assert_eq!(v.decision, Decision::Deny);
        assert_eq!(v.rule, "designations.toml: designation \"standard\" denies category \"secrets\"");
    }

    #[test]
    fn unlisted_category_and_no_category_are_deny() {
        let d = standard();
        let v = d.decide(&["read", "training"]);
        assert_eq!(v.decision, Decision::Deny);
        assert_eq!(
            v.rule,
            "designations.toml: designation \"standard\" does not list category \"training\" (unlisted is deny)"
        );
        assert_eq!(d.decide::<&str>(&[]).decision, Decision::Deny);
    }
}
