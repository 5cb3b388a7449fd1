//! pcre:/path — Postfix's pcre_table(5) as a proxymapd plugin. The table
//! is parsed once at open (bad rules are skipped with Postfix's warning
//! naming the line), each pattern is compiled for the engine that fits it
//! (see `engine`), and a lookup first asks one multi-pattern automaton
//! which regular patterns match. Rules apply in order, first match wins,
//! with `!`, `if`/`endif`, `$N` substitution and the inline form
//! `pcre:{ {rule}, {rule} }`. Keys are lowercased only when the client asks
//! for FOLD_MUL. The table reports the PATTERN flag and, like Postfix's,
//! cannot be sequenced. The table side is `proxymapd_pattern::map`.

pub mod engine;

proxymapd_sdk::export_map_type!(proxymapd_pattern::map::PatternTable<engine::Patterns>);
