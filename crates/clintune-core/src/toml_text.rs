//! Messages for TOML files that fail to parse (policies, recipes, curation
//! configs): toml's own message quotes the offending line, which for a
//! 200 KB line would echo the whole file back.

/// Lines at most this long are quoted in an error; longer ones are located
/// by line and column only.
const MAX_QUOTED_LINE: usize = 200;

/// `err`, raised while parsing `text`, as a message that quotes its line
/// only when that line is short.
pub fn error_message(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return err.message().trim_end().to_string();
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |p| start + p);
    let line_len = text[line_start..line_end].chars().count();
    if line_len <= MAX_QUOTED_LINE {
        return err.to_string().trim_end().to_string();
    }
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    format!(
        "TOML parse error at line {line}, column {column} (a line of {line_len} characters, not shown): {}",
        err.message().trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> String {
        let err = text.parse::<toml::Table>().unwrap_err();
        error_message(text, &err)
    }

    #[test]
    fn short_lines_are_quoted_long_ones_located() {
        let short = parse_error("[a]\nx = = 1\n");
        assert!(
            short.contains("x = = 1") && short.contains("line 2"),
            "{short}"
        );
        let long = format!("[a]\nx = \"{}\" junk\n", "y".repeat(200_000));
        let msg = parse_error(&long);
        assert!(msg.len() < 300, "{} characters", msg.len());
        assert!(msg.contains("line 2") && msg.contains("not shown"), "{msg}");
    }
}
