//! The records at one name as published: choosing the SPF record among the
//! TXT records (RFC 7208 §4.5), and what can go wrong before a single term
//! is read: the version tag, strings glued together (§3.3), and size (§3.4).

use tollgate_dns::CharacterStrings;
use tollgate_spf::Record;

use super::{Code, Findings};

/// The largest record RFC 7208 §3.4 recommends.
pub const RECORD_LIMIT: usize = 450;
/// The largest DNS message over UDP without EDNS (RFC 1035 §4.2.1).
pub const UDP_LIMIT: usize = 512;
/// The longest character-string (RFC 1035 §3.3).
pub const STRING_LIMIT: usize = 255;

/// What a TXT answer holds for SPF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Selected {
    /// No `v=spf1` record.
    None,
    /// Exactly one, joined.
    One(String),
    /// Several: a permerror at receivers (§4.5).
    Many(Vec<String>),
}

/// A record's strings joined as receivers join them (§3.3): nothing in between.
pub(crate) fn joined(record: &CharacterStrings) -> String {
    String::from_utf8_lossy(&record.concat()).into_owned()
}

/// The size of the DNS response carrying `records` as the TXT answer for
/// `name`, without EDNS: header, question, and each record with a
/// compressed owner name. The `Lookup` layer does not report the real
/// message size, so this is computed from the data, as an authoritative
/// server would build the answer (RFC 1035 §4.1).
pub fn answer_size(name: &str, records: &[CharacterStrings]) -> usize {
    let name = name.trim_end_matches('.');
    let qname = if name.is_empty() { 1 } else { name.len() + 2 };
    let header = 12;
    let question = qname + 4;
    let answers: usize = records
        .iter()
        .map(|strings| {
            // A string over 255 octets goes out as several.
            let rdata: usize = strings
                .iter()
                .map(|s| s.len() + s.len().div_ceil(STRING_LIMIT).max(1))
                .sum::<usize>()
                .max(1);
            2 + 10 + rdata
        })
        .sum();
    header + question + answers
}

/// Chooses the SPF record at `domain` and reports what is wrong with the
/// answer as published. With `report` false only the choice is made (the
/// name was linted before).
pub(crate) fn select(
    domain: &str,
    records: &[CharacterStrings],
    report: bool,
    out: &mut Findings,
) -> Selected {
    let mut spf: Vec<(String, &CharacterStrings)> = Vec::new();
    for record in records {
        let text = joined(record);
        if Record::is_spf1(&text) {
            spf.push((text, record));
        } else if report && text.to_ascii_lowercase().contains("v=spf1") {
            out.add(
                Code::VersionMisplaced,
                domain,
                format!(
                    "a TXT record at {domain} contains \"v=spf1\" but does not start with \
                     \"v=spf1\" and a space, so receivers ignore it: \"{}\"",
                    head(&text)
                ),
            );
        }
    }
    if report {
        for (text, strings) in &spf {
            check_published(domain, text, strings, out);
        }
        let size = answer_size(domain, records);
        if size > UDP_LIMIT {
            out.add(
                Code::AnswerNeedsTcp,
                domain,
                format!(
                    "the TXT answer for {domain} is about {size} octets ({} TXT record{}), \
                     over the {UDP_LIMIT} of a plain UDP answer: receivers must retry over TCP",
                    records.len(),
                    if records.len() == 1 { "" } else { "s" }
                ),
            );
        }
    }
    match spf.len() {
        0 => Selected::None,
        1 => Selected::One(spf.remove(0).0),
        _ => {
            if report {
                out.add(
                    Code::MultipleRecords,
                    domain,
                    format!(
                        "{domain} publishes {} v=spf1 records; receivers give permerror",
                        spf.len()
                    ),
                );
            }
            Selected::Many(spf.into_iter().map(|(t, _)| t).collect())
        }
    }
}

/// Version case, size and strings of one SPF record.
fn check_published(domain: &str, text: &str, strings: &CharacterStrings, out: &mut Findings) {
    if !text.starts_with("v=spf1") {
        out.add(
            Code::VersionCase,
            domain,
            format!(
                "the record at {domain} starts with \"{}\", not \"v=spf1\"",
                text.get(..6).unwrap_or(text)
            ),
        );
    }
    if text.len() > RECORD_LIMIT {
        out.add(
            Code::RecordTooLong,
            domain,
            format!(
                "the record at {domain} is {} octets, over the {RECORD_LIMIT} RFC 7208 recommends",
                text.len()
            ),
        );
    }
    for (i, s) in strings.iter().enumerate() {
        if s.len() > STRING_LIMIT {
            out.add(
                Code::StringTooLong,
                domain,
                format!(
                    "string {} of the record at {domain} is {} octets; a DNS string holds at most {STRING_LIMIT}",
                    i + 1,
                    s.len()
                ),
            );
        }
    }
    glued(domain, strings, out);
}

/// Finds string boundaries inside a term where both halves are terms of
/// their own: the author meant a space there (§3.3 joins with nothing).
fn glued(domain: &str, strings: &CharacterStrings, out: &mut Findings) {
    let bytes = strings.concat();
    let mut boundary = 0;
    for (i, s) in strings
        .iter()
        .enumerate()
        .take(strings.len().saturating_sub(1))
    {
        boundary += s.len();
        let b = boundary;
        if b == 0 || b >= bytes.len() || bytes[b - 1] == b' ' || bytes[b] == b' ' {
            continue;
        }
        let start = bytes[..b]
            .iter()
            .rposition(|&c| c == b' ')
            .map_or(0, |p| p + 1);
        let end = bytes[b..]
            .iter()
            .position(|&c| c == b' ')
            .map_or(bytes.len(), |p| b + p);
        let (Ok(left), Ok(right)) = (
            std::str::from_utf8(&bytes[start..b]),
            std::str::from_utf8(&bytes[b..end]),
        ) else {
            continue;
        };
        let left_ok = if start == 0 {
            left.eq_ignore_ascii_case("v=spf1")
        } else {
            is_term(left)
        };
        if left_ok && is_term(right) {
            out.add(
                Code::GluedStrings,
                format!("{left}{right}"),
                format!(
                    "in the record at {domain}, string {} ends with \"{left}\" and string {} \
                     starts with \"{right}\": joined without a space they make one term, \
                     \"{left}{right}\"",
                    i + 1,
                    i + 2
                ),
            );
        }
    }
}

/// Whether `text` (no spaces) is one valid SPF term.
pub(crate) fn is_term(text: &str) -> bool {
    !text.is_empty()
        && !text.contains(' ')
        && Record::parse(&format!("v=spf1 {text}")).is_ok_and(|r| {
            r.directives.len()
                + r.unknown.len()
                + usize::from(r.redirect.is_some())
                + usize::from(r.exp.is_some())
                == 1
        })
}

/// The start of a text, for quoting.
pub(crate) fn head(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if text.chars().nth(60).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(parts: &[&str]) -> CharacterStrings {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn answer_size_counts_header_question_and_each_string() {
        // 12 + (11 + 2 + 4) + (2 + 10 + 1 + 11)
        assert_eq!(answer_size("example.com", &[strings(&["v=spf1 -all"])]), 53);
        // A 300-octet string goes out as two.
        let long = vec![vec![b'a'; 300]];
        assert_eq!(answer_size("example.com", &[long]), 12 + 17 + 12 + 302);
    }

    #[test]
    fn glued_terms_are_found_and_mid_term_splits_are_not() {
        let mut out = Findings::default();
        glued(
            "example.com",
            &strings(&["v=spf1 ip4:192.0.2.0/24", "include:_spf.example.net -all"]),
            &mut out,
        );
        assert!(out.has(Code::GluedStrings));
        let mut out = Findings::default();
        glued(
            "example.com",
            &strings(&[
                "v=spf1 ip4:192.0.",
                "2.0/24 include:_spf.exam",
                "ple.net -all",
            ]),
            &mut out,
        );
        assert!(!out.has(Code::GluedStrings));
        let mut out = Findings::default();
        glued("example.com", &strings(&["v=spf1", "mx -all"]), &mut out);
        assert!(out.has(Code::GluedStrings));
    }

    #[test]
    fn terms_are_recognised_one_at_a_time() {
        assert!(is_term("include:_spf.example.net"));
        assert!(is_term("-all"));
        assert!(is_term("redirect=_spf.example.net"));
        assert!(!is_term("ple.net"));
        assert!(!is_term("ip4:192.0."));
        assert!(!is_term("a mx"));
    }
}
