//! Brace-aware splitting of Postfix lists such as `{ a, { b c } }`, used by
//! inline:, unionmap:, pipemap:, randmap:, the proxy_*_maps allowlists and
//! the inline forms of pattern tables (`cidr:{ {rule}, {rule} }`,
//! [`inline_rules`]).

/// Split `text` at any of `separators` that are not inside `{}`; empty
/// tokens are dropped.
pub fn split_outside_braces<'a>(text: &'a str, separators: &str) -> Vec<&'a str> {
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match c {
            '{' => {
                depth += 1;
                start.get_or_insert(i);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                start.get_or_insert(i);
            }
            c if depth == 0 && separators.contains(c) => {
                if let Some(s) = start.take() {
                    tokens.push(&text[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        tokens.push(&text[s..]);
    }
    tokens
}

/// Strip one pair of enclosing braces: `{ inner }` → `inner` (trimmed).
/// The text must start with `{` and its matching `}` must end it.
pub fn strip_braces(text: &str) -> Result<&str, String> {
    let text = text.trim();
    if !text.starts_with('{') {
        return Err(format!("missing '{{' in \"{text}\""));
    }
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    if !text[i + 1..].trim().is_empty() {
                        return Err(format!("syntax error after '}}' in \"{text}\""));
                    }
                    return Ok(text[1..i].trim());
                }
            }
            _ => {}
        }
    }
    Err(format!("missing '}}' in \"{text}\""))
}

/// The rules of an inline pattern table `TYPE:{ {rule}, {rule} }` (cidr,
/// regexp, pcre), numbered from 1 as Postfix numbers them in messages. A
/// rule that is not wrapped in braces is an error, worded as Postfix words
/// it.
pub fn inline_rules<'a>(name: &'a str, map_type: &str) -> Result<Vec<(usize, &'a str)>, String> {
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
                .map(|text| (i + 1, text))
                .map_err(|e| format!("{map_type} map: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_strips() {
        assert_eq!(
            split_outside_braces(" a, {b c}, inline:{x=1, y=2} d ", ", "),
            vec!["a", "{b c}", "inline:{x=1, y=2}", "d"]
        );
        assert_eq!(strip_braces(" { a, {b} } "), Ok("a, {b}"));
        assert!(strip_braces("{ a ").is_err());
        assert!(strip_braces("{a} b").is_err());
        assert!(strip_braces("a").is_err());
    }
}
