//! Signed checkpoints: an Ed25519 key signs the head of the chain every N records and at
//! shutdown, so that whoever can write the log file, but not read the key, cannot forge a
//! consistent history.
//!
//! Owns: the key files (private: the 32-byte seed as 64 hex digits, mode 0600 and refused
//! when group or others may read it; public: `FILE.pub`, 64 hex digits), `airlock audit
//! keygen`, the [`Checkpoint`] a checkpoint record carries, and the exact bytes signed.
//! Must not: write the log (the writer seals checkpoint records into the chain) or walk it
//! (`verify` checks each checkpoint it meets with [`Checkpoint::check`]).
//!
//! # Checkpoint record
//!
//! A record like any other in the chain (numbered, `prev`, `hash`), with `caller`
//! `airlock`, `tool` `airlock/audit.checkpoint`, and a `checkpoint` object: `from_seq`
//! and `to_seq` (the records written since the writer's previous checkpoint), `head_hash`
//! (the `hash` of record `to_seq`, which is this record's `prev`), `public_key` (hex) and
//! `signature`: hex of the Ed25519 signature over
//! `"airlock-audit-checkpoint-v1\n" || to_seq || "\n" || head_hash || "\n"` (decimal seq,
//! lowercase hex hash). The head hash chains every record before it, so one valid
//! signature vouches for the whole history up to `to_seq`.

use std::{
    fmt,
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{AuditError, Result};

/// The domain-separation prefix of the signed bytes.
const CHECKPOINT_DOMAIN: &str = "airlock-audit-checkpoint-v1\n";

/// The tool name of a checkpoint record.
pub const CHECKPOINT_TOOL: &str = "airlock/audit.checkpoint";

/// Default records between checkpoints (`checkpoint_every` in audit.toml).
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100;

/// The signature a checkpoint record carries (see the module header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub from_seq: u64,
    pub to_seq: u64,
    pub head_hash: String,
    pub public_key: String,
    pub signature: String,
}

/// The bytes a checkpoint signs.
fn message(to_seq: u64, head_hash: &str) -> Vec<u8> {
    format!("{CHECKPOINT_DOMAIN}{to_seq}\n{head_hash}\n").into_bytes()
}

impl Checkpoint {
    /// Why this checkpoint, found in the record with seq `seq` and `prev` `prev`, does not
    /// vouch for the history before it under `key`, if it does not.
    pub fn check(&self, seq: u64, prev: &str, key: &VerifyingKey) -> std::result::Result<(), String> {
        if self.to_seq + 1 != seq || self.head_hash != prev {
            return Err(format!(
                "it claims to sign up to seq {} with head {}, but it follows seq {} with hash {}",
                self.to_seq,
                short(&self.head_hash),
                seq.saturating_sub(1),
                short(prev)
            ));
        }
        if self.public_key != hex::encode(key.as_bytes()) {
            return Err(format!(
                "it is signed by key {}, not by the public key given ({})",
                short(&self.public_key),
                short(&hex::encode(key.as_bytes()))
            ));
        }
        let mut raw = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut raw)
            .map_err(|_| "its signature is not 128 hex digits".to_string())?;
        key.verify(&message(self.to_seq, &self.head_hash), &Signature::from_bytes(&raw)).map_err(|_| {
            format!(
                "its signature does not verify: a record from seq {} to {} was changed and the chain recomputed \
                 (a forged history), or the checkpoint itself was",
                self.from_seq, self.to_seq
            )
        })
    }
}

fn short(text: &str) -> &str {
    text.get(..12).unwrap_or(text)
}

/// The key that signs checkpoints, and how often.
pub struct CheckpointSigner {
    key: SigningKey,
    public_hex: String,
    /// Records between checkpoints.
    pub every: u64,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner").field("public_key", &self.public_hex).field("every", &self.every).finish()
    }
}

impl CheckpointSigner {
    /// Loads the private key at `path` (see the module header), refusing one that group or
    /// others may read; signs every `every` records (at least 1).
    pub fn load(path: &Path, every: u64) -> Result<CheckpointSigner> {
        let bad = |reason: String| AuditError::SigningKey { path: path.to_path_buf(), reason };
        let meta = fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "its mode is {mode:o}; a signing key must be readable by its owner only (chmod 600)"
            )));
        }
        let text = fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed)
            .map_err(|_| bad("it is not 64 hex digits (make one with `airlock audit keygen --out FILE`)".into()))?;
        let key = SigningKey::from_bytes(&seed);
        let public_hex = hex::encode(key.verifying_key().as_bytes());
        Ok(CheckpointSigner { key, public_hex, every: every.max(1) })
    }

    /// A signer with `key` (tests, embedders that keep keys elsewhere).
    pub fn from_key(key: SigningKey, every: u64) -> CheckpointSigner {
        let public_hex = hex::encode(key.verifying_key().as_bytes());
        CheckpointSigner { key, public_hex, every: every.max(1) }
    }

    /// The checkpoint over records `from_seq..=to_seq` whose last has hash `head_hash`.
    pub(crate) fn sign(&self, from_seq: u64, to_seq: u64, head_hash: &str) -> Checkpoint {
        let signature = self.key.sign(&message(to_seq, head_hash));
        Checkpoint {
            from_seq,
            to_seq,
            head_hash: head_hash.to_string(),
            public_key: self.public_hex.clone(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// Reads a public key file (64 hex digits).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey> {
    let bad = |reason: String| AuditError::SigningKey { path: path.to_path_buf(), reason };
    let text = fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut raw = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut raw).map_err(|_| bad("a public key file holds 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| bad(format!("not an Ed25519 public key: {e}")))
}

/// Makes a new key pair: the private key at `out` (mode 0600, never overwritten) and the
/// public key at `out.pub`. Returns the public key file's path.
pub fn keygen(out: &Path) -> Result<PathBuf> {
    let bad = |path: &Path, reason: String| AuditError::SigningKey { path: path.to_path_buf(), reason };
    let mut seed = [0u8; 32];
    fill_random(&mut seed).map_err(|e| bad(out, format!("no randomness from the kernel: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let public = pub_path(out);
    let write = |path: &Path, text: String, mode: u32| -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| bad(path, format!("cannot create it ({e}); keygen never overwrites a key")))?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| bad(path, e.to_string()))
    };
    write(out, format!("{}\n", hex::encode(seed)), 0o600)?;
    write(&public, format!("{}\n", hex::encode(key.verifying_key().as_bytes())), 0o644)?;
    Ok(public)
}

/// `FILE.pub` beside `FILE`.
pub fn pub_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Fills `buf` from the kernel's CSPRNG.
fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes for the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        filled += n as usize;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_for_its_head_and_key() {
        let signer = CheckpointSigner::from_key(SigningKey::from_bytes(&[7; 32]), 10);
        let head = "ab".repeat(32);
        let checkpoint = signer.sign(1, 10, &head);
        let key = signer.key.verifying_key();
        assert!(checkpoint.check(11, &head, &key).is_ok());
        assert!(checkpoint.check(12, &head, &key).is_err());
        let forged = Checkpoint { head_hash: "cd".repeat(32), ..checkpoint.clone() };
        assert!(forged.check(11, &"cd".repeat(32), &key).unwrap_err().contains("does not verify"));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(checkpoint.check(11, &head, &other).unwrap_err().contains("not by the public key"));
    }
}
