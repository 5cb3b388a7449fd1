//! Fuzz target: arbitrary bytes opened as a Berkeley DB file, looked up and
//! walked. Errors are expected; a panic, an out-of-bounds read, a runaway
//! allocation or a hang is a bug.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proxymapd_bdb::exercise(data, &[b"key\0", b"user@example.com\0", b"", b"k"]);
});
