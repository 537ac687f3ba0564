//! Policy loading, validation errors and evaluation, against temporary policy directories
//! built from the shipped designations.toml / callers.toml / audit.toml and synthetic tools
//! (a tool's "module" is any bytes file with its sha256: load does not run it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::{Path, PathBuf},
};

use airlock::policy::{Decision, Evaluation, Mount, PolicyError, PolicyErrors, PolicySet, tool_file_schema};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The bytes of the synthetic module every test tool pins.
const MODULE: &[u8] = b"\0asm not really a module";

fn module_sha() -> String {
    hex::encode(Sha256::digest(MODULE))
}

fn shipped(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").join(file);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A temporary policy directory: the shipped designations, callers and audit files, an
/// empty tools/ and the synthetic module `mod.wasm`.
struct PolicyDir {
    dir: TempDir,
}

impl PolicyDir {
    fn new() -> PolicyDir {
        let dir = TempDir::new().unwrap();
        fs::create_dir(dir.path().join("tools")).unwrap();
        fs::write(dir.path().join("mod.wasm"), MODULE).unwrap();
        let policy = PolicyDir { dir };
        for file in ["designations.toml", "callers.toml", "audit.toml"] {
            policy.write(file, &shipped(file));
        }
        policy
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        fs::write(self.path().join(rel), text).unwrap();
    }

    fn tool(&self, name: &str, text: &str) {
        self.write(&format!("tools/{name}.toml"), text);
    }

    fn load(&self) -> PolicySet {
        PolicySet::load(self.path()).unwrap_or_else(|e| panic!("policy should load:\n{e}"))
    }

    fn load_errors(&self) -> PolicyErrors {
        match PolicySet::load(self.path()) {
            Ok(_) => panic!("policy should not load"),
            Err(errors) => errors,
        }
    }
}

/// A minimal valid tool file; `extra` is appended (it may open new tables).
fn tool_text(name: &str, categories: &[&str], extra: &str) -> String {
    let categories: Vec<String> = categories.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        r#"name = "{name}"
description = "A test tool."
justification = "Tests need it."
categories = [{}]

[backend]
wasm = "mod.wasm"
sha256 = "{}"

[input]
type = "object"
additionalProperties = false
{extra}"#,
        categories.join(", "),
        module_sha()
    )
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or_else(|| panic!("{needle:?} not in text"))
}

/// The one error whose file ends with `file` and whose message contains `message`.
fn find<'a>(errors: &'a PolicyErrors, file: &str, message: &str) -> &'a PolicyError {
    errors
        .errors()
        .iter()
        .find(|e| e.file.ends_with(file) && e.message.contains(message))
        .unwrap_or_else(|| panic!("no error in {file} containing {message:?}; got:\n{errors}"))
}

/// Asserts one malformed-file case: the error names the file, the right line, and the
/// help says what to do.
fn assert_error(errors: &PolicyErrors, file: &str, line: usize, message: &str, help: &str) {
    let error = find(errors, file, message);
    assert_eq!(error.line, line, "wrong line for {message:?}:\n{error}");
    assert!(error.column >= 1);
    assert!(error.help.contains(help), "help of {message:?} lacks {help:?}:\n{error}");
    let shown = error.to_string();
    assert!(shown.starts_with(&format!("{}:{}:", error.file.display(), line)), "display is not FILE:LINE:COL: {shown}");
    assert!(shown.contains("\n  help: "), "display lacks the help line: {shown}");
}

fn workspace() -> TempDir {
    TempDir::new().unwrap()
}

fn evaluate(policy: &PolicySet, caller: &str, tool: &str, arguments: Value, workspace: &Path) -> Evaluation {
    policy.evaluate(caller, tool, &arguments, workspace)
}

// ---------------------------------------------------------------------------------------
// Loading the shipped files.

#[test]
fn shipped_policy_loads_with_an_empty_tools_dir() {
    let policy = PolicyDir::new().load();
    assert_eq!(policy.tools().count(), 0);
    let designations: Vec<&str> = policy.designations().map(|d| d.name()).collect();
    assert_eq!(designations, ["elevated", "high-cyber", "restricted", "standard"]);
    assert_eq!(policy.categories().len(), 8);
    assert_eq!(policy.default_designation(), Some("restricted"));
    assert_eq!(policy.audit_settings().fsync, airlock::audit::Fsync::Batch);
    assert_eq!(policy.audit_settings().redact.len(), 1);
    assert_eq!(policy.digest().len(), 64);
}

#[test]
fn missing_audit_toml_gives_default_settings() {
    let dir = PolicyDir::new();
    fs::remove_file(dir.path().join("audit.toml")).unwrap();
    let policy = dir.load();
    assert_eq!(policy.audit_settings().fsync, airlock::audit::Fsync::Batch);
    let defaults: Vec<String> = airlock::audit::DEFAULT_REDACT_PATTERNS.iter().map(|p| p.to_string()).collect();
    assert_eq!(policy.audit_settings().redact, defaults, "no audit.toml: the default redaction patterns");
}

#[test]
fn empty_redact_list_turns_redaction_off() {
    let dir = PolicyDir::new();
    fs::write(dir.path().join("audit.toml"), "fsync = \"always\"\nredact = []\n").unwrap();
    let policy = dir.load();
    assert_eq!(policy.audit_settings().fsync, airlock::audit::Fsync::Always);
    assert!(policy.audit_settings().redact.is_empty());
}

#[test]
fn shipped_callers_map_to_their_designations() {
    let policy = PolicyDir::new().load();
    let of = |name: &str| policy.resolve_caller(name).map(|c| (c.designation, c.admin, c.listed));
    assert_eq!(of("agent"), Some(("standard".into(), false, true)));
    assert_eq!(of("ci"), Some(("elevated".into(), false, true)));
    assert_eq!(of("reviewer"), Some(("restricted".into(), false, true)));
    assert_eq!(of("operator"), Some(("elevated".into(), true, true)));
    assert_eq!(of("stranger"), Some(("restricted".into(), false, false)));
}

// ---------------------------------------------------------------------------------------
// Malformed policies: each error names the file, the right line, and the fix.

#[test]
fn malformed_toml_syntax_is_located() {
    let dir = PolicyDir::new();
    let text = "name = \"x\"\ndescription = \"d\"\ncategories = [\"read\"\njustification = \"j\"\n";
    dir.tool("x", text);
    let errors = dir.load_errors();
    // The unclosed array is noticed where the next key starts; only that first syntax
    // error is reported (what the parser says after it is its echo).
    assert_eq!(errors.errors().len(), 1, "{errors}");
    assert_error(&errors, "tools/x.toml", 4, "missing comma between array elements", "TOML syntax");
}

#[test]
fn malformed_unknown_key_names_the_key_and_the_allowed_ones() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "").replace("[backend]", "colour = \"red\"\n\n[backend]");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "colour"), "unknown field `colour`", "`justification`");
    assert!(find(&errors, "tools/x.toml", "colour").help.contains("`limits`"));
}

#[test]
fn malformed_unknown_key_in_a_nested_table() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "\n[limits]\nwall = 5\n");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "wall = 5"), "unknown field `wall`", "`wall_ms`");
}

#[test]
fn malformed_wrong_type() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "\n[limits]\nwall_ms = \"5s\"\n");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "wall_ms"), "invalid type", "a whole number");
}

#[test]
fn malformed_missing_required_field() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "").replace(&format!("sha256 = \"{}\"\n", module_sha()), "");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "[backend]"), "missing field `sha256`", "add `sha256`");
}

#[test]
fn malformed_unknown_category_lists_the_known_ones() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "")
        .replace("categories = [\"read\"]", "categories = [\n  \"read\",\n  \"hacking\",\n]");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(
        &errors,
        "tools/x.toml",
        line_of(&text, "\"hacking\""),
        "unknown category \"hacking\"",
        "security-testing",
    );
}

#[test]
fn malformed_unknown_designation_in_callers() {
    let dir = PolicyDir::new();
    let text = "default = \"restricted\"\n\n[callers.agent]\ndesignation = \"superuser\"\n";
    dir.write("callers.toml", text);
    let errors = dir.load_errors();
    assert_error(
        &errors,
        "callers.toml",
        4,
        "designation \"superuser\" is not declared",
        "elevated, high-cyber, restricted, standard",
    );
}

#[test]
fn malformed_default_designation_unknown() {
    let dir = PolicyDir::new();
    let text = "# callers\ndefault = \"nobody\"\n";
    dir.write("callers.toml", text);
    let errors = dir.load_errors();
    assert_error(&errors, "callers.toml", 2, "default designation \"nobody\"", "standard");
}

#[test]
fn malformed_module_file_missing() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "").replace("wasm = \"mod.wasm\"", "wasm = \"missing.wasm\"");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "missing.wasm"), "cannot be read", "build the module");
}

#[test]
fn malformed_sha256_mismatch_gives_the_actual_sha256() {
    let dir = PolicyDir::new();
    let wrong = "0".repeat(64);
    let text = tool_text("x", &["read"], "").replace(&module_sha(), &wrong);
    dir.tool("x", &text);
    let errors = dir.load_errors();
    let help = format!("sha256 = \"{}\"", module_sha());
    assert_error(&errors, "tools/x.toml", line_of(&text, "sha256 ="), "but the policy pins", &help);
}

#[test]
fn malformed_sha256_not_64_hex() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "").replace(&module_sha(), "ABC123");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "sha256 ="), "not 64 lowercase hex", "sha256sum");
}

#[test]
fn malformed_absolute_write_path() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["write"], "\n[files]\nread = [\".\"]\nwrite = [\"/etc\"]\n");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "/etc"), "is absolute", "relative to the call's workspace");
}

#[test]
fn malformed_parent_dir_read_path_is_rejected_at_load() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "\n[files]\nread = [\"data/../../etc\"]\n");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "../"), "contains `..`", "without `..`");
}

#[test]
fn malformed_name_not_file_stem_and_duplicate_tool_name() {
    let dir = PolicyDir::new();
    let a = tool_text("b", &["read"], "");
    dir.tool("a", &a);
    dir.tool("b", &tool_text("b", &["read"], ""));
    let errors = dir.load_errors();
    assert_error(&errors, "tools/a.toml", 1, "does not match its file name a.toml", "rename the file to tools/b.toml");
    assert_error(&errors, "tools/b.toml", 1, "also declared in tools/a.toml", "one file");
}

#[test]
fn malformed_input_schema_is_located_at_the_bad_keyword() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "\n[input.properties.path]\ndescription = \"p\"\ntype = \"strin\"\n");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "\"strin\""), "invalid input schema", "JSON Schema");
}

#[test]
fn malformed_input_not_an_object_schema() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "").replace("type = \"object\"", "type = \"array\"");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "\"array\""), "not an object schema", "type = \"object\"");
}

#[test]
fn malformed_placeholder_naming_an_unknown_argument() {
    let dir = PolicyDir::new();
    let text = tool_text(
        "x",
        &["read"],
        "\n[input.properties.input]\ntype = \"string\"\n\n[invoke]\nargs = [\n  \"--\",\n  \"{inptu}\",\n]\n",
    );
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "{inptu}"), "placeholder {inptu} names no argument", "input");
}

#[test]
fn malformed_placeholder_braces() {
    let dir = PolicyDir::new();
    let text = tool_text(
        "x",
        &["read"],
        "\n[input.properties.a]\ntype = \"string\"\n\n[invoke]\nargs = [\n  \"{a}\",\n  \"--x={a\",\n]\n",
    );
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "--x={a"), "no closing", "{{ and }} for literal braces");
}

#[test]
fn malformed_category_listed_twice_in_a_designation() {
    let dir = PolicyDir::new();
    let text = shipped("designations.toml")
        .replace("approve = [\"deploy\", \"network\"]", "approve = [\"deploy\", \"network\",\n  \"read\"]");
    dir.write("designations.toml", &text);
    let errors = dir.load_errors();
    assert_error(
        &errors,
        "designations.toml",
        line_of(&text, "  \"read\"]"),
        "category \"read\" is listed twice in designation \"standard\" (already under allow)",
        "exactly one of allow, approve, deny",
    );
}

#[test]
fn malformed_designation_example_says_expected_and_got() {
    let dir = PolicyDir::new();
    let text = shipped("designations.toml")
        + "\n[designations.tester]\njustification = \"t\"\nallow = [\"read\"]\n\n[[designations.tester.examples]]\ncategories = [\"read\", \"write\"]\nexpect = \"allow\"\n";
    dir.write("designations.toml", &text);
    let errors = dir.load_errors();
    assert_error(
        &errors,
        "designations.toml",
        line_of(&text, "[[designations.tester.examples]]"),
        "expected allow but got deny",
        "fix the designation's allow/approve/deny lists",
    );
    assert!(find(&errors, "designations.toml", "tester").message.contains("does not list category \"write\""));
}

#[test]
fn malformed_tool_example_says_expected_and_got() {
    let dir = PolicyDir::new();
    let text = tool_text(
        "x",
        &["read"],
        r#"
[input.properties.a]
type = "string"

[invoke]
args = ["--", "{a}"]

[[examples]]
arguments = { a = "one" }
args = ["--", "one"]

[[examples]]
arguments = { a = "two" }
args = ["two"]

[[examples]]
arguments = { a = 3 }
deny = "is not of type"
"#,
    );
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_eq!(errors.errors().len(), 1, "only example 2 fails:\n{errors}");
    let second = text.lines().enumerate().filter(|(_, l)| l.contains("[[examples]]")).nth(1).unwrap().0 + 1;
    assert_error(
        &errors,
        "tools/x.toml",
        second,
        "example 2: expected args [\"two\"] but got [\"--\", \"two\"]",
        "fix [invoke].args",
    );
}

#[test]
fn malformed_redact_regex() {
    let dir = PolicyDir::new();
    let text = "fsync = \"always\"\nredact = [\n  \"token\",\n  \"(unclosed\",\n]\n";
    dir.write("audit.toml", text);
    let errors = dir.load_errors();
    assert_error(&errors, "audit.toml", 4, "not a valid regex", "regex syntax");
}

#[test]
fn malformed_fsync_mode_lists_the_modes() {
    let dir = PolicyDir::new();
    dir.write("audit.toml", "\nfsync = \"sometimes\"\n");
    let errors = dir.load_errors();
    assert_error(&errors, "audit.toml", 2, "unknown variant `sometimes`", "`always`, `batch`, `off`");
}

#[test]
fn malformed_env_var_name() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "\n[env]\npass = [\"LANG\", \"MY-VAR\"]\n");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(
        &errors,
        "tools/x.toml",
        line_of(&text, "MY-VAR"),
        "not a valid environment variable name",
        "letters, digits and `_`",
    );
}

#[test]
fn malformed_network_entry() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["network"], "").replace("[backend]", "network = [\"pypi.org\"]\n\n[backend]");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "pypi.org"), "not host:port", "pypi.org:443");
}

#[test]
fn malformed_limits_zero_and_absurd() {
    let dir = PolicyDir::new();
    let text = tool_text("x", &["read"], "\n[limits]\nwall_ms = 0\nmemory_mib = 1000000\n");
    dir.tool("x", &text);
    let errors = dir.load_errors();
    assert_error(&errors, "tools/x.toml", line_of(&text, "wall_ms = 0"), "limits.wall_ms is 0", "at least 1");
    assert_error(&errors, "tools/x.toml", line_of(&text, "memory_mib"), "more than the maximum 4096", "at most 4096");
}

#[test]
fn malformed_designations_file_missing_is_a_whole_file_error() {
    let dir = PolicyDir::new();
    fs::remove_file(dir.path().join("designations.toml")).unwrap();
    let errors = dir.load_errors();
    assert_error(&errors, "designations.toml", 1, "cannot read the file", "create designations.toml");
}

#[test]
fn errors_in_several_files_are_all_reported() {
    let dir = PolicyDir::new();
    let designations =
        shipped("designations.toml").replace("allow = [\"read\"]\n", "allow = [\"read\", \"reading\"]\n");
    dir.write("designations.toml", &designations);
    dir.write("callers.toml", "default = \"restricted\"\n[callers.a]\ndesignation = \"nope\"\n");
    dir.write("audit.toml", "redact = [\"(\"]\n");
    dir.tool("x", &tool_text("x", &["read"], "").replace("[backend]", "bogus = 1\n[backend]"));
    dir.tool("y", &tool_text("y", &["read", "flying"], ""));
    let errors = dir.load_errors();
    find(&errors, "designations.toml", "unknown category \"reading\"");
    find(&errors, "callers.toml", "\"nope\" is not declared");
    find(&errors, "audit.toml", "not a valid regex");
    find(&errors, "tools/x.toml", "unknown field `bogus`");
    find(&errors, "tools/y.toml", "unknown category \"flying\"");
    assert_eq!(errors.errors().len(), 5, "{errors}");
    let shown = errors.to_string();
    assert!(shown.ends_with("5 policy error(s); the policy was not loaded"), "{shown}");
}

// ---------------------------------------------------------------------------------------
// Decisions.

const CATEGORIES: [&str; 8] = ["read", "write", "exec", "network", "deploy", "secrets", "security-testing", "training"];

#[test]
fn decision_table_of_the_shipped_designations() {
    use Decision::{Allow as A, Deny as D, NeedsApproval as N};
    let dir = PolicyDir::new();
    for category in CATEGORIES {
        dir.tool(&format!("t-{category}"), &tool_text(&format!("t-{category}"), &[category], ""));
    }
    let policy = dir.load();
    let ws = workspace();
    // Columns in the order of CATEGORIES.
    let table = [
        ("agent", "standard", [A, A, A, N, N, D, D, D]),
        ("ci", "elevated", [A, A, A, A, N, D, N, A]),
        ("reviewer", "restricted", [A, D, D, D, D, D, D, D]),
    ];
    for (caller, designation, row) in table {
        for (category, expected) in CATEGORIES.iter().zip(row) {
            let evaluation = evaluate(&policy, caller, &format!("t-{category}"), json!({}), ws.path());
            assert_eq!(evaluation.decision, expected, "{designation} x {category}: {}", evaluation.rule);
            assert_eq!(evaluation.caller.designation.as_deref(), Some(designation));
            assert_eq!(evaluation.grant.is_some(), expected != D, "grant present unless deny");
            assert!(evaluation.rule.starts_with("designations.toml: designation"), "{}", evaluation.rule);
        }
        let offered: Vec<String> = policy.tools_for(caller).into_iter().map(|t| t.name).collect();
        let expected: Vec<String> = CATEGORIES
            .iter()
            .zip(row)
            .filter(|(_, d)| *d != D)
            .map(|(c, _)| format!("t-{c}"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(offered, expected, "tools_for({caller})");
    }
}

#[test]
fn unlisted_category_rule_names_the_file_and_designation() {
    let dir = PolicyDir::new();
    dir.tool("w", &tool_text("w", &["read", "write"], ""));
    let policy = dir.load();
    let ws = workspace();
    let evaluation = evaluate(&policy, "reviewer", "w", json!({}), ws.path());
    assert_eq!(evaluation.decision, Decision::Deny);
    assert_eq!(
        evaluation.rule,
        "designations.toml: designation \"restricted\" does not list category \"write\" (unlisted is deny)"
    );
}

#[test]
fn unknown_caller_gets_the_default_designation() {
    let dir = PolicyDir::new();
    dir.tool("r", &tool_text("r", &["read"], ""));
    dir.tool("w", &tool_text("w", &["write"], ""));
    let policy = dir.load();
    let ws = workspace();
    let read = evaluate(&policy, "stranger", "r", json!({}), ws.path());
    assert_eq!(read.decision, Decision::Allow);
    assert_eq!(read.caller.designation.as_deref(), Some("restricted"));
    assert!(!read.caller.listed);
    assert!(read.reasons.iter().any(|r| r.contains("default designation \"restricted\"")));
    assert_eq!(evaluate(&policy, "stranger", "w", json!({}), ws.path()).decision, Decision::Deny);
}

#[test]
fn unknown_caller_without_default_is_refused() {
    let dir = PolicyDir::new();
    dir.write("callers.toml", "[callers.agent]\ndesignation = \"standard\"\n");
    dir.tool("r", &tool_text("r", &["read"], ""));
    let policy = dir.load();
    let ws = workspace();
    assert!(policy.resolve_caller("stranger").is_none());
    let evaluation = evaluate(&policy, "stranger", "r", json!({}), ws.path());
    assert_eq!(evaluation.decision, Decision::Deny);
    assert!(evaluation.grant.is_none());
    assert!(evaluation.caller.designation.is_none());
    assert!(evaluation.rule.contains("no `default` designation"), "{}", evaluation.rule);
    assert!(policy.tools_for("stranger").is_empty());
    assert_eq!(evaluate(&policy, "agent", "r", json!({}), ws.path()).decision, Decision::Allow);
}

#[test]
fn unknown_tool_is_denied() {
    let policy = PolicyDir::new().load();
    let ws = workspace();
    let evaluation = evaluate(&policy, "agent", "nope", json!({}), ws.path());
    assert_eq!(evaluation.decision, Decision::Deny);
    assert!(evaluation.rule.contains("there is no tool \"nope\""), "{}", evaluation.rule);
    assert!(evaluation.tool_sha256.is_none());
}

#[test]
fn uids_map_to_callers() {
    let dir = PolicyDir::new();
    dir.write(
        "callers.toml",
        "default = \"restricted\"\n[callers.agent]\ndesignation = \"standard\"\nuids = [1000, 1001]\n[callers.ci]\ndesignation = \"elevated\"\nuids = [2000]\n",
    );
    let policy = dir.load();
    assert_eq!(policy.caller_for_uid(1000), Some("agent"));
    assert_eq!(policy.caller_for_uid(1001), Some("agent"));
    assert_eq!(policy.caller_for_uid(2000), Some("ci"));
    assert_eq!(policy.caller_for_uid(4242), None);
}

#[test]
fn a_uid_mapped_to_two_callers_is_an_error() {
    let dir = PolicyDir::new();
    let text = "[callers.agent]\ndesignation = \"standard\"\nuids = [1000]\n[callers.ci]\ndesignation = \"elevated\"\nuids = [1000]\n";
    dir.write("callers.toml", text);
    let errors = dir.load_errors();
    assert_error(&errors, "callers.toml", 6, "uid 1000 is mapped to both", "remove it from one");
}

// ---------------------------------------------------------------------------------------
// argv and stdin.

fn argv_tool() -> PolicySet {
    let dir = PolicyDir::new();
    dir.tool(
        "argv",
        &tool_text(
            "argv",
            &["read"],
            r#"
[input.properties.key]
type = "string"
[input.properties.n]
type = "integer"
[input.properties.ratio]
type = "number"
[input.properties.verbose]
type = "boolean"
[input.properties.files]
type = "array"
items = { type = "string" }
[input.properties.input]
type = "string"
[input.properties.data]
type = ["string", "object"]

[invoke]
args = ["--key={key}", "{verbose?--verbose}", "-n", "{n}", "--ratio={ratio}", "{{literal}}", "--", "{files}", "{input}"]
stdin = "{data}"
"#,
        ),
    );
    let policy = dir.load();
    // The TempDir may go: the policy is compiled and the module path is only data here.
    drop(dir);
    policy
}

fn grant_of(policy: &PolicySet, arguments: Value) -> (Vec<String>, Vec<u8>) {
    let ws = workspace();
    let evaluation = evaluate(policy, "agent", "argv", arguments, ws.path());
    assert_eq!(evaluation.decision, Decision::Allow, "{:?}", evaluation.reasons);
    let grant = evaluation.grant.unwrap();
    (grant.args, grant.stdin)
}

#[test]
fn argv_placeholders_render_every_form() {
    let policy = argv_tool();
    let (args, stdin) = grant_of(
        &policy,
        json!({"key": "id", "verbose": true, "n": 3, "ratio": 0.5, "files": ["a.csv", "b c.csv"], "input": "in.csv", "data": "x,y\n"}),
    );
    assert_eq!(
        args,
        ["--key=id", "--verbose", "-n", "3", "--ratio=0.5", "{literal}", "--", "a.csv", "b c.csv", "in.csv"]
    );
    assert_eq!(stdin, b"x,y\n");
}

#[test]
fn argv_absent_arguments_and_false_flags_drop_their_elements() {
    let policy = argv_tool();
    let (args, stdin) = grant_of(&policy, json!({"verbose": false, "files": []}));
    assert_eq!(args, ["-n", "{literal}", "--"]);
    assert!(stdin.is_empty());
}

#[test]
fn stdin_of_a_non_string_is_compact_json() {
    let policy = argv_tool();
    let (_, stdin) = grant_of(&policy, json!({"data": {"rows": [1, 2]}}));
    assert_eq!(stdin, br#"{"rows":[1,2]}"#);
}

#[test]
fn argv_that_cannot_be_rendered_is_denied() {
    let dir = PolicyDir::new();
    dir.tool(
        "obj",
        &tool_text("obj", &["read"], "\n[input.properties.o]\ntype = \"object\"\n\n[invoke]\nargs = [\"{o}\"]\n"),
    );
    let policy = dir.load();
    let ws = workspace();
    let evaluation = evaluate(&policy, "agent", "obj", json!({"o": {"a": 1}}), ws.path());
    assert_eq!(evaluation.decision, Decision::Deny);
    assert!(evaluation.rule.contains("[invoke]"), "{}", evaluation.rule);
    assert!(evaluation.reasons.iter().any(|r| r.contains("argument `o` is an object")), "{:?}", evaluation.reasons);
}

// ---------------------------------------------------------------------------------------
// Schema validation.

#[test]
fn arguments_failing_the_schema_are_denied_with_each_error() {
    let dir = PolicyDir::new();
    dir.tool(
        "s",
        &tool_text("s", &["read"], "required = [\"input\"]\n\n[input.properties.input]\ntype = \"integer\"\n"),
    );
    let policy = dir.load();
    let ws = workspace();
    let evaluation = evaluate(&policy, "agent", "s", json!({"input": "hunter2", "extra": 1}), ws.path());
    assert_eq!(evaluation.decision, Decision::Deny);
    assert!(evaluation.grant.is_none());
    assert_eq!(evaluation.rule, "tools/s.toml: the arguments do not match the tool's [input] schema");
    let schema_reasons: Vec<&String> = evaluation.reasons.iter().filter(|r| r.starts_with("at ")).collect();
    assert_eq!(schema_reasons.len(), 2, "{:?}", evaluation.reasons);
    assert!(schema_reasons.iter().any(|r| r.starts_with("at /input:") && r.contains("integer")));
    assert!(schema_reasons.iter().any(|r| r.contains("extra")));
    // Reasons go to the audit log: argument values are not echoed.
    assert!(!evaluation.reasons.iter().any(|r| r.contains("hunter2")), "{:?}", evaluation.reasons);

    let missing = evaluate(&policy, "agent", "s", json!({}), ws.path());
    assert_eq!(missing.decision, Decision::Deny);
    assert!(missing.reasons.iter().any(|r| r.contains("\"input\" is a required property")), "{:?}", missing.reasons);

    let not_object = evaluate(&policy, "agent", "s", json!([1]), ws.path());
    assert_eq!(not_object.decision, Decision::Deny);
}

// ---------------------------------------------------------------------------------------
// Paths.

fn files_tool(files: &str) -> (PolicyDir, PolicySet) {
    let dir = PolicyDir::new();
    dir.tool("f", &tool_text("f", &["read", "write"], &format!("\n[files]\n{files}\n")));
    let policy = dir.load();
    (dir, policy)
}

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap()
}

#[test]
fn nested_read_and_write_grants_are_separate_mounts() {
    let (_dir, policy) = files_tool("read = [\".\", \"data\", \"out\"]\nwrite = [\"./out/\", \"out/logs\"]");
    let ws = workspace();
    fs::create_dir_all(ws.path().join("data")).unwrap();
    fs::create_dir_all(ws.path().join("out/logs")).unwrap();
    let evaluation = evaluate(&policy, "agent", "f", json!({}), ws.path());
    assert_eq!(evaluation.decision, Decision::Allow, "{:?}", evaluation.reasons);
    let root = canonical(ws.path());
    let mounts = evaluation.grant.unwrap().mounts;
    let expected = vec![
        Mount { host: root.clone(), guest: ".".into(), writable: false },
        Mount { host: root.join("data"), guest: "data".into(), writable: false },
        Mount { host: root.join("out"), guest: "out".into(), writable: true },
        Mount { host: root.join("out/logs"), guest: "out/logs".into(), writable: true },
    ];
    assert_eq!(mounts, expected);
}

#[test]
fn missing_granted_path_is_left_out_with_a_reason() {
    let (_dir, policy) = files_tool("read = [\".\"]\nwrite = [\"out\"]");
    let ws = workspace();
    let evaluation = evaluate(&policy, "agent", "f", json!({}), ws.path());
    assert_eq!(evaluation.decision, Decision::Allow);
    let mounts = evaluation.grant.unwrap().mounts;
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].guest, ".");
    assert!(
        evaluation.reasons.iter().any(|r| r.contains("files.write \"out\" does not exist in this workspace")),
        "{:?}",
        evaluation.reasons
    );
}

#[test]
fn symlink_in_workspace_pointing_out_is_denied() {
    let (_dir, policy) = files_tool("read = [\".\"]\nwrite = [\"out\"]");
    let ws = workspace();
    let outside = TempDir::new().unwrap();
    std::os::unix::fs::symlink(outside.path(), ws.path().join("out")).unwrap();
    let evaluation = evaluate(&policy, "agent", "f", json!({}), ws.path());
    assert_eq!(evaluation.decision, Decision::Deny);
    assert!(evaluation.grant.is_none());
    assert!(evaluation.rule.contains("resolves outside the workspace"), "{}", evaluation.rule);
    assert!(evaluation.reasons.iter().any(|r| r.contains("outside the workspace")), "{:?}", evaluation.reasons);
}

#[test]
fn symlink_staying_inside_the_workspace_mounts_its_target() {
    let (_dir, policy) = files_tool("write = [\"out\"]");
    let ws = workspace();
    fs::create_dir(ws.path().join("real")).unwrap();
    std::os::unix::fs::symlink(ws.path().join("real"), ws.path().join("out")).unwrap();
    let evaluation = evaluate(&policy, "agent", "f", json!({}), ws.path());
    assert_eq!(evaluation.decision, Decision::Allow);
    let mounts = evaluation.grant.unwrap().mounts;
    assert_eq!(mounts, vec![Mount { host: canonical(ws.path()).join("real"), guest: "out".into(), writable: true }]);
}

#[test]
fn missing_or_non_directory_workspace_is_denied() {
    let (_dir, policy) = files_tool("read = [\".\"]");
    let ws = workspace();
    let missing = evaluate(&policy, "agent", "f", json!({}), &ws.path().join("nope"));
    assert_eq!(missing.decision, Decision::Deny);
    assert!(missing.rule.starts_with("workspace:"), "{}", missing.rule);
    fs::write(ws.path().join("file"), "x").unwrap();
    let file = evaluate(&policy, "agent", "f", json!({}), &ws.path().join("file"));
    assert_eq!(file.decision, Decision::Deny);
    assert!(file.reasons.iter().any(|r| r.contains("not a directory")), "{:?}", file.reasons);
}

// ---------------------------------------------------------------------------------------
// Env, limits, network, the evaluation's JSON.

#[test]
fn grant_carries_env_network_limits_and_program() {
    let dir = PolicyDir::new();
    let text = tool_text("g", &["read"], "\n[env]\npass = [\"PATH\", \"AIRLOCK_SURELY_UNSET_VAR\"]\nset = { LC_ALL = \"C\" }\n\n[limits]\nwall_ms = 5000\nfuel = 1000\n")
        .replace("[backend]", "network = [\"pypi.org:443\"]\n\n[backend]");
    dir.tool("g", &text);
    let policy = dir.load();
    let ws = workspace();
    let evaluation = evaluate(&policy, "agent", "g", json!({}), ws.path());
    assert_eq!(evaluation.decision, Decision::Allow);
    assert_eq!(evaluation.tool_sha256.as_deref(), Some(module_sha().as_str()));
    assert_eq!(evaluation.policy_digest, policy.digest());
    let grant = evaluation.grant.unwrap();
    assert_eq!(grant.env.get("LC_ALL").map(String::as_str), Some("C"));
    assert_eq!(grant.env.get("PATH"), std::env::var("PATH").ok().as_ref());
    assert!(!grant.env.contains_key("AIRLOCK_SURELY_UNSET_VAR"));
    assert!(evaluation.reasons.iter().any(|r| r.contains("AIRLOCK_SURELY_UNSET_VAR is not set")));
    assert_eq!(grant.network, ["pypi.org:443"]);
    assert_eq!(grant.limits.wall_ms, 5000);
    assert_eq!(grant.limits.fuel, 1000);
    assert_eq!(grant.limits.memory_mib, airlock::policy::Limits::default().memory_mib);
    let program =
        airlock::policy::Program::Wasm { module: canonical(&dir.path().join("mod.wasm")), sha256: module_sha() };
    assert_eq!(grant.program, program);
}

#[test]
fn evaluation_serializes_as_json_for_explain() {
    let dir = PolicyDir::new();
    dir.tool("d", &tool_text("d", &["read", "deploy"], ""));
    let policy = dir.load();
    let ws = workspace();
    let evaluation = evaluate(&policy, "agent", "d", json!({}), ws.path());
    let value = serde_json::to_value(&evaluation).unwrap();
    assert_eq!(value["decision"], "needs-approval");
    assert_eq!(value["caller"]["name"], "agent");
    assert_eq!(value["caller"]["designation"], "standard");
    assert_eq!(value["tool"], "d");
    assert!(value["rule"].as_str().unwrap().contains("under approve"));
    assert!(value["grant"].is_object());
}

// ---------------------------------------------------------------------------------------
// Digest and schema.

#[test]
fn digest_changes_when_a_policy_file_changes() {
    let dir = PolicyDir::new();
    dir.tool("r", &tool_text("r", &["read"], ""));
    let first = dir.load().digest().to_string();
    assert_eq!(dir.load().digest(), first, "same files, same digest");
    dir.write("callers.toml", &(shipped("callers.toml") + "\n# a comment\n"));
    let second = dir.load().digest().to_string();
    assert_ne!(first, second);
    dir.tool("r", &tool_text("r", &["read"], "# changed\n"));
    assert_ne!(dir.load().digest(), second);
}

#[test]
fn tool_file_schema_is_a_json_schema_of_the_tool_file() {
    let schema = tool_file_schema();
    assert!(jsonschema::draft202012::meta::is_valid(&schema), "not a valid JSON Schema");
    assert_eq!(schema["type"], "object");
    let text = schema.to_string();
    for field in
        ["backend", "sha256", "categories", "invoke", "files", "limits", "wall_ms", "examples", "justification"]
    {
        assert!(text.contains(&format!("\"{field}\"")), "schema does not mention {field}");
    }
    // A tool file that loads validates against the schema.
    let tool: toml::Table = toml::from_str(&tool_text(
        "x",
        &["read"],
        "\n[input.properties.a]\ntype = \"string\"\n[invoke]\nargs = [\"{a}\"]\n[files]\nread = [\".\"]\n[limits]\nwall_ms = 10\n[[examples]]\narguments = { a = \"b\" }\nargs = [\"b\"]\n",
    ))
    .unwrap();
    let instance = serde_json::to_value(&tool).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!validator.is_valid(&json!({"name": "x", "colour": "red"})));
}

// ---------------------------------------------------------------------------------------
// Designation presets: the decision table (designation x category x attribute), and the
// rules a preset cannot break.

/// Every shipped preset against every category, with and without `trusted_access`.
#[test]
fn preset_decision_table_designation_x_category_x_attribute() {
    use Decision::{Allow, Deny, NeedsApproval as Approve};
    let policy = PolicyDir::new().load();
    let categories = ["read", "write", "exec", "network", "deploy", "secrets", "security-testing", "training"];
    #[rustfmt::skip]
    let table: [(&str, &[&str], [Decision; 8]); 8] = [
        //                                   read   write  exec   network  deploy   secrets sec-test training
        ("standard",   &[],                 [Allow, Allow, Allow, Approve, Approve, Deny, Deny,    Deny]),
        ("standard",   &["trusted_access"], [Allow, Allow, Allow, Approve, Approve, Deny, Deny,    Deny]),
        ("elevated",   &[],                 [Allow, Allow, Allow, Allow,   Approve, Deny, Approve, Allow]),
        ("elevated",   &["trusted_access"], [Allow, Allow, Allow, Allow,   Approve, Deny, Approve, Allow]),
        ("high-cyber", &[],                 [Allow, Allow, Allow, Deny,    Approve, Deny, Deny,    Deny]),
        ("high-cyber", &["trusted_access"], [Allow, Allow, Allow, Deny,    Approve, Deny, Allow,   Deny]),
        ("restricted", &[],                 [Allow, Deny,  Deny,  Deny,    Deny,    Deny, Deny,    Deny]),
        ("restricted", &["trusted_access"], [Allow, Deny,  Deny,  Deny,    Deny,    Deny, Deny,    Deny]),
    ];
    for (name, attributes, expected) in table {
        let designation = policy.designation(name).unwrap();
        for (category, want) in categories.iter().zip(expected) {
            let got = designation.decide_for(&[*category], attributes, false).decision;
            assert_eq!(got, want, "{name} x {category} x {attributes:?}");
        }
    }
    // Network entries: denied outright where network = false, whatever the categories.
    for (name, want) in [("standard", Allow), ("elevated", Allow), ("high-cyber", Deny), ("restricted", Deny)] {
        let got = policy.designation(name).unwrap().decide_for(&["read"], &["trusted_access"], true).decision;
        assert_eq!(got, want, "{name} with network entries");
    }
}

#[test]
fn every_preset_gates_deploy_and_declares_its_guardrails() {
    let policy = PolicyDir::new().load();
    for designation in policy.designations() {
        assert_ne!(designation.rule_for("deploy"), Some(Decision::Allow), "{}", designation.name());
        assert!(designation.protected().iter().any(|p| p.as_str() == "tests"), "{}", designation.name());
    }
    let cyber = policy.designation("high-cyber").unwrap();
    assert!(!cyber.network_allowed());
    assert_eq!(cyber.audit_arguments(), airlock::policy::AuditArguments::Full);
    assert_eq!(cyber.on_tamper(), airlock::policy::OnTamper::Suspend);
    assert_eq!(cyber.required_attribute("security-testing"), Some("trusted_access"));
    assert_eq!(policy.designation("standard").unwrap().on_tamper(), airlock::policy::OnTamper::Record);
}

#[test]
fn explain_names_the_preset_rule_that_decided() {
    let policy = PolicyDir::new();
    policy.tool("scanner", &tool_text("scanner", &["read", "security-testing"], ""));
    policy.tool("ship", &tool_text("ship", &["deploy"], ""));
    policy.tool(
        "fetch",
        &tool_text("fetch", &["read"], "").replace("[backend]", "network = [\"pypi.org:443\"]\n\n[backend]"),
    );
    let policy = policy.load();
    let ws = workspace();
    let e = evaluate(&policy, "cyber-agent", "scanner", json!({}), ws.path());
    assert_eq!(e.decision, Decision::Deny);
    assert_eq!(e.decided_by, "designations.high-cyber.deny[security-testing] (caller lacks attribute trusted_access)");
    let e = evaluate(&policy, "red-team", "scanner", json!({}), ws.path());
    assert_eq!(e.decision, Decision::Allow, "{e:?}");
    assert_eq!(
        e.decided_by,
        "designations.high-cyber.allow[read, security-testing] (caller has attribute trusted_access)"
    );
    assert_eq!(e.on_tamper, airlock::policy::OnTamper::Suspend);
    assert_eq!(e.protected, ["tests", "eval", "benchmarks", ".airlock"]);
    let e = evaluate(&policy, "red-team", "ship", json!({}), ws.path());
    assert_eq!(e.decision, Decision::NeedsApproval);
    assert_eq!(e.decided_by, "designations.high-cyber.approve[deploy]");
    let e = evaluate(&policy, "red-team", "fetch", json!({}), ws.path());
    assert_eq!(e.decision, Decision::Deny);
    assert_eq!(e.decided_by, "designations.high-cyber.network = false (the tool has network entries)");
    let e = evaluate(&policy, "agent", "fetch", json!({}), ws.path());
    assert_eq!(e.decision, Decision::Allow);
    assert_eq!(e.decided_by, "designations.standard.allow[read]");
    let e = evaluate(&policy, "agent", "nope", json!({}), ws.path());
    assert_eq!(e.decided_by, "tools/");
}

#[test]
fn malformed_designation_that_allows_deploy_is_refused() {
    let policy = PolicyDir::new();
    let text = shipped("designations.toml").replace(
        "allow = [\"read\", \"write\", \"exec\"]\napprove = [\"deploy\", \"network\"]",
        "allow = [\"read\", \"write\", \"exec\", \"deploy\"]\napprove = [\"network\"]",
    );
    policy.write("designations.toml", &text);
    let errors = policy.load_errors();
    let line = line_of(&text, "allow = [\"read\", \"write\", \"exec\", \"deploy\"]");
    assert_error(&errors, "designations.toml", line, "allows category \"deploy\"", "move deploy to `approve`");
}

#[test]
fn malformed_attribute_on_a_denied_category_and_network_false_with_network_allowed() {
    let policy = PolicyDir::new();
    let text = shipped("designations.toml")
        .replace("security-testing = \"trusted_access\"", "secrets = \"trusted_access\"")
        .replace(
            "allow = [\"read\", \"write\", \"exec\", \"network\", \"training\"]\napprove = [\"deploy\", \"security-testing\"]\ndeny = [\"secrets\"]\n",
            "allow = [\"read\", \"write\", \"exec\", \"network\", \"training\"]\napprove = [\"deploy\", \"security-testing\"]\ndeny = [\"secrets\"]\nnetwork = false\n",
        );
    policy.write("designations.toml", &text);
    let errors = policy.load_errors();
    assert_error(
        &errors,
        "designations.toml",
        line_of(&text, "secrets = \"trusted_access\""),
        "requires an attribute for category \"secrets\"",
        "list the category under `allow` or `approve`",
    );
    find(&errors, "designations.toml", "has network = false but lists category \"network\" under allow");
}

#[test]
fn malformed_example_with_attributes_reports_the_mismatch() {
    let policy = PolicyDir::new();
    let text = shipped("designations.toml").replacen(
        "categories = [\"security-testing\"]\nattributes = [\"trusted_access\"]\nexpect = \"allow\"",
        "categories = [\"security-testing\"]\nattributes = [\"trusted_access\"]\nexpect = \"deny\"",
        1,
    );
    policy.write("designations.toml", &text);
    let errors = policy.load_errors();
    find(&errors, "designations.toml", "attributes [trusted_access]): expected deny but got allow");
}

#[test]
fn tool_protected_paths_merge_with_the_designation_ones_for_wasm_tools_too() {
    let policy = PolicyDir::new();
    policy.tool("t", &tool_text("t", &["read", "write"], "\n[files]\nwrite = [\".\"]\nprotected = [\"grader\"]\n"));
    let policy = policy.load();
    let ws = workspace();
    fs::create_dir_all(ws.path().join("grader")).unwrap();
    fs::create_dir_all(ws.path().join("tests")).unwrap();
    let e = evaluate(&policy, "agent", "t", json!({}), ws.path());
    assert_eq!(e.decision, Decision::Allow, "{e:?}");
    assert_eq!(e.protected, ["tests", "eval", "benchmarks", ".airlock", "grader"]);
    let grant = e.grant.unwrap();
    let guests: Vec<&str> = grant.protected.iter().map(|m| m.guest.as_str()).collect();
    assert_eq!(guests, ["tests", "grader"]);
}
