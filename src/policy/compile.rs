//! Validation and compilation: the parsed files (`file`) become the immutable
//! [`PolicySet`], or every mistake found becomes a [`PolicyError`] with its line and a
//! help line.
//!
//! Owns: reading the policy directory, every check the format promises (names, known
//! categories and designations, module sha256, paths, placeholders, schemas, limits,
//! examples) and the policy digest.
//! Must not: stop at the first mistake (each file is checked as far as it can be, and a
//! bad file does not keep the others from being checked), or produce a [`PolicySet`] when
//! any mistake was found.

use std::{collections::BTreeMap, net::Ipv6Addr, ops::Range, path::Path};

use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::{
    AuditSettings, Budgets, CallerPolicy, CallerTable, Decision, Designation, PolicySet, ToolPolicy,
    decision::{DEPLOY_CATEGORY, DesignationExtras, NETWORK_CATEGORY},
    error::{PolicyError, PolicyErrors, SourceFile, list_or_none, whole_file_error},
    file::{AuditFile, BudgetsFile, CallersFile, DesignationsFile, ToolFile},
    grant::{EnvGrants, FileGrants, HostPath, JailGrant, Layer, Limits, Program, SeccompGrant, WorkspacePath},
    invoke::{ArgTemplate, Invocation, StdinTemplate},
};

/// Caps a tool's wall time so that a typo in a policy cannot hold a call (and the
/// caller's session) for days.
const MAX_WALL_MS: u64 = 60 * 60 * 1000;
/// Caps fuel (about 10^13 instructions, hours of compute) so that a policy cannot
/// effectively disable the CPU bound.
const MAX_FUEL: u64 = 10_000_000_000_000;
/// Caps linear memory at the wasm32 address space (4 GiB): more cannot be used and is a
/// sign of a unit mistake.
const MAX_MEMORY_MIB: u64 = 4096;
/// Caps captured output per stream: it is held in airlock's memory and returned to the
/// caller, so a guest must not be able to exhaust the host with it.
const MAX_OUTPUT_BYTES: u64 = 64 << 20;
/// Caps table elements per table, which the host allocates eagerly.
const MAX_TABLE_ELEMENTS: u64 = 10_000_000;
/// Caps instances (and tables and memories) per store, each of which costs host memory.
const MAX_INSTANCES: u64 = 1000;
/// Caps a process tool's memory (64 GiB): more is a unit mistake, and would let one call
/// take the host's memory from every other.
const MAX_PROCESS_MEMORY_MIB: u64 = 64 * 1024;
/// Caps a process tree's CPU time (one hour), like [`MAX_WALL_MS`].
const MAX_CPU_SECONDS: u64 = 60 * 60;
/// Caps processes per call, so that a policy cannot license a fork bomb that exhausts the
/// host's pid space.
const MAX_PIDS: u64 = 4096;
/// Caps the largest file a tool may write (64 GiB), so that a typo cannot license filling
/// the disk.
const MAX_FILE_SIZE_MIB: u64 = 64 * 1024;
/// Caps open files per process at a common kernel default (`fs.nr_open`).
const MAX_OPEN_FILES: u64 = 1 << 20;
/// Caps the private /tmp (a tmpfs: its pages are host memory).
const MAX_TMP_MIB: u64 = 4096;
/// The seccomp profile of a process tool that names none.
const DEFAULT_SECCOMP_PROFILE: &str = "default";

/// What designations.toml declares, as far as it could be read: what the other files are
/// checked against.
struct DesignationTable {
    categories: BTreeMap<String, String>,
    designations: BTreeMap<String, Designation>,
}

/// Loads a policy directory: see [`PolicySet::load`].
pub(super) fn load(dir: &Path) -> Result<PolicySet, PolicyErrors> {
    let mut errors = Vec::new();
    let mut digested: BTreeMap<String, String> = BTreeMap::new();

    let designations = read_source(dir, "designations.toml", &mut errors, &mut digested)
        .and_then(|source| compile_designations(&source, &mut errors));
    let callers = read_source(dir, "callers.toml", &mut errors, &mut digested)
        .and_then(|source| compile_callers(&source, designations.as_ref(), &mut errors));
    let audit = if dir.join("audit.toml").exists() {
        read_source(dir, "audit.toml", &mut errors, &mut digested)
            .and_then(|source| compile_audit(&source, &mut errors))
    } else {
        Some(AuditSettings::default())
    };

    let seccomp_profiles = seccomp_profiles(dir, &mut errors, &mut digested);
    let mut tools: BTreeMap<String, ToolPolicy> = BTreeMap::new();
    let categories = designations.as_ref().map(|d| &d.categories);
    for rel in tool_files(dir, &mut errors) {
        let Some(source) = read_source(dir, &rel, &mut errors, &mut digested) else {
            continue;
        };
        let Some((tool, name_span)) = compile_tool(&source, dir, categories, &seccomp_profiles, &mut errors) else {
            continue;
        };
        if let Some(other) = tools.get(tool.name()) {
            errors.push(source.error_at(
                name_span,
                format!("tool \"{}\" is also declared in {}", tool.name(), other.file()),
                "give each tool one file, tools/NAME.toml, whose `name` is NAME",
            ));
            continue;
        }
        tools.insert(tool.name().to_string(), tool);
    }

    match (designations, callers, audit) {
        (Some(designations), Some(callers), Some(audit)) if errors.is_empty() => Ok(PolicySet {
            root: dir.to_path_buf(),
            digest: policy_digest(&digested),
            categories: designations.categories,
            designations: designations.designations,
            callers,
            audit,
            tools,
            seccomp: seccomp_profiles,
            protected_cache: Default::default(),
        }),
        _ => {
            // By file, then by position: the order an editor's error list uses.
            errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            if errors.is_empty() {
                // Every path that returns None pushes an error first; this keeps a bug in
                // that from turning into an empty, permissive-looking set.
                errors.push(whole_file_error(
                    dir.to_path_buf(),
                    "the policy directory could not be compiled",
                    "report this as a bug in airlock",
                ));
            }
            Err(PolicyErrors(errors))
        }
    }
}

/// The digest of the policy: see [`PolicySet::digest`].
fn policy_digest(files: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (rel, sha) in files {
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update(sha.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// Reads `dir/rel`, recording its digest; a file that cannot be read is an error.
fn read_source(
    dir: &Path,
    rel: &str,
    errors: &mut Vec<PolicyError>,
    digested: &mut BTreeMap<String, String>,
) -> Option<SourceFile> {
    let path = dir.join(rel);
    match std::fs::read(&path) {
        Ok(bytes) => {
            digested.insert(rel.to_string(), hex::encode(Sha256::digest(&bytes)));
            match String::from_utf8(bytes) {
                Ok(text) => Some(SourceFile { path, rel: rel.to_string(), text }),
                Err(_) => {
                    errors.push(whole_file_error(path, "the file is not valid UTF-8", "save it as UTF-8 text"));
                    None
                }
            }
        }
        Err(e) => {
            let help = match rel {
                "designations.toml" => "create designations.toml with [categories] and [designations.NAME] tables",
                "callers.toml" => "create callers.toml with `default` and [callers.NAME] tables",
                _ => "check the file's permissions",
            };
            errors.push(whole_file_error(path, format!("cannot read the file: {e}"), help));
            None
        }
    }
}

/// The seccomp profiles (`seccomp/NAME.json`) by name, each digested into the policy
/// digest. Their contents are compiled by the jail backend (policy imports no backend);
/// here they are only read, so that the digest covers them and tools can name them.
fn seccomp_profiles(
    dir: &Path,
    errors: &mut Vec<PolicyError>,
    digested: &mut BTreeMap<String, String>,
) -> BTreeMap<String, SeccompGrant> {
    let mut profiles = BTreeMap::new();
    let seccomp_dir = dir.join("seccomp");
    let entries = match std::fs::read_dir(&seccomp_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return profiles,
        Err(e) => {
            errors.push(whole_file_error(
                seccomp_dir,
                format!("cannot list the seccomp directory: {e}"),
                "check the directory's permissions",
            ));
            return profiles;
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .filter(|name| name.ends_with(".json") && !name.starts_with('.'))
        .collect();
    names.sort();
    for file_name in names {
        let path = seccomp_dir.join(&file_name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let sha256 = hex::encode(Sha256::digest(&bytes));
                digested.insert(format!("seccomp/{file_name}"), sha256.clone());
                let name = file_name.trim_end_matches(".json").to_string();
                profiles.insert(name.clone(), SeccompGrant { name, path, sha256 });
            }
            Err(e) => errors.push(whole_file_error(
                path,
                format!("cannot read the seccomp profile: {e}"),
                "check the file's permissions",
            )),
        }
    }
    profiles
}

/// The tool files (`tools/*.toml`, relative paths, sorted). A missing directory is no tools.
fn tool_files(dir: &Path, errors: &mut Vec<PolicyError>) -> Vec<String> {
    let tools_dir = dir.join("tools");
    let entries = match std::fs::read_dir(&tools_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(whole_file_error(
                tools_dir,
                format!("cannot list the tools directory: {e}"),
                "check the directory's permissions",
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| !t.is_dir()))
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .filter(|name| name.ends_with(".toml") && !name.starts_with('.'))
        .map(|name| format!("tools/{name}"))
        .collect();
    files.sort();
    files
}

/// Parses `source` as `T`: first every TOML syntax error (the parser recovers and goes
/// on), then the first shape error serde finds.
fn parse<T: DeserializeOwned>(source: &SourceFile, errors: &mut Vec<PolicyError>) -> Option<T> {
    let (_, syntax) = toml::de::DeTable::parse_recoverable(&source.text);
    // Only the first syntax error: the parser recovers, but what it reports after the
    // first mistake is mostly that mistake's echo (one missing `]` gives five errors).
    if let Some(first) = syntax.first() {
        errors.push(source.toml_error(first));
        return None;
    }
    match toml::from_str::<T>(&source.text) {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(source.toml_error(&e));
            None
        }
    }
}

/// Lowercase names with digits and `-`: categories and designations.
fn is_kebab_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Caller attributes: lowercase letters, digits, `_` and `-`, starting with a letter
/// (`trusted_access`).
fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn attribute_name_error(source: &SourceFile, attribute: &Spanned<String>) -> PolicyError {
    source.error_at(
        attribute.span(),
        format!("attribute \"{}\" is not a lowercase name", attribute.get_ref()),
        "use lowercase letters, digits, `_` and `-`, starting with a letter (e.g. trusted_access)",
    )
}

/// Tool names: letters, digits, `-` and `_`, starting with a letter or digit.
fn is_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// POSIX-portable environment variable names.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `host:port`: a DNS name or IPv4 address, or `[IPv6]`, and a port 1-65535.
fn is_host_port(entry: &str) -> bool {
    let Some((host, port)) = entry.rsplit_once(':') else {
        return false;
    };
    let port_ok =
        !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    port_ok && host_ok
}

/// Checks a required free-text field is not blank.
fn require_text(source: &SourceFile, field: &Spanned<String>, what: &str, errors: &mut Vec<PolicyError>) {
    if field.get_ref().trim().is_empty() {
        errors.push(source.error_at(
            field.span(),
            format!("`{what}` is empty"),
            format!("write a `{what}`: it is required and shown to people reviewing the policy"),
        ));
    }
}

fn compile_designations(source: &SourceFile, errors: &mut Vec<PolicyError>) -> Option<DesignationTable> {
    let file: DesignationsFile = parse(source, errors)?;
    let mut categories = BTreeMap::new();
    for (name, description) in &file.categories {
        if !is_kebab_name(name.get_ref()) {
            errors.push(source.error_at(
                name.span(),
                format!("category name \"{}\" is not a lowercase name", name.get_ref()),
                "use lowercase letters, digits and `-`, starting with a letter (e.g. security-testing)",
            ));
        }
        require_text(source, description, &format!("categories.{}", name.get_ref()), errors);
        categories.insert(name.get_ref().clone(), description.get_ref().clone());
    }
    if categories.is_empty() {
        errors.push(source.error_whole(
            "designations.toml declares no categories",
            "add a [categories] table: name = \"what a tool in this category does\"",
        ));
    }
    let known: Vec<&str> = categories.keys().map(String::as_str).collect();

    let mut designations = BTreeMap::new();
    for (name, designation) in &file.designations {
        let name_str = name.get_ref();
        if !is_kebab_name(name_str) {
            errors.push(source.error_at(
                name.span(),
                format!("designation name \"{name_str}\" is not a lowercase name"),
                "use lowercase letters, digits and `-`, starting with a letter (e.g. high-cyber)",
            ));
        }
        let body = designation.get_ref();
        require_text(source, &body.justification, "justification", errors);
        let mut rules: BTreeMap<String, (Decision, &'static str)> = BTreeMap::new();
        for (list, decision, entries) in [
            ("allow", Decision::Allow, &body.allow),
            ("approve", Decision::NeedsApproval, &body.approve),
            ("deny", Decision::Deny, &body.deny),
        ] {
            for category in entries {
                let c = category.get_ref();
                if !categories.contains_key(c) {
                    errors.push(source.error_at(
                        category.span(),
                        format!("designation \"{name_str}\" lists unknown category \"{c}\" under {list}"),
                        format!("use one of the categories declared in [categories]: {}", list_or_none(&known)),
                    ));
                    continue;
                }
                if let Some((_, first)) = rules.get(c) {
                    errors.push(source.error_at(
                        category.span(),
                        format!(
                            "category \"{c}\" is listed twice in designation \"{name_str}\" (already under {first})"
                        ),
                        "keep each category in exactly one of allow, approve, deny",
                    ));
                    continue;
                }
                rules.insert(c.clone(), (decision, list));
            }
        }
        if let Some((Decision::Allow, _)) = rules.get(DEPLOY_CATEGORY)
            && let Some(entry) = body.allow.iter().find(|c| c.get_ref() == DEPLOY_CATEGORY)
        {
            errors.push(source.error_at(
                entry.span(),
                format!("designation \"{name_str}\" allows category \"{DEPLOY_CATEGORY}\""),
                "deployment is a human's gate in every designation: move deploy to `approve` (or `deny`)",
            ));
        }
        let mut extras = DesignationExtras::default();
        if let Some(network) = &body.network {
            extras.network = *network.get_ref();
            if !extras.network
                && let Some((decision @ (Decision::Allow | Decision::NeedsApproval), list)) =
                    rules.get(NETWORK_CATEGORY)
            {
                errors.push(source.error_at(
                    network.span(),
                    format!(
                        "designation \"{name_str}\" has network = false but lists category \"{NETWORK_CATEGORY}\" under {list} ({decision})"
                    ),
                    format!("move {NETWORK_CATEGORY} to `deny`, or remove network = false"),
                ));
            }
        }
        for (category, attribute) in &body.require_attribute {
            let c = category.get_ref();
            match rules.get(c) {
                Some((Decision::Allow | Decision::NeedsApproval, _)) => {}
                Some((Decision::Deny, _)) | None => errors.push(source.error_at(
                    category.span(),
                    format!(
                        "designation \"{name_str}\" requires an attribute for category \"{c}\", which it does not allow or approve"
                    ),
                    "list the category under `allow` or `approve` (the attribute then gates it), or remove the requirement",
                )),
            }
            if !is_attribute_name(attribute.get_ref()) {
                errors.push(attribute_name_error(source, attribute));
            }
            extras.require_attribute.insert(c.clone(), attribute.get_ref().clone());
        }
        if let Some(protected) = &body.protected {
            extras.protected.clear();
            for entry in protected {
                match WorkspacePath::parse(entry.get_ref()) {
                    Ok(path) if path.as_str() == "." => errors.push(source.error_at(
                        entry.span(),
                        "protected = [\".\"] would protect the whole workspace",
                        "list the evaluation criteria (tests, eval, ...); a read-only workspace is a tool's `files.read`",
                    )),
                    Ok(path) => {
                        if !extras.protected.contains(&path) {
                            extras.protected.push(path);
                        }
                    }
                    Err(e) => errors.push(source.error_at(
                        entry.span(),
                        format!("protected: {e}"),
                        "use a path relative to the workspace, without `..`, e.g. \"tests\"",
                    )),
                }
            }
        }
        extras.audit_arguments = body.audit_arguments.unwrap_or_default();
        extras.on_tamper = body.on_tamper.unwrap_or_default();
        let compiled = Designation::new(
            name_str.clone(),
            body.justification.get_ref().clone(),
            rules.into_iter().map(|(c, (d, _))| (c, d)).collect(),
            extras,
        )
        .with_budgets(compile_budgets(source, name_str, body.budgets.as_ref(), errors));
        for (index, example) in body.examples.iter().enumerate() {
            let example_body = example.get_ref();
            let mut example_ok = true;
            for category in &example_body.categories {
                if !categories.contains_key(category.get_ref()) {
                    example_ok = false;
                    errors.push(source.error_at(
                        category.span(),
                        format!("example uses unknown category \"{}\"", category.get_ref()),
                        format!("use one of the categories declared in [categories]: {}", list_or_none(&known)),
                    ));
                }
            }
            if !example_ok {
                continue;
            }
            let names: Vec<&str> = example_body.categories.iter().map(|c| c.get_ref().as_str()).collect();
            let verdict = compiled.decide_for(&names, &example_body.attributes, example_body.network);
            if verdict.decision != example_body.expect {
                errors.push(source.error_at(
                    example.span(),
                    format!(
                        "designation \"{name_str}\" example {} (categories [{}], attributes [{}]{}): expected {} but got {} ({})",
                        index + 1,
                        names.join(", "),
                        example_body.attributes.join(", "),
                        if example_body.network { ", network entries" } else { "" },
                        example_body.expect,
                        verdict.decision,
                        verdict.rule
                    ),
                    "fix the designation's allow/approve/deny lists, or the example's `expect` if the rule is right",
                ));
            }
        }
        designations.insert(name_str.clone(), compiled);
    }
    Some(DesignationTable { categories, designations })
}

/// `[designations.NAME.budgets]`, validated: counts above zero, seconds finite and above
/// zero. A bad value is reported and left out.
fn compile_budgets(
    source: &SourceFile,
    designation: &str,
    budgets: Option<&Spanned<BudgetsFile>>,
    errors: &mut Vec<PolicyError>,
) -> Budgets {
    let Some(budgets) = budgets else {
        return Budgets::default();
    };
    let file = budgets.get_ref();
    let mut count = |key: &str, value: &Option<Spanned<i64>>| -> Option<u64> {
        let value = value.as_ref()?;
        match u64::try_from(*value.get_ref()) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errors.push(source.error_at(
                    value.span(),
                    format!(
                        "designation \"{designation}\": budget `{key}` is {}, not a count above zero",
                        value.get_ref()
                    ),
                    format!("give `{key}` a whole number above zero, or leave it out for no budget"),
                ));
                None
            }
        }
    };
    let calls_per_minute = count("calls_per_minute", &file.calls_per_minute);
    let output_bytes = count("output_bytes", &file.output_bytes);
    let denials_before_suspend = count("denials_before_suspend", &file.denials_before_suspend);
    let mut seconds = |key: &str, value: &Option<Spanned<f64>>| -> Option<f64> {
        let value = value.as_ref()?;
        let n = *value.get_ref();
        if n.is_finite() && n > 0.0 {
            return Some(n);
        }
        errors.push(source.error_at(
            value.span(),
            format!("designation \"{designation}\": budget `{key}` is {n}, not a number of seconds above zero"),
            format!("give `{key}` a number of seconds above zero (e.g. 600 or 0.5), or leave it out for no budget"),
        ));
        None
    };
    let cpu_seconds = seconds("cpu_seconds", &file.cpu_seconds);
    let wall_seconds = seconds("wall_seconds", &file.wall_seconds);
    Budgets { calls_per_minute, cpu_seconds, wall_seconds, output_bytes, denials_before_suspend }
}

fn compile_callers(
    source: &SourceFile,
    designations: Option<&DesignationTable>,
    errors: &mut Vec<PolicyError>,
) -> Option<CallerTable> {
    let file: CallersFile = parse(source, errors)?;
    let known: Vec<&str> =
        designations.map(|d| d.designations.keys().map(String::as_str).collect()).unwrap_or_default();
    let check_designation = |name: &Spanned<String>, what: String, errors: &mut Vec<PolicyError>| {
        // Without a readable designations.toml there is nothing to check against; that
        // file's own error is already reported.
        if designations.is_some() && !known.contains(&name.get_ref().as_str()) {
            errors.push(source.error_at(
                name.span(),
                format!("{what} \"{}\" is not declared in designations.toml", name.get_ref()),
                format!("use one of the designations declared there: {}", list_or_none(&known)),
            ));
        }
    };
    if let Some(default) = &file.default {
        check_designation(default, "default designation".to_string(), errors);
    }
    let mut table =
        CallerTable { default: file.default.as_ref().map(|d| d.get_ref().clone()), ..CallerTable::default() };
    for (name, caller) in &file.callers {
        let name_str = name.get_ref();
        if name_str.trim().is_empty() || name_str.chars().any(char::is_control) {
            errors.push(source.error_at(
                name.span(),
                format!("caller name {name_str:?} is empty or has control characters"),
                "name callers with printable text, e.g. [callers.agent]",
            ));
        }
        check_designation(&caller.designation, format!("caller \"{name_str}\": designation"), errors);
        for uid in &caller.uids {
            let uid_value = *uid.get_ref();
            if let Some(other) = table.by_uid.get(&uid_value) {
                errors.push(source.error_at(
                    uid.span(),
                    format!("uid {uid_value} is mapped to both caller \"{other}\" and caller \"{name_str}\""),
                    "a uid identifies one caller; remove it from one of them",
                ));
                continue;
            }
            table.by_uid.insert(uid_value, name_str.clone());
        }
        let mut attributes = Vec::new();
        for attribute in &caller.attributes {
            if !is_attribute_name(attribute.get_ref()) {
                errors.push(attribute_name_error(source, attribute));
            } else if !attributes.contains(attribute.get_ref()) {
                attributes.push(attribute.get_ref().clone());
            }
        }
        table.callers.insert(
            name_str.clone(),
            CallerPolicy { designation: caller.designation.get_ref().clone(), attributes, admin: caller.admin },
        );
    }
    Some(table)
}

fn compile_audit(source: &SourceFile, errors: &mut Vec<PolicyError>) -> Option<AuditSettings> {
    let file: AuditFile = parse(source, errors)?;
    let mut settings = AuditSettings { fsync: file.fsync, ..AuditSettings::default() };
    if let Some(key) = &file.signing_key {
        let path = std::path::PathBuf::from(key.get_ref());
        if path.is_absolute() {
            settings.signing_key = Some(path);
        } else {
            errors.push(source.error_at(
                key.span(),
                format!("signing_key {:?} is not an absolute path", key.get_ref()),
                "give the key's absolute path, outside every workspace and the policies (make one with `airlock audit keygen --out FILE`)",
            ));
        }
    }
    if let Some(every) = &file.checkpoint_every {
        match u64::try_from(*every.get_ref()) {
            Ok(n) if n > 0 => settings.checkpoint_every = n,
            _ => errors.push(source.error_at(
                every.span(),
                format!("checkpoint_every is {}, not a count above zero", every.get_ref()),
                "give the number of records between signed checkpoints, e.g. 100",
            )),
        }
    }
    let Some(patterns) = &file.redact else {
        return Some(settings);
    };
    let mut redact = Vec::new();
    for pattern in patterns {
        match regex::Regex::new(pattern.get_ref()) {
            Ok(_) => redact.push(pattern.get_ref().clone()),
            Err(e) => {
                let detail = match &e {
                    regex::Error::Syntax(text) => text.lines().last().unwrap_or(text).trim().to_string(),
                    other => other.to_string(),
                };
                errors.push(source.error_at(
                    pattern.span(),
                    format!("redact pattern {:?} is not a valid regex: {detail}", pattern.get_ref()),
                    "fix the regular expression (Rust regex syntax, https://docs.rs/regex/#syntax)",
                ));
            }
        }
    }
    Some(AuditSettings { redact, ..settings })
}

/// A TOML value as JSON. Datetimes and non-finite floats have no JSON form.
fn toml_to_json(value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map(Value::Number).ok_or_else(|| format!("{f} has no JSON form"))?
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => {
            return Err(format!("datetime {d} has no JSON form; quote it as a string"));
        }
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(table) => table_to_json(table)?,
    })
}

fn table_to_json(table: &toml::Table) -> Result<Value, String> {
    let mut map = serde_json::Map::new();
    for (key, value) in table {
        map.insert(key.clone(), toml_to_json(value)?);
    }
    Ok(Value::Object(map))
}

/// The span of the value at `path` (table keys, array indices as text) in the source, or
/// of the deepest part of the path that exists. Used to point schema errors at a line.
fn span_of_path(source: &SourceFile, path: &[String]) -> Option<Range<usize>> {
    let (root, _) = toml::de::DeTable::parse_recoverable(&source.text);
    let mut span = None;
    let mut table = Some(root.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    for part in path {
        let next = if let Some(t) = table {
            t.get(part.as_str())
        } else if let Some(a) = array {
            part.parse::<usize>().ok().and_then(|i| a.get(i))
        } else {
            None
        };
        let Some(next) = next else { break };
        span = Some(next.span());
        table = next.get_ref().as_table();
        array = next.get_ref().as_array();
    }
    span
}

/// A JSON pointer (`/a/b~1c`) as its parts.
fn pointer_parts(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(|p| p.replace("~1", "/").replace("~0", "~")).collect()
}

/// Compiles one tool file. Returns the tool and the span of its `name` when the parts that
/// evaluation needs compiled (even if other mistakes were found; those are in `errors`).
fn compile_tool(
    source: &SourceFile,
    root: &Path,
    categories: Option<&BTreeMap<String, String>>,
    seccomp_profiles: &BTreeMap<String, SeccompGrant>,
    errors: &mut Vec<PolicyError>,
) -> Option<(ToolPolicy, Range<usize>)> {
    let file: ToolFile = parse(source, errors)?;
    let stem =
        source.rel.strip_prefix("tools/").and_then(|n| n.strip_suffix(".toml")).unwrap_or(&source.rel).to_string();

    let name = file.name.get_ref();
    if !is_tool_name(name) {
        errors.push(source.error_at(
            file.name.span(),
            format!("tool name \"{name}\" is not a valid tool name"),
            "use letters, digits, `-` and `_`, starting with a letter or digit",
        ));
    }
    if *name != stem {
        errors.push(source.error_at(
            file.name.span(),
            format!("tool name \"{name}\" does not match its file name {stem}.toml"),
            format!("set name = \"{stem}\", or rename the file to tools/{name}.toml"),
        ));
    }
    require_text(source, &file.description, "description", errors);
    require_text(source, &file.justification, "justification", errors);

    // Categories.
    let known: Vec<&str> = categories.map(|c| c.keys().map(String::as_str).collect()).unwrap_or_default();
    if file.categories.get_ref().is_empty() {
        errors.push(source.error_at(
            file.categories.span(),
            "a tool needs at least one category",
            format!("list the risk categories the tool belongs to, from: {}", list_or_none(&known)),
        ));
    }
    let mut tool_categories: Vec<String> = Vec::new();
    for category in file.categories.get_ref() {
        let c = category.get_ref();
        if categories.is_some() && !known.contains(&c.as_str()) {
            errors.push(source.error_at(
                category.span(),
                format!("unknown category \"{c}\""),
                format!("use one of the categories declared in designations.toml: {}", list_or_none(&known)),
            ));
        } else if tool_categories.contains(c) {
            errors.push(source.error_at(
                category.span(),
                format!("category \"{c}\" is listed twice"),
                "list each category once",
            ));
        } else {
            tool_categories.push(c.clone());
        }
    }

    // Network.
    let mut network = Vec::new();
    for entry in &file.network {
        if is_host_port(entry.get_ref()) {
            network.push(entry.get_ref().clone());
        } else {
            errors.push(source.error_at(
                entry.span(),
                format!("network entry \"{}\" is not host:port", entry.get_ref()),
                "write a host name or address and a port 1-65535, e.g. \"pypi.org:443\" or \"[::1]:8080\"",
            ));
        }
    }

    // Backend: a module pinned by sha256, or a process (an absolute executable, optionally
    // pinned) with its jail settings.
    let backend = compile_backend(source, &file, root, seccomp_profiles, errors);
    let is_process = matches!(backend, Some((Program::Process { .. }, _)));
    let is_wasm = matches!(backend, Some((Program::Wasm { .. }, _)));

    // Input schema: an object schema that compiles as draft 2020-12.
    let input_span = file.input.span();
    let schema = match table_to_json(file.input.get_ref()) {
        Ok(schema) => Some(schema),
        Err(e) => {
            errors.push(source.error_at(
                input_span.clone(),
                format!("[input] cannot be read as JSON: {e}"),
                "use only strings, numbers, booleans, arrays and tables in the schema",
            ));
            None
        }
    };
    let mut validator = None;
    let mut properties: Vec<String> = Vec::new();
    if let Some(schema) = &schema {
        if schema.get("type") != Some(&Value::String("object".into())) {
            errors.push(source.error_at(
                span_of_path(source, &["input".into(), "type".into()]).unwrap_or(input_span.clone()),
                "[input] is not an object schema",
                "set type = \"object\" in [input]: a tool's arguments are a JSON object",
            ));
        }
        if let Some(Value::Object(props)) = schema.get("properties") {
            properties = props.keys().cloned().collect();
        }
        let meta_errors: Vec<(String, String)> = jsonschema::draft202012::meta::VALIDATOR
            .iter_errors(schema)
            .map(|e| (e.instance_path.as_str().to_string(), e.to_string()))
            .collect();
        if meta_errors.is_empty() {
            match jsonschema::draft202012::new(schema) {
                Ok(built) => validator = Some(built),
                Err(e) => {
                    let at = e.instance_path.as_str().to_string();
                    errors.push(schema_error(source, &input_span, &at, &e.to_string()));
                }
            }
        } else {
            for (at, message) in meta_errors {
                errors.push(schema_error(source, &input_span, &at, &message));
            }
        }
    }

    // Invoke: placeholders must parse and name properties of the input.
    let mut invocation = Some(Invocation::default());
    let placeholder_help =
        "placeholders are {name}, {name?TEXT} (a flag) or {name} inside text; write {{ and }} for literal braces";
    let check_names = |span: Range<usize>, names: Vec<&str>, errors: &mut Vec<PolicyError>| -> bool {
        let mut ok = true;
        for n in names {
            if !properties.iter().any(|p| p == n) {
                ok = false;
                let props: Vec<&str> = properties.iter().map(String::as_str).collect();
                errors.push(source.error_at(
                    span.clone(),
                    format!("placeholder {{{n}}} names no argument: \"{n}\" is not a property of [input]"),
                    format!(
                        "use one of the [input] properties ({}), or declare [input.properties.{n}]",
                        list_or_none(&props)
                    ),
                ));
            }
        }
        ok
    };
    let process_tail: Vec<&Spanned<String>> =
        file.backend.get_ref().process.as_ref().map(|argv| argv.get_ref().iter().skip(1).collect()).unwrap_or_default();
    for element in process_tail.into_iter().chain(file.invoke.args.iter()) {
        match ArgTemplate::parse(element.get_ref()) {
            Ok(template) => {
                if !check_names(element.span(), template.names(), errors) {
                    invocation = None;
                }
                if let Some(inv) = invocation.as_mut() {
                    inv.args.push(template);
                }
            }
            Err(e) => {
                invocation = None;
                errors.push(source.error_at(element.span(), format!("invoke.args: {e}"), placeholder_help));
            }
        }
    }
    if let Some(stdin) = &file.invoke.stdin {
        match StdinTemplate::parse(stdin.get_ref()) {
            Ok(template) => {
                if !check_names(stdin.span(), vec![template.0.as_str()], errors) {
                    invocation = None;
                }
                if let Some(inv) = invocation.as_mut() {
                    inv.stdin = Some(template);
                }
            }
            Err(e) => {
                invocation = None;
                errors.push(source.error_at(
                    stdin.span(),
                    format!("invoke.stdin: {e}"),
                    "write stdin = \"{name}\" where name is a property of [input]",
                ));
            }
        }
    }

    // Files.
    let mut files = FileGrants::default();
    for entry in &file.files.host_read {
        if is_wasm {
            errors.push(process_only(source, entry.span(), "files.host_read"));
            continue;
        }
        match HostPath::parse(entry.get_ref()) {
            Ok(path) if !files.host_read.contains(&path) => files.host_read.push(path),
            Ok(_) => {}
            Err(reason) => errors.push(source.error_at(
                entry.span(),
                format!("files.host_read: {reason}"),
                "write an absolute host path, optionally with $NAME, ${NAME} or ${NAME:-DEFAULT} (e.g. \"${CARGO_HOME:-$HOME/.cargo}\")",
            )),
        }
    }
    let protected = &file.files.protected;
    for (list, entries, out) in [
        ("read", &file.files.read, &mut files.read),
        ("write", &file.files.write, &mut files.write),
        ("protected", protected, &mut files.protected),
    ] {
        for entry in entries {
            match WorkspacePath::parse(entry.get_ref()) {
                Ok(path) if list == "protected" && path.as_str() == "." => errors.push(source.error_at(
                    entry.span(),
                    "files.protected = [\".\"] would protect the whole workspace",
                    "list the evaluation criteria (tests, graders); a read-only workspace is `files.read`",
                )),
                Ok(path) => {
                    if !out.contains(&path) {
                        out.push(path);
                    }
                }
                Err(e) => errors.push(source.error_at(
                    entry.span(),
                    format!("files.{list}: {e}"),
                    "use a path relative to the call's workspace, without `..`: \".\" (the whole workspace) or e.g. \"out\"",
                )),
            }
        }
    }

    // Env.
    let mut env = EnvGrants::default();
    for name in &file.env.pass {
        if is_env_name(name.get_ref()) {
            env.pass.push(name.get_ref().clone());
        } else {
            errors.push(env_name_error(source, name));
        }
    }
    for (name, value) in &file.env.set {
        if !is_env_name(name.get_ref()) {
            errors.push(env_name_error(source, name));
            continue;
        }
        if value.get_ref().contains('\0') {
            errors.push(source.error_at(
                value.span(),
                format!("env.set {} contains a NUL character", name.get_ref()),
                "remove the NUL: environment values cannot contain it",
            ));
            continue;
        }
        if env.pass.contains(name.get_ref()) {
            errors.push(source.error_at(
                name.span(),
                format!("env {} is both passed and set", name.get_ref()),
                "keep it in one of env.pass (copied from airlock's environment) or env.set (a literal)",
            ));
            continue;
        }
        env.set.insert(name.get_ref().clone(), value.get_ref().clone());
    }

    // Limits: each applies to one kind of backend (or both), with its own ceiling.
    let mut limits = Limits::default();
    let (wasm, process) = (Some(true), Some(false));
    let memory_max = if is_process { MAX_PROCESS_MEMORY_MIB } else { MAX_MEMORY_MIB };
    for (key, value, max, only_wasm, slot) in [
        ("wall_ms", &file.limits.wall_ms, MAX_WALL_MS, None, &mut limits.wall_ms),
        ("fuel", &file.limits.fuel, MAX_FUEL, wasm, &mut limits.fuel),
        ("memory_mib", &file.limits.memory_mib, memory_max, None, &mut limits.memory_mib),
        ("output_bytes", &file.limits.output_bytes, MAX_OUTPUT_BYTES, None, &mut limits.output_bytes),
        ("table_elements", &file.limits.table_elements, MAX_TABLE_ELEMENTS, wasm, &mut limits.table_elements),
        ("instances", &file.limits.instances, MAX_INSTANCES, wasm, &mut limits.instances),
        ("cpu_seconds", &file.limits.cpu_seconds, MAX_CPU_SECONDS, process, &mut limits.cpu_seconds),
        ("pids", &file.limits.pids, MAX_PIDS, process, &mut limits.pids),
        ("file_size_mib", &file.limits.file_size_mib, MAX_FILE_SIZE_MIB, process, &mut limits.file_size_mib),
        ("open_files", &file.limits.open_files, MAX_OPEN_FILES, process, &mut limits.open_files),
        ("tmp_mib", &file.limits.tmp_mib, MAX_TMP_MIB, process, &mut limits.tmp_mib),
    ] {
        let Some(value) = value else { continue };
        let v = *value.get_ref();
        if only_wasm == Some(true) && is_process {
            errors.push(source.error_at(
                value.span(),
                format!("limits.{key} applies to wasm tools only"),
                format!("remove limits.{key}: a process tool is bounded by cpu_seconds, memory_mib, pids, file_size_mib and open_files"),
            ));
        } else if only_wasm == Some(false) && is_wasm {
            errors.push(process_only(source, value.span(), &format!("limits.{key}")));
        } else if v == 0 {
            errors.push(source.error_at(
                value.span(),
                format!("limits.{key} is 0, which no call can run under"),
                format!("set limits.{key} to at least 1 (at most {max}), or remove it for the default ({slot})"),
            ));
        } else if v > max {
            errors.push(source.error_at(
                value.span(),
                format!("limits.{key} = {v} is more than the maximum {max}"),
                format!("set limits.{key} to at most {max}, or remove it for the default ({slot})"),
            ));
        } else {
            *slot = v;
        }
    }

    let (Some(validator), Some(invocation), Some(schema), Some((program, jail))) =
        (validator, invocation, schema, backend)
    else {
        return None;
    };
    let tool = ToolPolicy {
        name: name.clone(),
        file: source.rel.clone(),
        description: file.description.get_ref().clone(),
        justification: file.justification.get_ref().clone(),
        categories: tool_categories,
        network,
        program,
        jail,
        input_schema: schema,
        validator,
        invocation,
        files,
        env,
        limits,
    };

    // Examples, checked against the compiled tool.
    for (index, example) in file.examples.iter().enumerate() {
        if let Some(error) = check_tool_example(source, &tool, index + 1, example) {
            errors.push(error);
        }
    }
    Some((tool, file.name.span()))
}

/// An error for a setting only process tools take, found in a wasm tool.
fn process_only(source: &SourceFile, span: Range<usize>, what: &str) -> PolicyError {
    source.error_at(
        span,
        format!("{what} applies to process tools only"),
        format!("remove {what}, or make the tool a process tool (backend.process)"),
    )
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Compiles `[backend]`: exactly one of `wasm` (its sha256 required and checked) or
/// `process` (argv[0] an absolute, existing executable; its sha256 checked when pinned;
/// the seccomp profile known; best-effort layers optional ones). `None` when it cannot be
/// compiled (the errors say why).
fn compile_backend(
    source: &SourceFile,
    file: &ToolFile,
    root: &Path,
    seccomp_profiles: &BTreeMap<String, SeccompGrant>,
    errors: &mut Vec<PolicyError>,
) -> Option<(Program, JailGrant)> {
    let backend_span = file.backend.span();
    let backend = file.backend.get_ref();
    let pinned = backend.sha256.as_ref().and_then(|pinned| {
        if is_sha256_hex(pinned.get_ref()) {
            Some(pinned.get_ref().clone())
        } else {
            errors.push(source.error_at(
                pinned.span(),
                format!("sha256 \"{}\" is not 64 lowercase hex digits", pinned.get_ref()),
                "pin the file with the output of `sha256sum FILE` (64 lowercase hex digits)",
            ));
            None
        }
    });
    let check_pin = |path: &Path, errors: &mut Vec<PolicyError>| -> bool {
        let Some(pinned) = &pinned else { return true };
        let Some(span) = backend.sha256.as_ref().map(Spanned::span) else {
            return true;
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let actual = hex::encode(Sha256::digest(&bytes));
                if actual == *pinned {
                    return true;
                }
                errors.push(source.error_at(
                    span,
                    format!("the sha256 of {} is {actual}, but the policy pins {pinned}", path.display()),
                    format!("if the change is intended, pin it: sha256 = \"{actual}\""),
                ));
                false
            }
            Err(_) => false,
        }
    };
    match (&backend.wasm, &backend.process) {
        (Some(_), Some(process)) => {
            errors.push(source.error_at(
                process.span(),
                "[backend] has both `wasm` and `process`",
                "keep one: `wasm` for a module, `process` for a native program run in the jail",
            ));
            None
        }
        (None, None) => {
            errors.push(source.error_at(
                backend_span.clone(),
                "[backend] has neither `wasm` nor `process`",
                "set `wasm = \"PATH.wasm\"` (with its sha256) or `process = [\"/absolute/executable\", ...]`",
            ));
            None
        }
        (Some(wasm), None) => {
            for (what, span) in [
                ("backend.seccomp", backend.seccomp.as_ref().map(Spanned::span)),
                ("backend.best_effort", backend.best_effort.first().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    errors.push(process_only(source, span, what));
                }
            }
            if backend.sha256.is_none() {
                errors.push(source.error_at(
                    backend_span.clone(),
                    "missing field `sha256`: a wasm module needs its sha256 pinned",
                    "add `sha256` = \"...\" to [backend] (the output of `sha256sum MODULE.wasm`)",
                ));
            }
            let module_path = root.join(wasm.get_ref());
            if let Err(e) = std::fs::metadata(&module_path) {
                errors.push(source.error_at(
                    wasm.span(),
                    format!("module file {} cannot be read: {e}", module_path.display()),
                    format!(
                        "build the module, or fix `wasm` (it is relative to the policy directory {})",
                        root.display()
                    ),
                ));
                return None;
            }
            check_pin(&module_path, errors);
            let sha256 = pinned?;
            let module = std::fs::canonicalize(&module_path).unwrap_or(module_path);
            Some((Program::Wasm { module, sha256 }, JailGrant::default()))
        }
        (None, Some(process)) => {
            let Some(first) = process.get_ref().first() else {
                errors.push(source.error_at(
                    process.span(),
                    "backend.process is empty",
                    "write the program's argv: [\"/absolute/executable\", \"{argument}\", ...]",
                ));
                return None;
            };
            let executable = Path::new(first.get_ref());
            if !executable.is_absolute() || first.get_ref().contains(['{', '}']) {
                errors.push(source.error_at(
                    first.span(),
                    format!("the executable \"{}\" is not an absolute path", first.get_ref()),
                    "name the executable by its absolute path (e.g. /usr/bin/python3); placeholders may follow it",
                ));
                return None;
            }
            match std::fs::metadata(executable) {
                Ok(meta)
                    if meta.is_file() && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0 => {}
                Ok(_) => {
                    errors.push(source.error_at(
                        first.span(),
                        format!("{} is not an executable file", executable.display()),
                        "name an executable regular file",
                    ));
                    return None;
                }
                Err(e) => {
                    errors.push(source.error_at(
                        first.span(),
                        format!("the executable {} cannot be found: {e}", executable.display()),
                        "install it, or fix the path",
                    ));
                    return None;
                }
            }
            if !check_pin(executable, errors) {
                return None;
            }
            let mut jail = JailGrant::default();
            let profile_name = backend.seccomp.as_ref().map_or(DEFAULT_SECCOMP_PROFILE, |name| name.get_ref().as_str());
            match seccomp_profiles.get(profile_name) {
                Some(profile) => jail.seccomp = Some(profile.clone()),
                None => {
                    let known: Vec<&str> = seccomp_profiles.keys().map(String::as_str).collect();
                    let message =
                        format!("there is no seccomp profile \"{profile_name}\" (seccomp/{profile_name}.json)");
                    let help = format!("use one of the profiles in seccomp/: {}", list_or_none(&known));
                    match &backend.seccomp {
                        Some(name) => errors.push(source.error_at(name.span(), message, help)),
                        None => errors.push(source.error_at(process.span(), message, help)),
                    }
                }
            }
            for entry in &backend.best_effort {
                let optional: Vec<&str> = Layer::OPTIONAL.iter().map(|l| l.name()).collect();
                match Layer::from_name(entry.get_ref()) {
                    Some(layer) if Layer::OPTIONAL.contains(&layer) => {
                        if !jail.best_effort.contains(&layer) {
                            jail.best_effort.push(layer);
                        }
                    }
                    Some(_) => errors.push(source.error_at(
                        entry.span(),
                        format!("layer \"{}\" cannot be best-effort: the jail is built on it", entry.get_ref()),
                        format!("list only layers a kernel may lack: {}", optional.join(", ")),
                    )),
                    None => errors.push(source.error_at(
                        entry.span(),
                        format!("there is no isolation layer \"{}\"", entry.get_ref()),
                        format!("list only layers a kernel may lack: {}", optional.join(", ")),
                    )),
                }
            }
            Some((Program::Process { executable: executable.to_path_buf(), sha256: pinned }, jail))
        }
    }
}

fn env_name_error(source: &SourceFile, name: &Spanned<String>) -> PolicyError {
    source.error_at(
        name.span(),
        format!("\"{}\" is not a valid environment variable name", name.get_ref()),
        "use letters, digits and `_`, not starting with a digit (e.g. LANG, LC_ALL)",
    )
}

fn schema_error(source: &SourceFile, input_span: &Range<usize>, at: &str, message: &str) -> PolicyError {
    let mut path = vec!["input".to_string()];
    path.extend(pointer_parts(at));
    let span = span_of_path(source, &path).unwrap_or(input_span.clone());
    let at = if at.is_empty() { "[input]".to_string() } else { format!("[input]{at}") };
    source.error_at(
        span,
        format!("invalid input schema at {at}: {message}"),
        "fix the schema: it must be valid JSON Schema draft 2020-12 (https://json-schema.org/understanding-json-schema/)",
    )
}

/// Runs one `[[examples]]` entry: the arguments must give `args`, or be denied with a
/// reason containing `deny`.
fn check_tool_example(
    source: &SourceFile,
    tool: &ToolPolicy,
    number: usize,
    example: &Spanned<super::file::ToolExampleFile>,
) -> Option<PolicyError> {
    let body = example.get_ref();
    let at = |message: String, help: &str| Some(source.error_at(example.span(), message, help));
    let arguments = match table_to_json(&body.arguments) {
        Ok(arguments) => arguments,
        Err(e) => {
            return at(
                format!("example {number}: arguments cannot be read as JSON: {e}"),
                "use only strings, numbers, booleans, arrays and tables",
            );
        }
    };
    let result: Result<Vec<String>, String> = tool
        .check_arguments(&arguments)
        .map_err(|errors| errors.join("; "))
        .and_then(|args| tool.render(&args).map(|(argv, _)| argv).map_err(|e| e.to_string()));
    match (&body.args, &body.deny, result) {
        (Some(_), Some(_), _) | (None, None, _) => at(
            format!("example {number} needs exactly one of `args` or `deny`"),
            "set `args` (the expected argv after argv[0]) or `deny` (a substring of the denial reason)",
        ),
        (Some(expected), None, Ok(got)) if *expected == got => None,
        (Some(expected), None, Ok(got)) => at(
            format!("example {number}: expected args {expected:?} but got {got:?}"),
            "fix [invoke].args, or the example's `args` if the new argv is right",
        ),
        (Some(expected), None, Err(reason)) => at(
            format!("example {number}: expected args {expected:?} but the arguments were denied: {reason}"),
            "fix the [input] schema, or the example's arguments",
        ),
        (None, Some(expected), Ok(got)) => at(
            format!(
                "example {number}: expected a denial containing {expected:?} but the arguments were accepted (args {got:?})"
            ),
            "tighten the [input] schema so these arguments are rejected, or fix the example",
        ),
        (None, Some(expected), Err(reason)) if reason.contains(expected.as_str()) => None,
        (None, Some(expected), Err(reason)) => at(
            format!("example {number}: expected a denial containing {expected:?} but got: {reason}"),
            "set `deny` to a substring of the actual reason",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_accepts_names_addresses_and_rejects_the_rest() {
        for ok in ["pypi.org:443", "127.0.0.1:8080", "[::1]:80", "localhost:1"] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in ["pypi.org", "pypi.org:0", "pypi.org:70000", ":443", "*.x.org:443", "a b:1", "[zz]:1", "x:-1"] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn env_names_are_posix_portable() {
        assert!(is_env_name("LANG") && is_env_name("_X1") && is_env_name("lc_all"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name("") && !is_env_name("A=B"));
    }

    #[test]
    fn digest_depends_on_paths_and_contents() {
        let a: BTreeMap<String, String> = [("x.toml".to_string(), "aa".to_string())].into();
        let b: BTreeMap<String, String> = [("x.toml".to_string(), "ab".to_string())].into();
        let c: BTreeMap<String, String> = [("y.toml".to_string(), "aa".to_string())].into();
        assert_ne!(policy_digest(&a), policy_digest(&b));
        assert_ne!(policy_digest(&a), policy_digest(&c));
        assert_eq!(policy_digest(&a).len(), 64);
    }

    #[test]
    fn pointer_parts_unescape() {
        assert_eq!(pointer_parts("/properties/a~1b/type"), vec!["properties", "a/b", "type"]);
        assert!(pointer_parts("").is_empty());
    }
}
