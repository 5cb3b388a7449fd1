//! A reader for cdb files as Postfix writes them (tinycdb format): a
//! 2048-byte header of 256 (position, slot count) pairs, the records
//! (`klen`, `dlen`, key, data), then 256 open-addressing hash tables of
//! (hash, record position) slots. All numbers are little-endian u32. The
//! header is kept; everything else is read on demand through a [`Source`],
//! so a table need not live in the reader's memory. Every read is checked:
//! a corrupt file gives an error, never a panic.

use std::fmt;

/// Why a cdb file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdbError(pub String);

impl fmt::Display for CdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cdb hash of `key`.
pub fn hash(key: &[u8]) -> u32 {
    key.iter()
        .fold(5381u32, |h, &c| (h << 5).wrapping_add(h) ^ u32::from(c))
}

/// Random access to the bytes of a cdb file.
pub trait Source {
    /// The file's size.
    fn size(&self) -> u64;
    /// Exactly `len` bytes at `offset` (an error if the file is shorter).
    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, CdbError>;
}

impl Source for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, CdbError> {
        let start = usize::try_from(offset).map_err(|_| past_end(offset))?;
        let end = start
            .checked_add(len as usize)
            .ok_or_else(|| past_end(offset))?;
        self.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| past_end(offset))
    }
}

/// The error for a read beyond the end of the file.
pub fn past_end(offset: u64) -> CdbError {
    CdbError(format!("read past the end of the file at offset {offset}"))
}

/// A cdb file: its header is kept, everything else is read on demand.
pub struct Cdb<S: Source> {
    source: S,
    header: Vec<u8>,
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl<S: Source> Cdb<S> {
    /// Read and check the header.
    pub fn new(source: S) -> Result<Cdb<S>, CdbError> {
        let size = source.size();
        if size < 2048 {
            return Err(CdbError(format!(
                "file too short for a cdb header ({size} bytes)"
            )));
        }
        if size > u64::from(u32::MAX) {
            return Err(CdbError("file larger than 4 GiB".into()));
        }
        let header = source.read(0, 2048)?;
        for t in 0..256 {
            let pos = le32(&header, t * 8);
            let slots = le32(&header, t * 8 + 4);
            if slots > 0 && (pos < 2048 || u64::from(pos) + u64::from(slots) * 8 > size) {
                return Err(CdbError(format!("hash table {t} lies outside the file")));
            }
        }
        Ok(Cdb { source, header })
    }

    /// The data stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CdbError> {
        let h = hash(key);
        let t = (h & 255) as usize;
        let pos = u64::from(le32(&self.header, t * 8));
        let slots = le32(&self.header, t * 8 + 4);
        if slots == 0 {
            return Ok(None);
        }
        let mut slot = (h >> 8) % slots;
        for _ in 0..slots {
            let entry = self.source.read(pos + u64::from(slot) * 8, 8)?;
            let (slot_hash, record) = (le32(&entry, 0), le32(&entry, 4));
            if record == 0 {
                return Ok(None);
            }
            if slot_hash == h {
                let lens = self.source.read(u64::from(record), 8)?;
                let (klen, dlen) = (le32(&lens, 0), le32(&lens, 4));
                if klen as usize == key.len() {
                    let total = klen
                        .checked_add(dlen)
                        .ok_or_else(|| CdbError(format!("record at {record} is too long")))?;
                    let body = self.source.read(u64::from(record) + 8, total)?;
                    if &body[..klen as usize] == key {
                        return Ok(Some(body[klen as usize..].to_vec()));
                    }
                }
            }
            slot = (slot + 1) % slots;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a cdb image the way tinycdb lays it out.
    pub fn build(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; 2048];
        let mut entries: Vec<(u32, u32)> = Vec::new();
        for (k, v) in pairs {
            entries.push((hash(k), out.len() as u32));
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        let mut header = Vec::new();
        for t in 0..256u32 {
            let mine: Vec<&(u32, u32)> = entries.iter().filter(|(h, _)| h & 255 == t).collect();
            let slots = (mine.len() * 2) as u32;
            let pos = out.len() as u32;
            let mut table = vec![(0u32, 0u32); slots as usize];
            for (h, p) in mine {
                let mut s = ((h >> 8) % slots) as usize;
                while table[s].1 != 0 {
                    s = (s + 1) % slots as usize;
                }
                table[s] = (*h, *p);
            }
            for (h, p) in table {
                out.extend_from_slice(&h.to_le_bytes());
                out.extend_from_slice(&p.to_le_bytes());
            }
            header.push((pos, slots));
        }
        for (t, (pos, slots)) in header.into_iter().enumerate() {
            out[t * 8..t * 8 + 4].copy_from_slice(&pos.to_le_bytes());
            out[t * 8 + 4..t * 8 + 8].copy_from_slice(&slots.to_le_bytes());
        }
        out
    }

    #[test]
    fn finds_keys() {
        let cdb = Cdb::new(build(&[
            (b"alpha", b"1"),
            (b"beta", b"two"),
            (b"", b"empty"),
        ]))
        .unwrap();
        assert_eq!(cdb.get(b"alpha").unwrap(), Some(b"1".to_vec()));
        assert_eq!(cdb.get(b"beta").unwrap(), Some(b"two".to_vec()));
        assert_eq!(cdb.get(b"").unwrap(), Some(b"empty".to_vec()));
        assert_eq!(cdb.get(b"gamma").unwrap(), None);
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        assert!(Cdb::new(vec![0; 100]).is_err());
        let mut bad = build(&[(b"k", b"v")]);
        let len = bad.len() as u32;
        bad[0..4].copy_from_slice(&(len + 10).to_le_bytes());
        bad[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert!(Cdb::new(bad).is_err());
        let mut truncated = build(&[(b"k", b"v")]);
        // Point a record length past the end.
        truncated[2048..2052].copy_from_slice(&1_000_000u32.to_le_bytes());
        let cdb = Cdb::new(truncated).unwrap();
        assert!(cdb.get(b"k").is_err() || cdb.get(b"k").unwrap().is_none());
        for cut in [2048usize, 2060, 3000] {
            let mut data = build(&[(b"key", b"value")]);
            data.truncate(cut.min(data.len()));
            if let Ok(cdb) = Cdb::new(data) {
                let _ = cdb.get(b"key");
            }
        }
    }
}
