//! Mail as the tests see it: the messages they send ([`message`]), the
//! messages an MTA delivered ([`Message`], found by a marker with
//! [`wait_for_delivery`]), and their `Received-SPF` fields taken apart
//! ([`ReceivedSpf`], RFC 7208 §9.1).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{WAIT, wait_for};

/// A delivered message: its raw text, split into header fields.
#[derive(Debug, Clone)]
pub struct Message {
    /// The whole message as stored.
    pub raw: String,
}

impl Message {
    /// The header fields in order, each unfolded into one line `Name: value`.
    pub fn headers(&self) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        for line in self.raw.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                break;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                continue;
            }
            if fields.is_empty() && line.starts_with("From ") {
                continue; // mbox separator
            }
            fields.push(line.to_owned());
        }
        fields
    }

    /// The names of the header fields, in order.
    pub fn header_names(&self) -> Vec<String> {
        self.headers()
            .iter()
            .map(|h| h.split(':').next().unwrap_or("").to_owned())
            .collect()
    }

    /// The fields named `name` (case-insensitive), unfolded.
    pub fn fields(&self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|h| {
                h.split(':')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .collect()
    }

    /// Position of the first field named `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.header_names()
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Reads the messages under `dir` (files, recursively) whose text contains
/// `marker`, waiting up to [`WAIT`] for at least one.
pub fn wait_for_delivery(dir: &Path, marker: &str) -> Vec<Message> {
    wait_for(
        WAIT,
        &format!("a message containing {marker:?} under {}", dir.display()),
        || {
            let found = messages_containing(dir, marker);
            (!found.is_empty()).then_some(found)
        },
    )
}

/// The files under `dir` (recursively) whose text contains `marker`.
pub fn messages_containing(dir: &Path, marker: &str) -> Vec<Message> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                // A Maildir's tmp/ holds messages still being written.
                if p.file_name().is_some_and(|n| n != "tmp") {
                    stack.push(p);
                }
            } else if let Ok(bytes) = fs::read(&p) {
                let raw = String::from_utf8_lossy(&bytes).into_owned();
                if raw.contains(marker) {
                    out.push(Message { raw });
                }
            }
        }
    }
    out
}

/// A message with a unique marker in its Subject (and `extra_headers`,
/// each ending in a newline, on top).
pub fn message(marker: &str, extra_headers: &str) -> String {
    format!(
        "{extra_headers}From: Alice <alice@example.com>\n\
         To: Bob <bob@example.org>\n\
         Subject: {marker}\n\
         Message-ID: <{marker}@example.com>\n\
         \n\
         Hello from {marker}.\n"
    )
}

/// A `Received-SPF` header field taken apart (RFC 7208 §9.1):
/// `Received-SPF: result (comment) key=value; key="quoted value"; ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpf {
    /// The result word, lower-cased: `pass`, `fail`, ...
    pub result: String,
    /// The comment, without its parentheses (empty if there is none).
    pub comment: String,
    /// The key-value pairs, keys lower-cased, quoted strings unquoted.
    pub params: BTreeMap<String, String>,
}

impl ReceivedSpf {
    /// Parses one unfolded field (`Received-SPF: ...`, as
    /// [`Message::fields`] returns it); `None` if it is not one.
    pub fn parse(field: &str) -> Option<ReceivedSpf> {
        let (name, value) = field.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("Received-SPF") {
            return None;
        }
        let value = value.trim();
        let (result, mut rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        rest = rest.trim_start();
        let mut comment = String::new();
        if rest.starts_with('(') {
            // A comment may nest and hold quoted pairs (RFC 5322 §3.2.2).
            let mut depth = 0usize;
            let mut escaped = false;
            let mut end = None;
            for (i, c) in rest.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end?;
            comment = rest[1..end].to_owned();
            rest = rest[end + 1..].trim_start();
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace() || *c == ';').is_some() {}
            let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
            if chars.next() != Some('=') {
                break;
            }
            let mut val = String::new();
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => val.extend(chars.next()),
                        '"' => break,
                        _ => val.push(c),
                    }
                }
            } else {
                val.extend(std::iter::from_fn(|| {
                    chars.next_if(|c| *c != ';' && !c.is_whitespace())
                }));
            }
            params.insert(key.trim().to_ascii_lowercase(), val);
        }
        Some(ReceivedSpf {
            result: result.to_ascii_lowercase(),
            comment,
            params,
        })
    }

    /// The value of `key` (lower case), if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

impl Message {
    /// The `Received-SPF` fields, topmost first, taken apart; a field that
    /// does not parse fails the test.
    pub fn received_spf(&self) -> Vec<ReceivedSpf> {
        self.fields("Received-SPF")
            .iter()
            .map(|f| {
                ReceivedSpf::parse(f).unwrap_or_else(|| panic!("unparsable Received-SPF: {f}"))
            })
            .collect()
    }
}
