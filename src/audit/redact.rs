//! Redaction of secrets before a record is written: argument keys (at any depth) and env
//! names that match a pattern have their value replaced by its digest.
//!
//! Owns: the patterns (`audit.toml` `redact`, or [`DEFAULT_REDACT_PATTERNS`]) and the
//! replacement text `[redacted sha256:<hex>]`, where `<hex>` is the sha256 of the
//! canonical JSON of the value replaced (for a string: the string in quotes), so two
//! records can still be compared without revealing the secret.
//! Must not: change anything but the values of matching keys; it never drops a key.

use std::collections::BTreeMap;

use regex::RegexSet;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{AuditError, Result, record::canonical_json};

/// Names redacted when `audit.toml` does not say otherwise. Guards against credentials
/// passed as arguments or env reaching a log that many people and tools read.
pub const DEFAULT_REDACT_PATTERNS: &[&str] = &[
    "(?i)(passw(or)?d|secret|token|api[_-]?key|credential|private[_-]?key|auth)",
    "(?i)(passphrase|cookie|bearer|signature|session[_-]?key)",
];

/// Which names are secret. [`Redactor::default`] uses [`DEFAULT_REDACT_PATTERNS`];
/// [`Redactor::none`] redacts nothing.
#[derive(Debug, Clone)]
pub struct Redactor {
    patterns: Vec<String>,
    /// `None` only if the built-in defaults failed to compile (a unit test shows they do
    /// not): then every key is redacted, failing closed.
    set: Option<RegexSet>,
}

impl Default for Redactor {
    fn default() -> Self {
        let patterns: Vec<String> = DEFAULT_REDACT_PATTERNS.iter().map(|p| (*p).to_owned()).collect();
        let set = RegexSet::new(&patterns).ok();
        Redactor { patterns, set }
    }
}

impl Redactor {
    /// A redactor from regex patterns (unanchored: a pattern matches anywhere in a name).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Redactor> {
        for p in patterns {
            if let Err(e) = regex::Regex::new(p.as_ref()) {
                return Err(AuditError::BadRedactPattern { pattern: p.as_ref().to_owned(), source: Box::new(e) });
            }
        }
        let patterns: Vec<String> = patterns.iter().map(|p| p.as_ref().to_owned()).collect();
        let set = RegexSet::new(&patterns)
            .map_err(|e| AuditError::BadRedactPattern { pattern: patterns.join(" | "), source: Box::new(e) })?;
        Ok(Redactor { patterns, set: Some(set) })
    }

    /// A redactor that redacts nothing.
    pub fn none() -> Redactor {
        Redactor { patterns: Vec::new(), set: Some(RegexSet::empty()) }
    }

    /// The patterns.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// True when values under the key or env name `name` are redacted.
    pub fn matches(&self, name: &str) -> bool {
        self.set.as_ref().is_none_or(|set| set.is_match(name))
    }

    /// `[redacted sha256:<hex of canonical JSON of value>]`.
    pub fn redacted(value: &Value) -> String {
        format!("[redacted sha256:{}]", hex::encode(Sha256::digest(canonical_json(value))))
    }

    /// The arguments with the value of every matching object key, at any depth (inside
    /// arrays too), replaced by [`Redactor::redacted`].
    pub fn redact_arguments(&self, arguments: &Value) -> Value {
        match arguments {
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (key, value) in map {
                    let value = if self.matches(key) {
                        Value::String(Redactor::redacted(value))
                    } else {
                        self.redact_arguments(value)
                    };
                    out.insert(key.clone(), value);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.redact_arguments(v)).collect()),
            other => other.clone(),
        }
    }

    /// The env with the value of every matching name replaced by [`Redactor::redacted`]
    /// of the value as a JSON string.
    pub fn redact_env(&self, mut env: BTreeMap<String, String>) -> BTreeMap<String, String> {
        for (name, value) in env.iter_mut() {
            if self.matches(name) {
                *value = Redactor::redacted(&Value::String(std::mem::take(value)));
            }
        }
        env
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_patterns_compile() {
        assert!(Redactor::default().set.is_some());
        assert!(RegexSet::new(DEFAULT_REDACT_PATTERNS).is_ok());
    }

    #[test]
    fn nested_keys_are_redacted_with_their_digest() {
        let r = Redactor::default();
        let args = json!({"input": "a.csv", "opts": [{"api_key": "sk-123", "depth": 2}], "Password": {"x": 1}});
        let out = r.redact_arguments(&args);
        assert_eq!(out["input"], "a.csv");
        assert_eq!(out["opts"][0]["depth"], 2);
        let digest = hex::encode(Sha256::digest(br#""sk-123""#));
        assert_eq!(out["opts"][0]["api_key"], format!("[redacted sha256:{digest}]"));
        let digest = hex::encode(Sha256::digest(br#"{"x":1}"#));
        assert_eq!(out["Password"], format!("[redacted sha256:{digest}]"));
        assert!(!out.to_string().contains("sk-123"));
    }

    #[test]
    fn env_names_are_redacted() {
        let env =
            BTreeMap::from([("LANG".to_owned(), "C".to_owned()), ("GITHUB_TOKEN".to_owned(), "ghp_x".to_owned())]);
        let out = Redactor::default().redact_env(env);
        assert_eq!(out["LANG"], "C");
        assert_eq!(out["GITHUB_TOKEN"], Redactor::redacted(&json!("ghp_x")));
    }

    #[test]
    fn none_redacts_nothing_and_bad_patterns_are_errors() {
        assert!(!Redactor::none().matches("password"));
        assert!(matches!(Redactor::new(&["(unclosed"]), Err(AuditError::BadRedactPattern { .. })));
    }
}
