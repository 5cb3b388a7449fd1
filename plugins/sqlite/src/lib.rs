//! sqlite:, pgsql: and mysql:/etc/postfix/NAME.cf — Postfix's SQL tables
//! as one proxymapd plugin, shipped under the three names. The
//! plugin reads the `.cf` file (granted file 0) and does what Postfix's
//! dict_sqlite, dict_pgsql and dict_mysql do around the database: fold the key, apply
//! the `domain` filter, expand `query` (or the legacy fields, or pgsql's
//! `select_function`), and join the results through `result_format`, with
//! `expansion_limit`. The statement runs on the host, which owns the
//! connections to the database the `.cf` names and escapes key parts for
//! them. What differs by type is Postfix's: sqlite reads the first column
//! only and skips keys that are not UTF-8 (unless SMTPUTF8 is on); pgsql
//! reads every column, and a NULL comes back empty (PQgetvalue), so it is
//! warned about like an empty value; mysql reads every column and skips a
//! NULL without a word.

use proxymapd_sdk::sql::{self, Piece, SqlError};
use proxymapd_sdk::{flags, fold, log, read_file, Error, MapType, OpenRequest};
use proxymapd_sqlcommon::cf::CfFile;
use proxymapd_sqlcommon::domain::{DomainList, Sources, Verdict};
use proxymapd_sqlcommon::legacy;
use proxymapd_sqlcommon::template::{self, Assembly, Context, Kind, Template};

/// Where a `domain` list's files and tables are: the host grants the table
/// the files its list names, after the `.cf` file, and looks domains up in
/// the tables the list names.
struct GrantedSources<'a> {
    /// The granted files' paths, by index.
    files: &'a [String],
}

impl Sources for GrantedSources<'_> {
    fn file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        let index = self
            .files
            .iter()
            .position(|f| f == path)
            .ok_or_else(|| format!("domain: open {path}: not readable"))?;
        read_file(index as u32).map_err(|e| format!("domain: open {path}: {e}"))
    }

    fn lookup(&mut self, table: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        sql::domain_lookup(table, key)
    }
}

/// Which SQL map type a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SqlType {
    Sqlite,
    Pgsql,
    Mysql,
}

impl SqlType {
    fn name(self) -> &'static str {
        match self {
            SqlType::Sqlite => "sqlite",
            SqlType::Pgsql => "pgsql",
            SqlType::Mysql => "mysql",
        }
    }
}

/// An open SQL table.
pub struct SqlTable {
    kind: SqlType,
    /// The `.cf` file's path (Postfix names tables by it in messages).
    path: String,
    ctx: Context,
    query: Template,
    result: Template,
    expansion_limit: usize,
    domain: Option<DomainList>,
    utf8: bool,
}

fn config(e: impl std::fmt::Display) -> Error {
    Error::Config(e.to_string())
}

impl MapType for SqlTable {
    fn open(request: &OpenRequest) -> Result<Self, Error> {
        let kind = match request.map_type.as_str() {
            "sqlite" => SqlType::Sqlite,
            "pgsql" => SqlType::Pgsql,
            "mysql" => SqlType::Mysql,
            other => {
                return Err(config(format!(
                    "the sql plugin does not serve {other}: tables"
                )))
            }
        };
        let path = request
            .files
            .first()
            .cloned()
            .ok_or_else(|| config("no configuration file was granted"))?;
        let text = read_file(0).map_err(|e| config(format!("open {path}: {e}")))?;
        let cf = CfFile::parse(&path, &text).map_err(config)?;
        for warning in &cf.warnings {
            log::warning(warning);
        }
        let query = match (cf.get("query"), cf.get("select_function")) {
            (Some(q), _) => q.to_string(),
            (None, Some(f)) if kind == SqlType::Pgsql => legacy::function_query(f),
            _ => legacy::build_query(&cf).map_err(config)?,
        };
        let result_format = cf.string("result_format", "%s", 1, 0).map_err(config)?;
        let expansion_limit = cf.int("expansion_limit", 0, 0, 0).map_err(config)?;
        let domain = cf.string("domain", "", 0, 0).map_err(config)?;
        let domain = if domain.is_empty() {
            None
        } else {
            let mut sources = GrantedSources {
                files: &request.files,
            };
            Some(DomainList::parse(&domain, &mut sources).map_err(config)?)
        };
        let mut ctx = Context::default();
        let query = Template::parse(&query, Kind::Query, &mut ctx, &path).map_err(config)?;
        let result =
            Template::parse(&result_format, Kind::Result, &mut ctx, &path).map_err(config)?;
        Ok(SqlTable {
            kind,
            path,
            ctx,
            query,
            result,
            expansion_limit: usize::try_from(expansion_limit).unwrap_or(0),
            domain,
            utf8: request.utf8,
        })
    }

    fn flags(&self) -> u32 {
        flags::FIXED
    }

    fn lookup(&self, key: &[u8], request_flags: u32) -> Result<Option<Vec<u8>>, Error> {
        if self.kind == SqlType::Sqlite && !self.utf8 && std::str::from_utf8(key).is_err() {
            return Ok(None);
        }
        let key = fold::fold_fixed(key, request_flags, self.utf8);
        if let Some(domain) = &self.domain {
            match domain.check(&key, &mut GrantedSources { files: &[] }) {
                Verdict::Query => {}
                Verdict::Skip => return Ok(None),
                Verdict::Error(e) => return Err(Error::Retry(e)),
            }
        }
        match self.ctx.admits(&key) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(warning) => {
                log::warning(&format!(
                    "table \"{}:{}\": {warning}",
                    self.kind.name(),
                    self.path
                ));
                return Ok(None);
            }
        }
        let pieces: Vec<Piece> = self
            .ctx
            .expand_query(&self.query, &key)
            .into_iter()
            .map(|p| match p {
                template::Piece::Text(t) => Piece::Text(t),
                template::Piece::Escaped(v) => Piece::Escaped(v),
            })
            .collect();
        let rows = match sql::query(&pieces) {
            Ok(rows) => rows,
            Err(SqlError::Unavailable(m) | SqlError::NotPermitted(m)) => {
                log::warning(&format!(
                    "dict_{}_lookup: {}: {m}",
                    self.kind.name(),
                    self.path
                ));
                return Err(Error::Retry(m));
            }
        };
        // Postfix's sqlite reads the first column only; pgsql and mysql
        // all of them.
        let columns = rows.columns.max(1) as usize;
        let cells: Vec<Option<&[u8]>> = match self.kind {
            SqlType::Sqlite => rows
                .cells
                .chunks(columns)
                .map(|row| row.first().and_then(|c| c.as_deref()))
                .collect(),
            SqlType::Pgsql | SqlType::Mysql => rows.cells.iter().map(|c| c.as_deref()).collect(),
        };
        let mut warnings = Vec::new();
        let assembled = template::assemble(
            &self.ctx,
            &self.result,
            cells,
            &key,
            self.expansion_limit,
            &format!("{}:{}", self.kind.name(), self.path),
            &mut warnings,
        );
        for warning in &warnings {
            log::warning(warning);
        }
        match assembled {
            Assembly::Value(v) if v.is_empty() => Ok(None),
            Assembly::Value(v) => Ok(Some(v)),
            Assembly::LimitExceeded => {
                let message = format!(
                    "dict_{}_lookup: {}: Expansion limit exceeded for key '{}'",
                    self.kind.name(),
                    self.path,
                    String::from_utf8_lossy(&key)
                );
                log::warning(&message);
                Err(Error::Retry(message))
            }
        }
    }
}

proxymapd_sdk::export_map_type!(SqlTable);
