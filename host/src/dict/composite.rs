//! unionmap:{ a, b } (every table's answer, joined with commas) and
//! pipemap:{ a, b } (each table's answer is the next table's key).

use super::braces::{split_outside_braces, strip_braces};
use super::{Dict, DictError, OpenError, OpenParams};
use crate::flags;
use std::sync::Arc;

/// How the member tables' answers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    Union,
    Pipe,
}

/// A table made of other tables.
pub(crate) struct CompositeDict {
    combine: Combine,
    members: Vec<Arc<dyn Dict>>,
}

impl Dict for CompositeDict {
    fn flags(&self) -> u32 {
        let any_pattern = self.members.iter().any(|m| m.flags() & flags::PATTERN != 0);
        if any_pattern {
            flags::PATTERN
        } else {
            flags::FIXED
        }
    }

    fn lookup(&self, key: &[u8], req_flags: u32) -> Result<Option<Vec<u8>>, DictError> {
        match self.combine {
            Combine::Union => {
                let mut joined: Option<Vec<u8>> = None;
                for member in &self.members {
                    if let Some(value) = member.lookup(key, req_flags)? {
                        match joined.as_mut() {
                            Some(all) => {
                                all.push(b',');
                                all.extend_from_slice(&value);
                            }
                            None => joined = Some(value),
                        }
                    }
                }
                Ok(joined)
            }
            Combine::Pipe => {
                let mut current = key.to_vec();
                for member in &self.members {
                    match member.lookup(&current, req_flags)? {
                        Some(value) => current = value,
                        None => return Ok(None),
                    }
                }
                Ok(Some(current))
            }
        }
    }

    fn changed(&self) -> bool {
        self.members.iter().any(|m| m.changed())
    }

    fn may_block(&self) -> bool {
        self.members.iter().any(|m| m.may_block())
    }
}

fn open_members(req: &OpenParams<'_>, combine: Combine) -> Result<Arc<dyn Dict>, OpenError> {
    let inner = strip_braces(req.name).map_err(|e| OpenError::new(req.table, e))?;
    let names = split_outside_braces(inner, ", \t\r\n");
    if names.is_empty() {
        return Err(OpenError::new(req.table, "empty table list"));
    }
    if combine == Combine::Pipe && names.len() < 2 {
        return Err(OpenError::new(req.table, "need at least two tables"));
    }
    let members = names
        .into_iter()
        .map(|name| req.types.open(name, req.flags, req.writable, req.utf8))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(CompositeDict { combine, members }))
}

/// Open a unionmap: table.
pub(crate) fn open_union(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    open_members(req, Combine::Union)
}

/// Open a pipemap: table.
pub(crate) fn open_pipe(req: &OpenParams<'_>) -> Result<Arc<dyn Dict>, OpenError> {
    open_members(req, Combine::Pipe)
}
