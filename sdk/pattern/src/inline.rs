//! Where a pattern table's rules come from: the table file's logical lines,
//! or, for the inline form `TYPE:{ {rule}, {rule} }`, the table name itself
//! (rules numbered from 1 in messages).

/// Rules as (line number, text).
pub type RuleLines = Vec<(usize, Vec<u8>)>;

/// The rules of inline table `name` as (number, text); see
/// [`proxymapd_sdk::braces::inline_rules`].
pub fn inline_rules(name: &str, map_type: &str) -> Result<RuleLines, String> {
    Ok(proxymapd_sdk::braces::inline_rules(name, map_type)?
        .into_iter()
        .map(|(n, text)| (n, text.as_bytes().to_vec()))
        .collect())
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
