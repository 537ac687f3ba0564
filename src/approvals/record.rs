//! One approval: its fields, the binding that ties it to one exact call, and its file
//! format.
//!
//! Owns: [`Approval`], [`ApprovalState`], [`binding`], and the encoding of an approval as
//! a file (with its format tag and checksum) and the checks made when one is read back.
//! Must not: touch files or decide anything; `store` reads and writes, the module root
//! decides.
//!
//! # Binding
//!
//! `binding = hex(sha256(DOMAIN || field(tool) || field(canonical_json(arguments)) ||
//! field(workspace) || field(caller)))`, where `DOMAIN` is [`BINDING_DOMAIN`],
//! `field(b)` is the length of `b` as 8 bytes big-endian followed by `b`, `arguments` are
//! the call's arguments before redaction in the canonical JSON of the audit log
//! ([`crate::audit::canonical_json`]), and `workspace` is the raw bytes of the canonical
//! (symlink-free, absolute) workspace path. The length prefixes make the encoding
//! injective: no two different calls share the bytes that are hashed.
//!
//! # File
//!
//! One JSON object (pretty-printed, for people who `cat` it): `format` (=
//! [`FORMAT`]), the fields of [`Approval`], and `checksum` = hex sha256 of the canonical
//! JSON of the object without `checksum`. A file that is not such an object, names another
//! format, fails its checksum, or whose fields contradict each other (uses left above uses
//! granted, an approved approval without an approver, ...) is corrupt, and no call runs
//! on it. The checksum catches damage and careless edits, not an attacker: whoever can
//! write the approvals directory can approve anything (the directory is the trust
//! boundary, created 0700).

use std::{
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::audit::canonical_json;

/// The format tag of an approval file; a file with another tag is not read.
pub const FORMAT: &str = "airlock-approval/1";

/// The first bytes hashed into every binding, so that a binding can never equal the
/// sha256 of some other airlock structure.
pub const BINDING_DOMAIN: &[u8] = b"airlock approval binding v1\0";

/// Where an approval is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalState {
    /// Waiting for a human; the call did not run.
    Pending,
    /// A human approved it; it lets the bound call run `uses_left` more times.
    Approved,
    /// A human denied it; the bound call is refused with the reason until it expires.
    Denied,
    /// Its time ran out before it was decided or used up.
    Expired,
    /// Approved, and every granted use has been taken.
    Used,
}

impl ApprovalState {
    /// The state's name as in files and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Used => "used",
        }
    }
}

impl std::fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One approval: a human's answer (or the wait for one) for one exact call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// 128 random bits, 32 lowercase hex digits: unguessable, so knowing an id gives
    /// nothing.
    pub id: String,
    /// Its state. [`Approval::state_at`] gives the state with expiry applied; approvals
    /// handed out by [`crate::approvals::Approvals`] already have it applied.
    pub state: ApprovalState,
    /// The binding (see the module header): only the call with these exact tool,
    /// arguments, workspace and caller can use it.
    pub binding: String,
    /// The tool.
    pub tool: String,
    /// The caller whose call it is; nobody else's call can use it.
    pub caller: String,
    /// The canonical workspace.
    pub workspace: PathBuf,
    /// The session of the call that asked (for the human's information only; not bound).
    pub session: Option<String>,
    /// The arguments, redacted as the audit log redacts them.
    pub arguments: Value,
    /// sha256 of the canonical JSON of the arguments before redaction (the audit record's
    /// `arguments_sha256`).
    pub arguments_sha256: String,
    /// The policy rule that asked for a human.
    pub rule: String,
    /// When the call first asked, RFC 3339 UTC.
    pub created: String,
    /// When it stops being decidable or usable, RFC 3339 UTC.
    pub expires: String,
    /// How many runs the human granted (0 until approved).
    pub uses_granted: u32,
    /// How many of those are left.
    pub uses_left: u32,
    /// Who decided.
    pub approver: Option<String>,
    /// When they decided, RFC 3339 UTC.
    pub decided: Option<String>,
    /// Why it was denied (required for a denial).
    pub reason: Option<String>,
}

impl Approval {
    /// When it expires (`None` only for an approval not read through the store's checks).
    pub fn expires_at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(&self.expires).ok()
    }

    /// True once `now` has reached the expiry (an unparsable expiry counts as expired).
    pub fn is_past_expiry(&self, now: SystemTime) -> bool {
        self.expires_at().is_none_or(|expires| now >= expires)
    }

    /// The state at `now`: a pending or approved approval past its expiry is expired.
    pub fn state_at(&self, now: SystemTime) -> ApprovalState {
        match self.state {
            ApprovalState::Pending | ApprovalState::Approved if self.is_past_expiry(now) => ApprovalState::Expired,
            state => state,
        }
    }

    /// The file name it is stored under: `<binding>-<id>.json`, so the approvals of one
    /// call are found by listing the directory, without reading other files.
    pub fn file_name(&self) -> String {
        file_name(&self.binding, &self.id)
    }
}

/// `<binding>-<id>.json`.
pub(crate) fn file_name(binding: &str, id: &str) -> String {
    format!("{binding}-{id}.json")
}

/// The binding of one call (see the module header). `workspace` must be canonical.
pub fn binding(tool: &str, arguments: &Value, workspace: &Path, caller: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(BINDING_DOMAIN);
    let arguments = canonical_json(arguments);
    for field in [tool.as_bytes(), &arguments, workspace.as_os_str().as_bytes(), caller.as_bytes()] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field);
    }
    hex::encode(hasher.finalize())
}

/// True for `len` lowercase hex digits.
pub(crate) fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The file bytes of an approval (see the module header).
pub(crate) fn encode(approval: &Approval) -> Result<Vec<u8>, serde_json::Error> {
    let Value::Object(fields) = serde_json::to_value(approval)? else {
        return Err(serde::ser::Error::custom("an approval did not encode as a JSON object"));
    };
    let mut object = Map::with_capacity(fields.len() + 2);
    object.insert("format".into(), Value::from(FORMAT));
    object.extend(fields);
    let checksum = hex::encode(Sha256::digest(canonical_json(&Value::Object(object.clone()))));
    object.insert("checksum".into(), Value::from(checksum));
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(object))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reads an approval back from its file bytes, or says why they are not a valid one.
pub(crate) fn decode(bytes: &[u8]) -> Result<Approval, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("it is not JSON ({e})"))?;
    let Value::Object(mut object) = value else {
        return Err("it is JSON but not an object".into());
    };
    let checksum = match object.remove("checksum") {
        Some(Value::String(checksum)) => checksum,
        _ => return Err("it has no string `checksum`".into()),
    };
    let actual = hex::encode(Sha256::digest(canonical_json(&Value::Object(object.clone()))));
    if actual != checksum {
        return Err(format!(
            "its checksum does not match its content (recorded {checksum}, computed {actual}): \
             it was damaged or edited"
        ));
    }
    match object.remove("format") {
        Some(Value::String(format)) if format == FORMAT => {}
        Some(other) => return Err(format!("its format is {other}, not \"{FORMAT}\"")),
        None => return Err(format!("it has no `format` (expected \"{FORMAT}\")")),
    }
    let approval: Approval =
        serde_json::from_value(Value::Object(object)).map_err(|e| format!("its fields are not an approval ({e})"))?;
    check(&approval)?;
    Ok(approval)
}

/// The invariants every stored approval keeps; a file that breaks one is corrupt.
fn check(a: &Approval) -> Result<(), String> {
    if !is_hex(&a.id, 32) {
        return Err(format!("its id {:?} is not 32 lowercase hex digits", a.id));
    }
    if !is_hex(&a.binding, 64) || !is_hex(&a.arguments_sha256, 64) {
        return Err("its binding or arguments_sha256 is not 64 lowercase hex digits".into());
    }
    for (name, time) in [("created", Some(&a.created)), ("expires", Some(&a.expires)), ("decided", a.decided.as_ref())]
    {
        if let Some(time) = time
            && humantime::parse_rfc3339_weak(time).is_err()
        {
            return Err(format!("its `{name}` {time:?} is not an RFC 3339 time"));
        }
    }
    if a.uses_left > a.uses_granted {
        return Err(format!("it has {} uses left of {} granted", a.uses_left, a.uses_granted));
    }
    let decided = a.approver.is_some() && a.decided.is_some();
    let consistent = match a.state {
        ApprovalState::Pending => a.approver.is_none() && a.decided.is_none() && a.uses_granted == 0,
        ApprovalState::Approved => decided && a.uses_left >= 1,
        ApprovalState::Used => decided && a.uses_granted >= 1 && a.uses_left == 0,
        ApprovalState::Denied => decided && a.reason.is_some() && a.uses_granted == 0,
        // Expired from pending (never decided) or from approved (decided, uses left).
        ApprovalState::Expired => a.approver.is_some() == a.decided.is_some(),
    };
    if !consistent {
        return Err(format!("its fields contradict its state \"{}\" (approver, decided time, reason, uses)", a.state));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Approval {
        Approval {
            id: "0123456789abcdef0123456789abcdef".into(),
            state: ApprovalState::Pending,
            binding: binding("wc", &json!({"path": "a"}), Path::new("/w"), "agent"),
            tool: "wc".into(),
            caller: "agent".into(),
            workspace: "/w".into(),
            session: None,
            arguments: json!({"path": "a"}),
            arguments_sha256: crate::audit::arguments_sha256(&json!({"path": "a"})),
            rule: "designations.toml: approve".into(),
            created: "2026-11-27T10:00:00.000000Z".into(),
            expires: "2026-11-27T11:00:00.000000Z".into(),
            uses_granted: 0,
            uses_left: 0,
            approver: None,
            decided: None,
            reason: None,
        }
    }

    #[test]
    fn binding_separates_every_field() {
        let w = Path::new("/w");
        let base = binding("wc", &json!({"path": "a"}), w, "agent");
        assert_eq!(base, binding("wc", &json!({"path": "a"}), w, "agent"));
        assert_ne!(base, binding("wc2", &json!({"path": "a"}), w, "agent"));
        assert_ne!(base, binding("wc", &json!({"path": "b"}), w, "agent"));
        assert_ne!(base, binding("wc", &json!({"path": "a"}), Path::new("/x"), "agent"));
        assert_ne!(base, binding("wc", &json!({"path": "a"}), w, "ci"));
        // Moving bytes from one field to the next changes the binding (length prefixes).
        assert_ne!(binding("ab", &json!(1), w, "c"), binding("a", &json!(1), w, "bc"));
        // Key order does not matter: canonical JSON.
        let two = binding("t", &json!({"a": 1, "b": 2}), w, "c");
        let mut map = Map::new();
        map.insert("b".into(), json!(2));
        map.insert("a".into(), json!(1));
        assert_eq!(two, binding("t", &Value::Object(map), w, "c"));
    }

    #[test]
    fn encode_decode_round_trip() {
        let a = sample();
        assert_eq!(decode(&encode(&a).unwrap()).unwrap(), a);
    }

    #[test]
    fn decode_refuses_edits_and_contradictions() {
        let text = String::from_utf8(encode(&sample()).unwrap()).unwrap();
        let edited = text.replace("\"pending\"", "\"approved\"");
        assert!(decode(edited.as_bytes()).unwrap_err().contains("checksum"));
        assert!(decode(b"{\"id\": ").unwrap_err().contains("not JSON"));
        let mut a = sample();
        a.state = ApprovalState::Approved;
        assert!(decode(&encode(&a).unwrap()).unwrap_err().contains("contradict"));
        let mut a = sample();
        a.id = "../../etc/passwd".into();
        assert!(decode(&encode(&a).unwrap()).unwrap_err().contains("32 lowercase hex"));
    }

    #[test]
    fn expiry_turns_pending_and_approved_into_expired() {
        let a = sample();
        let before = humantime::parse_rfc3339_weak("2026-11-27T10:59:59Z").unwrap();
        let after = humantime::parse_rfc3339_weak("2026-11-27T11:00:00Z").unwrap();
        assert_eq!(a.state_at(before), ApprovalState::Pending);
        assert_eq!(a.state_at(after), ApprovalState::Expired);
        let mut denied = a.clone();
        denied.state = ApprovalState::Denied;
        assert_eq!(denied.state_at(after), ApprovalState::Denied);
    }
}
