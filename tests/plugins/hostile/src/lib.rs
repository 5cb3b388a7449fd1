//! A plugin that misbehaves on purpose, to prove the sandbox: it spins
//! forever, allocates without bound, panics, tries to read files it was not
//! given, or returns an enormous value — chosen by the table name.

use proxymapd_sdk::{read_file, Error, MapType, OpenRequest};

/// The misbehaviour of one table.
pub struct Hostile {
    mode: String,
}

impl MapType for Hostile {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        Ok(Hostile {
            mode: request.name.clone(),
        })
    }

    fn lookup(&self, key: &[u8], _flags: u32) -> Result<Option<Vec<u8>>, Error> {
        match self.mode.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile plugin panics on purpose"),
            "escape" => {
                // Nothing here may succeed: no file was granted, and there is
                // no filesystem at all inside the sandbox.
                let mut leaked = Vec::new();
                for index in 0..4 {
                    if let Ok(data) = read_file(index) {
                        leaked.extend_from_slice(&data);
                    }
                }
                for path in ["/etc/passwd", "./sibling", "../sibling"] {
                    if let Ok(data) = std::fs::read(path) {
                        leaked.extend_from_slice(&data);
                    }
                }
                if leaked.is_empty() {
                    Err(Error::Retry("escape attempts all failed".into()))
                } else {
                    Ok(Some(leaked))
                }
            }
            "huge" => Ok(Some(vec![b'x'; 2 << 20])),
            _ => {
                let mut v = b"hostile:".to_vec();
                v.extend_from_slice(key);
                Ok(Some(v))
            }
        }
    }
}

proxymapd_sdk::export_map_type!(Hostile);
