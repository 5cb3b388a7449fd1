//! The query of a `.cf` file without `query`: built from the old fields
//! (`table`, `select_field`, `where_field`, `additional_conditions`), or,
//! for pgsql, from `select_function`, as Postfix builds them.

use crate::cf::{CfError, CfFile};

/// `SELECT <select_field> FROM <table> WHERE <where_field>='%s'
/// <additional_conditions>` (the last part may be empty; the space before
/// it stays, as in Postfix).
pub fn build_query(cf: &CfFile) -> Result<String, CfError> {
    let field = |name: &str| -> Result<String, CfError> {
        match cf.get(name) {
            None => Err(CfError(format!(
                "db_common_sql_build_query: '{name}' parameter not defined"
            ))),
            Some(_) => cf.string(name, "", 1, 0),
        }
    };
    let table = field("table")?;
    let select = field("select_field")?;
    let r#where = field("where_field")?;
    let more = cf.string("additional_conditions", "", 0, 0)?;
    Ok(format!(
        "SELECT {select} FROM {table} WHERE {where}='%s' {more}"
    ))
}

/// pgsql's `select_function = fn`: `SELECT fn('%s')`.
pub fn function_query(function: &str) -> String {
    format!("SELECT {function}('%s')")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_fields_make_the_query() {
        let cf = CfFile::parse(
            "/t.cf",
            b"table = users\nselect_field = dest\nwhere_field = addr\nadditional_conditions = AND active = 1\n",
        )
        .unwrap();
        assert_eq!(
            build_query(&cf).unwrap(),
            "SELECT dest FROM users WHERE addr='%s' AND active = 1"
        );
        let cf = CfFile::parse(
            "/t.cf",
            b"table = users\nselect_field = dest\nwhere_field = addr\n",
        )
        .unwrap();
        assert_eq!(
            build_query(&cf).unwrap(),
            "SELECT dest FROM users WHERE addr='%s' "
        );
        let cf = CfFile::parse("/t.cf", b"select_field = dest\nwhere_field = addr\n").unwrap();
        assert_eq!(
            build_query(&cf).unwrap_err().0,
            "db_common_sql_build_query: 'table' parameter not defined"
        );
        assert_eq!(function_query("lookup"), "SELECT lookup('%s')");
    }
}
