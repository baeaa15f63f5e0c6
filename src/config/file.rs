//! Reading the configuration file, and what is refused before a YAML parser
//! sees it: a file larger than [`MAX_FILE_SIZE`], a file with no settings
//! (empty, blanks, comments: a half-written file on SIGHUP must not reset
//! everything to the defaults), and more than [`MAX_FLOW_OPENINGS`] `[` or
//! `{` (the YAML parser's time grows with tokens x flow nesting depth:
//! 50,000 nested `[` took 20 s).

use std::io::Read;
use std::path::Path;

use super::ConfigError;

/// The largest configuration file read: 1 MiB. milter.yaml with every key
/// is about 5 KB; even a skip list of thousands of networks stays far below.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// The most `[` and `{` accepted in a file. milter.yaml has 11; flow
/// collections nested 50,000 deep took the YAML parser 20 s, 256 deep with
/// 1 MiB of items still 7 s (debug build).
pub(crate) const MAX_FLOW_OPENINGS: usize = 128;

/// The problem of a file without settings.
pub(crate) const EMPTY: &str = "the file has no settings (empty, or only blanks and comments); write {} to run on the defaults";

/// Reads `path` as UTF-8 text, reading at most one byte more than
/// [`MAX_FILE_SIZE`].
pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    let cannot = |e: std::io::Error| ConfigError::file(path, None, format!("cannot read: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if meta.is_dir() {
        return Err(ConfigError::file(path, None, "cannot read: is a directory"));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(too_large(path));
    }
    // The file may grow between the size check and the read (or be a
    // device): read one byte past the limit and no further.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(too_large(path));
    }
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        ConfigError::file(path, Some(line), "not UTF-8 text")
    })
}

fn too_large(path: &Path) -> ConfigError {
    ConfigError::file(
        path,
        None,
        format!(
            "larger than {} KiB: refused unread (a tollgate configuration is a few kilobytes)",
            MAX_FILE_SIZE / 1024
        ),
    )
}

/// Refuses text that is too large, has no settings, or nests too deeply.
pub(crate) fn check(text: &str, path: &Path) -> Result<(), ConfigError> {
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(too_large(path));
    }
    if !has_content(text) {
        return Err(ConfigError::file(path, None, EMPTY));
    }
    if let Some(line) = too_many_openings(text, MAX_FLOW_OPENINGS) {
        return Err(ConfigError::file(
            path,
            Some(line),
            format!(
                "more than {MAX_FLOW_OPENINGS} [ or {{ (nested lists and mappings): write lists one item per line"
            ),
        ));
    }
    Ok(())
}

/// Whether any line holds more than blanks, a comment or a document marker.
fn has_content(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        let line = line
            .strip_prefix("---")
            .or_else(|| line.strip_prefix("..."))
            .map_or(line, str::trim_start);
        !(line.is_empty() || line.starts_with('#'))
    })
}

/// The line of the first `[` or `{` past `limit`, if there are more.
/// Every one counts, in comments and quoted strings too: deciding which are
/// structure needs a YAML lexer, and one that guessed wrong could let deep
/// nesting through. The parser's time grows with tokens x flow depth, and
/// the depth is never more than this count.
fn too_many_openings(text: &str, limit: usize) -> Option<usize> {
    let mut seen = 0usize;
    let mut line = 1;
    for c in text.chars() {
        match c {
            '\n' => line += 1,
            '[' | '{' => {
                seen += 1;
                if seen > limit {
                    return Some(line);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_comments_and_document_markers_are_no_content() {
        for text in [
            "",
            " \n\t\n",
            "# only a comment\n",
            "---\n# c\n...\n",
            "--- # c\n",
        ] {
            assert!(!has_content(text), "{text:?}");
        }
        for text in [
            "{}",
            "listen: inet:127.0.0.1:8894",
            "--- {}",
            "  dry_run: true # c",
        ] {
            assert!(has_content(text), "{text:?}");
        }
    }

    #[test]
    fn flow_openings_are_counted_everywhere_up_to_the_limit() {
        let at_limit = format!("a: {}{}", "[".repeat(128), "]".repeat(128));
        assert_eq!(too_many_openings(&at_limit, MAX_FLOW_OPENINGS), None);
        let deep = format!("a: b\nc: {}{}", "[".repeat(129), "]".repeat(129));
        assert_eq!(too_many_openings(&deep, MAX_FLOW_OPENINGS), Some(2));
        // A closing bracket in a comment cannot hide nesting.
        let hidden = "a: [[ # ]]\n".repeat(65);
        assert_eq!(too_many_openings(&hidden, MAX_FLOW_OPENINGS), Some(65));
        let shipped = include_str!("../../milter.yaml");
        assert_eq!(too_many_openings(shipped, MAX_FLOW_OPENINGS), None);
    }
}
