//! regexp:/path — Postfix's regexp_table(5) as a proxymapd plugin. The
//! table is parsed once at open: bad rules are skipped with Postfix's
//! warning naming the line, patterns are compiled for Rust's automata with
//! glibc's meaning (see `engine`), and every lookup first asks one
//! multi-pattern automaton which rules can match. Rules apply in order,
//! first match wins, with `!`, `if`/`endif`, `$N` substitution and the
//! inline form `regexp:{ {rule}, {rule} }`. Keys are lowercased only when
//! the client asks for FOLD_MUL. The table reports the PATTERN flag and,
//! like Postfix's, cannot be sequenced. The table side is
//! `proxymapd_pattern::map`.

pub mod engine;

proxymapd_sdk::export_map_type!(proxymapd_pattern::map::PatternTable<engine::Patterns>);
