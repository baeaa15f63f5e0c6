//! The checks of the fuzz targets for what the milter reads from the
//! network and what the daemon reads from its configuration file
//! (`fuzz/fuzz_targets/authserv_id.rs`, `reply_text.rs`, `header_fold.rs`,
//! `config_load.rs`), here so that the workspace tests run the same code
//! over the seed corpus (`tests/fuzz_seeds.rs`) and it cannot rot.
//!
//! Each function takes the fuzzer's bytes and panics, naming the input,
//! when a property does not hold. They call the functions the milter and
//! the daemon call, nothing else. Not a stable interface. The SPF
//! targets' checks are in [`tollgate_spf::fuzzing`].

use std::path::Path;

use crate::config::Config;
use crate::milter::fields;

/// Header lines (RFC 5322 §2.1.1): at most 998 octets; the folding aims at 78.
const FOLD_WIDTH: usize = 78;

/// The `authserv_id` target: the authserv-id of an incoming
/// `Authentication-Results` value (RFC 8601 §2.2), which decides whether
/// the milter removes a header field that claims to be ours. Found ids
/// are a non-empty part of the value, free of the characters that end the
/// token, and read back as themselves.
pub fn authserv_id(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let Some(id) = fields::authserv_id(&value) else {
        return;
    };
    assert!(!id.is_empty(), "empty id from {value:?}");
    assert!(value.contains(id), "{id:?} is not part of {value:?}");
    assert!(
        !id.contains(|c: char| c == ';' || c == '(' || c.is_whitespace()),
        "{id:?} from {value:?} holds a token end"
    );
    assert!(
        !id.starts_with('"') && !id.ends_with('"'),
        "{id:?} is quoted"
    );
    assert_eq!(
        fields::authserv_id(id),
        Some(id),
        "{id:?} does not read back"
    );
}

/// The `reply_text` target: text for an SMTP reply made safe for the
/// milter protocol. Every `%` comes out doubled (libmilter formats the
/// text), and undoubling gives the text back.
pub fn reply_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let reply = fields::reply_text(&text);
    let mut rest = reply.as_str();
    while let Some(at) = rest.find('%') {
        assert!(
            rest[at + 1..].starts_with('%'),
            "a single '%' in {reply:?} from {text:?}"
        );
        rest = &rest[at + 2..];
    }
    assert_eq!(reply.replace("%%", "%"), text);
}

/// The `header_fold` target: the input up to the first newline is the
/// header name, the rest the value (which has no line break of its own,
/// as the values tollgate builds). Folding only turns spaces into a line
/// break and a tab; no continuation line is empty or only white space
/// (RFC 5322 §3.2.2); a line longer than the folding width, not counting
/// white space at its end, is one word.
pub fn header_fold(data: &[u8]) {
    let data = String::from_utf8_lossy(data);
    let (name, value) = data.split_once('\n').unwrap_or(("Received-SPF", &data));
    if value.contains(['\n', '\r']) {
        return;
    }
    let folded = fields::fold(name, value);
    assert_eq!(
        folded.replace("\n\t", " "),
        value,
        "folding changed the text"
    );
    for (i, line) in folded.split("\n\t").enumerate() {
        let prefix = if i == 0 { name.len() + 2 } else { 1 };
        if i > 0 {
            assert!(
                !line.trim_matches([' ', '\t']).is_empty(),
                "a continuation line of white space in {folded:?}"
            );
        }
        // White space at the end of a line (a run of spaces, a word of
        // tabs) may pass the width: folding there would only move it.
        let used = prefix + line.trim_end_matches([' ', '\t']).len();
        if used > FOLD_WIDTH {
            assert!(
                !line.trim_matches([' ', '\t']).contains(' '),
                "line {i} of {used} octets could have been folded: {folded:?}"
            );
        }
    }
}

/// The `config_load` target: configuration text through
/// [`Config::parse`], as the daemon loads a file at start and on SIGHUP.
/// It never panics, and a refused file gets one line that names the file.
pub fn config_load(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = Config::parse(&text, Path::new("fuzz.yaml")) {
        let line = e.to_string();
        assert!(line.starts_with("fuzz.yaml: "), "{line:?}");
        assert!(!line.contains(['\n', '\r']), "{line:?} is not one line");
        assert!(!e.problem.is_empty(), "{line:?} names no problem");
    }
}
