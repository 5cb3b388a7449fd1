//! Postfix dictionary flags (`DICT_FLAG_*`) and the masks that sort them into
//! implementation, per-request and per-instance bits. The values have been
//! stable on the wire since Postfix 3.0.

/// Warn about duplicate keys while loading.
pub const DUP_WARN: u32 = 0x1;
/// Ignore duplicate keys while loading.
pub const DUP_IGNORE: u32 = 0x2;
/// Try keys without a trailing NUL.
pub const TRY0NULL: u32 = 0x4;
/// Try keys with a trailing NUL.
pub const TRY1NULL: u32 = 0x8;
/// Fixed-string table: clients may try partial keys.
pub const FIXED: u32 = 0x10;
/// Pattern table (regexp, pcre, cidr, ...).
pub const PATTERN: u32 = 0x20;
/// Lock the table while using it.
pub const LOCK: u32 = 0x40;
/// Replace duplicate keys.
pub const DUP_REPLACE: u32 = 0x80;
/// Flush every update to stable storage.
pub const SYNC_UPDATE: u32 = 0x100;
/// Debug logging (removed in 3.11).
pub const DEBUG: u32 = 0x200;
/// Disable `$N` substitution in pattern tables.
pub const NO_REGSUB: u32 = 0x800;
/// The client must not use the proxy.
pub const NO_PROXY: u32 = 0x1000;
/// Unauthenticated access not allowed.
pub const NO_UNAUTH: u32 = 0x2000;
/// Fold keys of fixed-string tables to lower case.
pub const FOLD_FIX: u32 = 0x4000;
/// Fold keys of pattern tables to lower case.
pub const FOLD_MUL: u32 = 0x8000;
/// Lock the table at open time.
pub const OPEN_LOCK: u32 = 0x10000;
/// Bulk update (postmap rebuild).
pub const BULK_UPDATE: u32 = 0x20000;
/// The table supports several concurrent writers.
pub const MULTI_WRITER: u32 = 0x40000;
/// The client asks for UTF-8 checks and folding.
pub const UTF8_REQUEST: u32 = 0x80000;
/// UTF-8 checks and folding are active.
pub const UTF8_ACTIVE: u32 = 0x100000;
/// postmap -F: values name files.
pub const SRC_RHS_IS_FILE: u32 = 0x200000;

/// Bits that describe the table implementation.
pub const IMPL_MASK: u32 = FIXED | PATTERN | MULTI_WRITER;
/// Bits each request may set for itself.
pub const RQST_MASK: u32 = FOLD_FIX
    | FOLD_MUL
    | LOCK
    | DUP_REPLACE
    | DUP_WARN
    | DUP_IGNORE
    | SYNC_UPDATE
    | NO_REGSUB
    | NO_PROXY
    | NO_UNAUTH
    | UTF8_REQUEST;
/// Bits that distinguish one open instance of a table from another.
pub const INST_MASK: u32 = !(IMPL_MASK | RQST_MASK);

/// Replace the request-controlled bits of `table_flags` with those of `request_flags`.
pub fn with_request_bits(table_flags: u32, request_flags: u32) -> u32 {
    (table_flags & !RQST_MASK) | (request_flags & RQST_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_match_postfix() {
        assert_eq!(IMPL_MASK, 0x40030);
        assert_eq!(RQST_MASK, 0x8F9C3);
        assert_eq!(IMPL_MASK & RQST_MASK, 0);
        assert_eq!(INST_MASK & (TRY0NULL | TRY1NULL), TRY0NULL | TRY1NULL);
        assert_eq!(with_request_bits(FIXED | LOCK, FOLD_FIX), FIXED | FOLD_FIX);
    }
}
