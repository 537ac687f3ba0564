//! The on-disk format of a precompiled module: `<sha256>.cwasm` in the cache directory.
//!
//! ```text
//! magic          8 bytes   b"ALCWASM\0"
//! version        4 bytes   FORMAT_VERSION, little endian
//! kind           1 byte    0 = core module, 1 = component
//! compat        32 bytes   sha256 of the engine's precompile compatibility hash
//! source        32 bytes   sha256 of the module file it was compiled from (the pin)
//! digest        32 bytes   sha256 of the artifact bytes that follow
//! length         8 bytes   artifact length, little endian
//! artifact       length bytes, as produced by `Module::serialize`/`Component::serialize`
//! ```
//!
//! [`decode`] checks every field before handing the artifact out; an artifact that fails
//! any check is rejected (the caller deletes and rebuilds it). [`write_atomic`] writes a
//! temp file in the same directory and renames it, so a reader never sees half a file.
//! This module never deserializes: it only decides whether bytes are ours and intact.

use std::{
    hash::{Hash, Hasher},
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// Identifies an airlock artifact file.
const MAGIC: &[u8; 8] = b"ALCWASM\0";
/// Bumped whenever the layout above changes: old files are then rejected and rebuilt.
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 1 + 32 + 32 + 32 + 8;

/// What an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A core module (WASI preview1).
    Module,
    /// A component (WASI preview2).
    Component,
}

impl ArtifactKind {
    fn byte(self) -> u8 {
        match self {
            ArtifactKind::Module => 0,
            ArtifactKind::Component => 1,
        }
    }
}

/// Why an artifact file was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactReject {
    #[error("shorter than the artifact header")]
    Truncated,
    #[error("bad magic: not an airlock artifact")]
    Magic,
    #[error("format version {found}, expected {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("holds a {found:?}, expected a {expected:?}")]
    Kind { found: u8, expected: ArtifactKind },
    #[error("built by an incompatible engine (different wasmtime version or settings)")]
    Incompatible,
    #[error("compiled from a different module than its file name says")]
    Source,
    #[error("length field says {declared} bytes, file holds {actual}")]
    Length { declared: u64, actual: u64 },
    #[error("artifact digest mismatch: the file is corrupted")]
    Digest,
}

/// A sha256 of the engine's `precompile_compatibility_hash`: equal values mean artifacts
/// from one engine load in the other.
pub fn engine_compat_digest(engine: &wasmtime::Engine) -> [u8; 32] {
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            // Unused: the digest is taken with `finalize` below.
            0
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// The path of the artifact of the module whose sha256 is `sha256` (64 hex digits,
/// checked by the caller: it becomes a file name).
pub fn path_for(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(format!("{sha256}.cwasm"))
}

/// The identity an artifact must match: what it holds, which engine built it, and from
/// which module.
#[derive(Debug, Clone, Copy)]
pub struct ArtifactId<'a> {
    /// Core module or component.
    pub kind: ArtifactKind,
    /// [`engine_compat_digest`] of the engine.
    pub compat: &'a [u8; 32],
    /// sha256 of the module file.
    pub source: &'a [u8; 32],
}

/// Header + artifact bytes.
pub fn encode(id: ArtifactId<'_>, artifact: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + artifact.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(id.kind.byte());
    out.extend_from_slice(id.compat);
    out.extend_from_slice(id.source);
    out.extend_from_slice(&Sha256::digest(artifact));
    out.extend_from_slice(&(artifact.len() as u64).to_le_bytes());
    out.extend_from_slice(artifact);
    out
}

/// Checks magic, version, kind, engine compatibility, source, length and digest; returns
/// the artifact bytes only if all hold.
pub fn decode<'a>(file: &'a [u8], id: ArtifactId<'_>) -> Result<&'a [u8], ArtifactReject> {
    if file.len() < HEADER_LEN {
        return Err(ArtifactReject::Truncated);
    }
    let (header, artifact) = file.split_at(HEADER_LEN);
    let (magic, rest) = header.split_at(8);
    if magic != MAGIC {
        return Err(ArtifactReject::Magic);
    }
    let (version, rest) = rest.split_at(4);
    let version = u32::from_le_bytes(version.try_into().map_err(|_| ArtifactReject::Truncated)?);
    if version != FORMAT_VERSION {
        return Err(ArtifactReject::Version { found: version });
    }
    let (kind, rest) = rest.split_at(1);
    if kind[0] != id.kind.byte() {
        return Err(ArtifactReject::Kind { found: kind[0], expected: id.kind });
    }
    let (compat, rest) = rest.split_at(32);
    if compat != id.compat {
        return Err(ArtifactReject::Incompatible);
    }
    let (source, rest) = rest.split_at(32);
    if source != id.source {
        return Err(ArtifactReject::Source);
    }
    let (digest, rest) = rest.split_at(32);
    let declared = u64::from_le_bytes(rest.try_into().map_err(|_| ArtifactReject::Truncated)?);
    if declared != artifact.len() as u64 {
        return Err(ArtifactReject::Length { declared, actual: artifact.len() as u64 });
    }
    if Sha256::digest(artifact).as_slice() != digest {
        return Err(ArtifactReject::Digest);
    }
    Ok(artifact)
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, synced, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPAT: [u8; 32] = [7; 32];
    const SOURCE: [u8; 32] = [3; 32];
    const ID: ArtifactId<'static> = ArtifactId { kind: ArtifactKind::Module, compat: &COMPAT, source: &SOURCE };

    #[test]
    fn round_trips() {
        let file = encode(ID, b"artifact");
        assert_eq!(decode(&file, ID), Ok(&b"artifact"[..]));
    }

    #[test]
    fn rejects_every_kind_of_damage() {
        let file = encode(ID, b"artifact");
        assert_eq!(decode(&file[..10], ID), Err(ArtifactReject::Truncated));

        let mut bad = file.clone();
        bad[0] ^= 1;
        assert_eq!(decode(&bad, ID), Err(ArtifactReject::Magic));

        let mut bad = file.clone();
        bad[8] = 9;
        assert_eq!(decode(&bad, ID), Err(ArtifactReject::Version { found: 9 }));

        let component = ArtifactId { kind: ArtifactKind::Component, ..ID };
        assert!(matches!(decode(&file, component), Err(ArtifactReject::Kind { .. })));
        let other_engine = ArtifactId { compat: &[8; 32], ..ID };
        assert_eq!(decode(&file, other_engine), Err(ArtifactReject::Incompatible));
        let other_source = ArtifactId { source: &[4; 32], ..ID };
        assert_eq!(decode(&file, other_source), Err(ArtifactReject::Source));

        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode(&bad, ID), Err(ArtifactReject::Digest));

        let mut bad = file.clone();
        bad.push(0);
        assert!(matches!(decode(&bad, ID), Err(ArtifactReject::Length { .. })));
    }

    #[test]
    fn the_compat_digest_is_stable_for_one_config() {
        let engine = wasmtime::Engine::default();
        assert_eq!(engine_compat_digest(&engine), engine_compat_digest(&engine.clone()));
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let fuel = wasmtime::Engine::new(&config).unwrap();
        assert_ne!(engine_compat_digest(&engine), engine_compat_digest(&fuel));
    }
}
