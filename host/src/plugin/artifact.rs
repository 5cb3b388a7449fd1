//! The on-disk form of a compiled plugin: a fixed header, then the bytes of
//! `Component::serialize`. The header binds the native code to the
//! component it was compiled from (the blake3 digest of those bytes) and
//! carries the blake3 digest of the payload, so a cache file renamed or
//! copied over another plugin's entry, truncated or altered is recognised
//! before anything is handed to `Component::deserialize`.
//!
//! Layout: `PMDCWASM` (8 bytes), format version (u32 LE), source digest
//! (32), payload digest (32), payload length (u64 LE), payload.

/// Magic bytes opening every artifact.
const MAGIC: &[u8; 8] = b"PMDCWASM";

/// Format version.
const VERSION: u32 = 1;

/// Header length in bytes.
const HEADER_LEN: usize = 8 + 4 + 32 + 32 + 8;

/// Why an artifact was rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ArtifactError {
    /// Not an artifact of this format (or an older one).
    #[error("not a proxymapd compiled-plugin file (bad header)")]
    BadHeader,
    /// Compiled from other bytes than the component being loaded.
    #[error("compiled from another component (blake3 {found}), not the one being loaded")]
    OtherSource {
        /// The source digest in the header, hex.
        found: String,
    },
    /// The payload does not match its recorded length or digest.
    #[error("compiled code is truncated or altered (payload digest mismatch)")]
    Corrupt,
}

/// An artifact for `payload`, compiled from the component `source`.
pub(crate) fn encode(source: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(blake3::hash(source).as_bytes());
    out.extend_from_slice(blake3::hash(payload).as_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of `artifact` if it was compiled from the component
/// `source` and is intact.
pub(crate) fn decode<'a>(artifact: &'a [u8], source: &[u8]) -> Result<&'a [u8], ArtifactError> {
    if artifact.len() < HEADER_LEN || &artifact[..8] != MAGIC {
        return Err(ArtifactError::BadHeader);
    }
    let field = |at: usize, len: usize| &artifact[at..at + len];
    if field(8, 4) != VERSION.to_le_bytes() {
        return Err(ArtifactError::BadHeader);
    }
    let found = field(12, 32);
    if found != blake3::hash(source).as_bytes() {
        let found: [u8; 32] = found.try_into().map_err(|_| ArtifactError::BadHeader)?;
        return Err(ArtifactError::OtherSource {
            found: blake3::Hash::from_bytes(found).to_hex().to_string(),
        });
    }
    let len_bytes: [u8; 8] = field(76, 8)
        .try_into()
        .map_err(|_| ArtifactError::BadHeader)?;
    let payload = &artifact[HEADER_LEN..];
    if u64::from_le_bytes(len_bytes) != payload.len() as u64
        || field(44, 32) != blake3::hash(payload).as_bytes()
    {
        return Err(ArtifactError::Corrupt);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_kind_of_mismatch() {
        let art = encode(b"component A", b"native code");
        assert_eq!(decode(&art, b"component A"), Ok(&b"native code"[..]));
        assert!(matches!(
            decode(&art, b"component B"),
            Err(ArtifactError::OtherSource { .. })
        ));
        let mut altered = art.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            decode(&altered, b"component A"),
            Err(ArtifactError::Corrupt)
        );
        assert_eq!(
            decode(&art[..art.len() - 1], b"component A"),
            Err(ArtifactError::Corrupt)
        );
        assert_eq!(
            decode(b"native code", b"component A"),
            Err(ArtifactError::BadHeader)
        );
        assert_eq!(
            decode(&art[..10], b"component A"),
            Err(ArtifactError::BadHeader)
        );
    }
}
