//! Where a pattern table's rules come from: the table file's logical lines,
//! or, for the inline form `TYPE:{ {rule}, {rule} }`, the table name itself
//! (rules numbered from 1 in messages).

use proxymapd_sdk::braces::{split_outside_braces, strip_braces};

/// Rules as (line number, text).
pub type RuleLines = Vec<(usize, Vec<u8>)>;

/// The rules of inline table `name` as (number, text). A rule that is not
/// wrapped in braces is an error, worded as Postfix words it.
pub fn inline_rules(name: &str, map_type: &str) -> Result<RuleLines, String> {
    let inner = strip_braces(name).map_err(|e| format!("{map_type} map: {e}"))?;
    split_outside_braces(inner, ", \t\r\n")
        .into_iter()
        .enumerate()
        .map(|(i, rule)| {
            if !rule.starts_with('{') {
                return Err(format!(
                    "{map_type} map: no '{{' at start of text in \"{rule}\""
                ));
            }
            strip_braces(rule)
                .map(|text| (i + 1, text.as_bytes().to_vec()))
                .map_err(|e| format!("{map_type} map: {e}"))
        })
        .collect()
}

/// The rules of the table a plugin was asked to open, and the name to use
/// in messages (the file's path, or the inline text).
#[cfg(feature = "guest")]
pub fn table_lines(
    request: &proxymapd_sdk::OpenRequest,
    map_type: &str,
) -> Result<(String, RuleLines), proxymapd_sdk::Error> {
    use proxymapd_sdk::Error;
    if request.name.starts_with('{') {
        let rules = inline_rules(&request.name, map_type).map_err(Error::Config)?;
        return Ok((request.name.clone(), rules));
    }
    let path = request
        .files
        .first()
        .cloned()
        .ok_or_else(|| Error::Config("no table file was granted".into()))?;
    let content =
        proxymapd_sdk::read_file(0).map_err(|e| Error::Config(format!("open {path}: {e}")))?;
    let lines = proxymapd_sdk::source::logical_lines(&content)
        .into_iter()
        .map(|l| (l.lineno, l.text))
        .collect();
    Ok((path, lines))
}
