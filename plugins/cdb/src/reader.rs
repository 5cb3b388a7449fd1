//! A reader for cdb files as Postfix writes them (tinycdb format): a
//! 2048-byte header of 256 (position, slot count) pairs, the records
//! (`klen`, `dlen`, key, data), then 256 open-addressing hash tables of
//! (hash, record position) slots. All numbers are little-endian u32. Every
//! read is bounds-checked: a corrupt file gives an error, never a panic.

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

/// A cdb file held in memory.
pub struct Cdb {
    data: Vec<u8>,
}

impl Cdb {
    /// Check the header and wrap the file's bytes.
    pub fn new(data: Vec<u8>) -> Result<Cdb, CdbError> {
        if data.len() < 2048 {
            return Err(CdbError(format!(
                "file too short for a cdb header ({} bytes)",
                data.len()
            )));
        }
        if data.len() > u32::MAX as usize {
            return Err(CdbError("file larger than 4 GiB".into()));
        }
        for t in 0..256 {
            let pos = u32_at(&data, t * 8)?;
            let slots = u32_at(&data, t * 8 + 4)?;
            if slots > 0 {
                let bytes = u64::from(slots) * 8;
                if pos < 2048 || u64::from(pos) + bytes > data.len() as u64 {
                    return Err(CdbError(format!("hash table {t} lies outside the file")));
                }
            }
        }
        Ok(Cdb { data })
    }

    /// The data stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CdbError> {
        let h = hash(key);
        let t = (h & 255) as usize;
        let pos = u32_at(&self.data, t * 8)? as usize;
        let slots = u32_at(&self.data, t * 8 + 4)?;
        if slots == 0 {
            return Ok(None);
        }
        let mut slot = (h >> 8) % slots;
        for _ in 0..slots {
            let at = pos + slot as usize * 8;
            let slot_hash = u32_at(&self.data, at)?;
            let record = u32_at(&self.data, at + 4)?;
            if record == 0 {
                return Ok(None);
            }
            if slot_hash == h {
                let (k, v, _) = self.record(record)?;
                if k == key {
                    return Ok(Some(v.to_vec()));
                }
            }
            slot = (slot + 1) % slots;
        }
        Ok(None)
    }

    /// The record at `pos`: key, data and the position of the next record.
    fn record(&self, pos: u32) -> Result<(&[u8], &[u8], u32), CdbError> {
        let at = pos as usize;
        let klen = u32_at(&self.data, at)? as usize;
        let dlen = u32_at(&self.data, at + 4)? as usize;
        let kstart = at + 8;
        let dstart = kstart
            .checked_add(klen)
            .ok_or_else(|| CdbError("record length overflow".into()))?;
        let end = dstart
            .checked_add(dlen)
            .ok_or_else(|| CdbError("record length overflow".into()))?;
        if end > self.data.len() {
            return Err(CdbError(format!(
                "record at {pos} runs past the end of the file"
            )));
        }
        Ok((
            &self.data[kstart..dstart],
            &self.data[dstart..end],
            end as u32,
        ))
    }
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, CdbError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| CdbError(format!("read past the end of the file at offset {at}")))
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
