//! The decision of one evaluation: an ordered enum where the strictest wins, and the
//! category rules of a designation that produce it.
//!
//! Owns: [`Decision`] and [`Designation`] (a designation's allow / approve / deny lists and
//! how they decide a set of categories, with the sentence that explains it).
//! Must not: know about tools, callers or files on disk; `compile` builds designations and
//! evaluation asks them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::grant::WorkspacePath;

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

/// How a designation's calls have their arguments audited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditArguments {
    /// audit.toml's redaction applies (secrets by key pattern are replaced).
    #[default]
    Redacted,
    /// Every call's arguments are recorded exactly as sent, unredacted.
    Full,
}

/// What the session layer does after a call of this designation changed a protected path.
/// The call itself is always `tampered`; this says what happens to the calls after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnTamper {
    /// Record it (the call is `tampered`, with the changed paths) and go on.
    #[default]
    Record,
    /// Record it and refuse every further call of the session.
    Suspend,
}

impl OnTamper {
    /// The name as in designations.toml.
    pub fn name(self) -> &'static str {
        match self {
            OnTamper::Record => "record",
            OnTamper::Suspend => "suspend",
        }
    }
}

/// The protected paths of a designation that does not list its own: the usual homes of
/// evaluation criteria (tests, evals, benchmarks) and airlock's own workspace state.
pub const DEFAULT_PROTECTED: [&str; 4] = ["tests", "eval", "benchmarks", ".airlock"];

/// The category every designation must gate behind a human (or deny).
pub const DEPLOY_CATEGORY: &str = "deploy";

/// The category a designation with `network = false` may not allow.
pub const NETWORK_CATEGORY: &str = "network";

/// A designation: the security designation of a calling agent, as category rules.
///
/// Built only by `compile` from a validated designations.toml: every category it lists is
/// known and listed once, every required attribute is on an allowed or approved category,
/// `deploy` is never allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Designation {
    name: String,
    justification: String,
    /// Category -> what this designation does with it. An unlisted category is `Deny`.
    rules: BTreeMap<String, Decision>,
    /// Category -> the caller attribute without which it is `Deny`.
    require_attribute: BTreeMap<String, String>,
    /// False: tools with network entries or the network category are denied.
    network: bool,
    /// Workspace-relative paths no call may change.
    protected: Vec<WorkspacePath>,
    audit_arguments: AuditArguments,
    on_tamper: OnTamper,
    /// What one session may spend (`[designations.NAME.budgets]`).
    budgets: Budgets,
}

/// The parts of a designation beyond its category lists (compile fills them in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DesignationExtras {
    pub require_attribute: BTreeMap<String, String>,
    pub network: bool,
    pub protected: Vec<WorkspacePath>,
    pub audit_arguments: AuditArguments,
    pub on_tamper: OnTamper,
}

impl Default for DesignationExtras {
    /// No attribute required, network by category, the default protected paths, redacted
    /// arguments, tampering recorded.
    fn default() -> Self {
        DesignationExtras {
            require_attribute: BTreeMap::new(),
            network: true,
            protected: DEFAULT_PROTECTED.iter().filter_map(|p| WorkspacePath::parse(p).ok()).collect(),
            audit_arguments: AuditArguments::Redacted,
            on_tamper: OnTamper::Record,
        }
    }
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
    /// an empty set of categories or a network denial.
    pub category: Option<String>,
    /// One line per category: `"read": allow`.
    pub per_category: Vec<String>,
    /// A sentence naming the file and rule that decided.
    pub rule: String,
    /// The rule that decided, as a key: `designations.high-cyber.deny[security-testing]
    /// (caller lacks attribute trusted_access)`.
    pub decided_by: String,
}

impl Designation {
    /// A designation from its validated parts.
    pub(crate) fn new(
        name: String,
        justification: String,
        rules: BTreeMap<String, Decision>,
        extras: DesignationExtras,
    ) -> Self {
        Designation {
            name,
            justification,
            rules,
            require_attribute: extras.require_attribute,
            network: extras.network,
            protected: extras.protected,
            audit_arguments: extras.audit_arguments,
            on_tamper: extras.on_tamper,
            budgets: Budgets::default(),
        }
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

    /// The attribute a caller needs for `category`, if one is required.
    pub fn required_attribute(&self, category: &str) -> Option<&str> {
        self.require_attribute.get(category).map(String::as_str)
    }

    /// Whether any network is allowed at all.
    pub fn network_allowed(&self) -> bool {
        self.network
    }

    /// The workspace-relative paths no call of this designation may change.
    pub fn protected(&self) -> &[WorkspacePath] {
        &self.protected
    }

    /// How this designation's calls have their arguments audited.
    pub fn audit_arguments(&self) -> AuditArguments {
        self.audit_arguments
    }

    /// What a session does after a call changed a protected path.
    pub fn on_tamper(&self) -> OnTamper {
        self.on_tamper
    }

    /// Decides a tool with these categories for a caller without attributes, the tool
    /// having no network entries: see [`Designation::decide_for`].
    pub fn decide<S: AsRef<str>>(&self, categories: &[S]) -> CategoryVerdict {
        self.decide_for(categories, &[] as &[&str], false)
    }

    /// Decides a tool with these categories (and `network` entries when `has_network`) for
    /// a caller carrying `attributes`: the strictest rule over the categories, an unlisted
    /// category being `Deny`, a category whose required attribute the caller lacks being
    /// `Deny`, no category at all being `Deny`; with `network = false`, a tool with network
    /// entries is `Deny` whatever its categories.
    pub fn decide_for<S: AsRef<str>, A: AsRef<str>>(
        &self,
        categories: &[S],
        attributes: &[A],
        has_network: bool,
    ) -> CategoryVerdict {
        let name = &self.name;
        let has = |attribute: &str| attributes.iter().any(|a| a.as_ref() == attribute);
        let mut decision = None;
        let mut deciding: Option<(&str, Option<Decision>, Option<&str>)> = None;
        let mut per_category = Vec::new();
        for category in categories {
            let category = category.as_ref();
            let rule = self.rule_for(category);
            let missing = self.required_attribute(category).filter(|a| !has(a));
            let this = if missing.is_some() { Decision::Deny } else { rule.unwrap_or(Decision::Deny) };
            per_category.push(match (rule, missing) {
                (Some(_), Some(a)) => {
                    format!("category \"{category}\": deny (designation \"{name}\" requires caller attribute {a})")
                }
                (Some(d), None) => format!("category \"{category}\": {d} (designation \"{name}\")"),
                (None, _) => format!("category \"{category}\": deny (designation \"{name}\" does not list it)"),
            });
            if decision.is_none_or(|d| this > d) {
                decision = Some(this);
                deciding = Some((category, rule, missing));
            }
        }
        if has_network && !self.network {
            per_category.push(format!("the tool has network entries: deny (designation \"{name}\": network = false)"));
            return CategoryVerdict {
                decision: Decision::Deny,
                category: None,
                per_category,
                rule: format!("designations.toml: designation \"{name}\" allows no network (network = false)"),
                decided_by: format!("designations.{name}.network = false (the tool has network entries)"),
            };
        }
        let decision = decision.unwrap_or(Decision::Deny);
        let (rule, decided_by) = match deciding {
            None => (
                format!(
                    "designations.toml: designation \"{name}\" cannot decide a tool with no categories (no match is deny)"
                ),
                format!("designations.{name} (the tool has no categories: deny)"),
            ),
            Some((c, Some(_), Some(a))) => (
                format!(
                    "designations.toml: designation \"{name}\" denies category \"{c}\" to callers without attribute {a}"
                ),
                format!("designations.{name}.deny[{c}] (caller lacks attribute {a})"),
            ),
            Some((c, None, _)) => (
                format!("designations.toml: designation \"{name}\" does not list category \"{c}\" (unlisted is deny)"),
                format!("designations.{name} (category {c} not listed: deny)"),
            ),
            Some((c, Some(Decision::Deny), _)) => (
                format!("designations.toml: designation \"{name}\" denies category \"{c}\""),
                format!("designations.{name}.deny[{c}]"),
            ),
            Some((c, Some(Decision::NeedsApproval), _)) => (
                format!(
                    "designations.toml: designation \"{name}\" lists category \"{c}\" under approve (a human must approve)"
                ),
                format!("designations.{name}.approve[{c}]{}", self.attribute_note(c)),
            ),
            Some((_, Some(Decision::Allow), _)) => {
                let all: Vec<&str> = categories.iter().map(|c| c.as_ref()).collect();
                let notes: String = all.iter().map(|c| self.attribute_note(c)).collect();
                (
                    format!(
                        "designations.toml: designation \"{name}\" allows every category of the tool ({})",
                        all.join(", ")
                    ),
                    format!("designations.{name}.allow[{}]{notes}", all.join(", ")),
                )
            }
        };
        CategoryVerdict { decision, category: deciding.map(|(c, _, _)| c.to_string()), per_category, rule, decided_by }
    }

    /// ` (caller has attribute A)` when `category` requires one (the caller had it).
    fn attribute_note(&self, category: &str) -> String {
        self.required_attribute(category).map(|a| format!(" (caller has attribute {a})")).unwrap_or_default()
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
        Designation::new("standard".into(), "j".into(), rules, DesignationExtras::default())
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
