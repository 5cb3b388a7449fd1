//! Postfix's SQL table semantics, shared by proxymapd's `pgsql:`, `mysql:`
//! and `sqlite:` plugins and by the host: [`cf`] reads a table's `.cf`
//! file as Postfix's cfg_parser does, [`template`] parses and expands the
//! `query` and `result_format` templates (db_common), [`domain`] is the
//! `domain` filter and [`legacy`] builds the query of the old
//! `select_field`/`where_field` form. Nothing here talks to a database.

pub mod cf;
pub mod domain;
pub mod legacy;
pub mod template;
