//! Diagnostics: an error or warning at `file:line:col`, rendered with a source snippet.

use std::fmt::Write as _;

use serde::Serialize;

use crate::yaml::Loc;

/// How bad a diagnostic is: errors make a runbook invalid, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a file, pointing at a line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
    #[serde(skip)]
    pub severity: Severity,
}

impl Diagnostic {
    pub fn error(file: &str, loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: loc.line,
            column: loc.column,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    pub fn warning(file: &str, loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(file, loc, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col: error: message`, then the source line with a caret under the spot.
    pub fn render(&self, source: Option<&str>) -> String {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!(
            "{}:{}:{}: {kind}: {}",
            self.file, self.line, self.column, self.message
        );
        if let Some(snippet) = source.and_then(|s| snippet(s, self.line, self.column)) {
            out.push('\n');
            out.push_str(&snippet);
        }
        out
    }
}

/// The source line `line` with a caret under `column` spanning the token that starts there.
fn snippet(source: &str, line: u32, column: u32) -> Option<String> {
    if line == 0 {
        return None;
    }
    let text = source.lines().nth(line as usize - 1)?;
    let text: String = text.chars().take(200).collect();
    let start = (column.max(1) - 1) as usize;
    let width = token_width(&text, start);
    let gutter = line.to_string().len();
    let mut out = String::new();
    let _ = writeln!(out, "{:gutter$} |", "");
    let _ = writeln!(out, "{line} | {text}");
    let _ = write!(
        out,
        "{:gutter$} | {}{}",
        "",
        " ".repeat(start.min(text.chars().count())),
        "^".repeat(width)
    );
    Some(out)
}

/// Width of the YAML token starting at char `start`: a quoted string, or up to a delimiter.
fn token_width(line: &str, start: usize) -> usize {
    let rest: Vec<char> = line.chars().skip(start).collect();
    let Some(&first) = rest.first() else {
        return 1;
    };
    if first == '"' || first == '\'' {
        let close = rest.iter().skip(1).position(|c| *c == first);
        return close.map_or(rest.len(), |i| i + 2);
    }
    let stop = |c: &char| matches!(c, ':' | ',' | ']' | '}' | '#') || c.is_whitespace();
    let mut width = rest.iter().position(stop).unwrap_or(rest.len());
    // A plain scalar may hold spaces (`patch_tuesday-7d 09:00`): extend over `word word`
    // up to the end of the value, but never past a comment or a flow delimiter.
    if !matches!(first, '[' | '{') {
        let end = rest
            .iter()
            .position(|c| matches!(c, ',' | ']' | '}' | '#'))
            .unwrap_or(rest.len());
        let value: String = rest[..end].iter().collect();
        if !value.trim_end().contains(": ") {
            width = value.trim_end().chars().count().max(width.min(end));
        }
    }
    width.max(1)
}

/// Sorts diagnostics by file, line and column, keeping errors before warnings at one spot.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.severity).cmp(&(&b.file, b.line, b.column, b.severity))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_caret_under_the_token() {
        let src = "steps:\n  a:\n    neds: [b]\n";
        let d = Diagnostic::error("r.yaml", Loc { line: 3, column: 5 }, "unknown field `neds`");
        let text = d.render(Some(src));
        assert_eq!(
            text,
            "r.yaml:3:5: error: unknown field `neds`\n  |\n3 |     neds: [b]\n  |     ^^^^"
        );
    }

    #[test]
    fn a_plain_scalar_with_spaces_is_underlined_whole() {
        let src = "at: patch_tuesday+3x 21:00 # comment\n";
        let d = Diagnostic::error("r.yaml", Loc { line: 1, column: 5 }, "bad");
        assert!(
            d.render(Some(src))
                .ends_with(&"^".repeat("patch_tuesday+3x 21:00".len()))
        );
    }
}
