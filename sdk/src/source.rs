//! Postfix table source syntax (postmap input): logical lines and key/value
//! splitting.
//!
//! Blank lines and lines whose first non-blank character is `#` are ignored;
//! a line that starts with white space continues the previous logical line
//! (the line break is dropped). A logical line splits at its first white
//! space into key and value, both trimmed.

/// One logical line and the number of the physical line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalLine {
    /// 1-based number of the first physical line.
    pub lineno: usize,
    /// The joined text.
    pub text: Vec<u8>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0b' | b'\x0c')
}

/// Split `content` into logical lines.
pub fn logical_lines(content: &[u8]) -> Vec<LogicalLine> {
    let mut out: Vec<LogicalLine> = Vec::new();
    let mut current: Option<LogicalLine> = None;
    for (index, raw) in content.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let first = line.iter().position(|&b| !is_space(b));
        let Some(first) = first else { continue };
        if line[first] == b'#' {
            continue;
        }
        if first > 0 {
            if let Some(cur) = current.as_mut() {
                cur.text.extend_from_slice(line);
                continue;
            }
        }
        if let Some(done) = current.take() {
            out.push(done);
        }
        current = Some(LogicalLine {
            lineno: index + 1,
            text: line.to_vec(),
        });
    }
    out.extend(current);
    out
}

/// Trim white space from both ends.
pub fn trim(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |e| e + 1);
    &text[start..end.max(start)]
}

/// Split a logical line into key and value at the first white space; `None`
/// when either is empty ("expected format: key whitespace value").
pub fn split_key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = trim(line);
    let cut = line.iter().position(|&b| is_space(b))?;
    let (key, value) = (&line[..cut], trim(&line[cut..]));
    if key.is_empty() || value.is_empty() {
        None
    } else {
        Some((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_continuations_and_skips_comments() {
        let src = b"# head\nfoo  bar\n  baz\n\n  # inner comment\n\tqux\nnext value \r\n";
        let lines = logical_lines(src);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].lineno, 2);
        assert_eq!(lines[0].text, b"foo  bar  baz\tqux");
        assert_eq!(lines[1].lineno, 7);
        assert_eq!(
            split_key_value(&lines[1].text),
            Some((&b"next"[..], &b"value"[..]))
        );
        assert_eq!(split_key_value(b"lonely"), None);
        assert_eq!(
            split_key_value(b"k \t v w  "),
            Some((&b"k"[..], &b"v w"[..]))
        );
    }
}
