//! Header field helpers for the milter: the authserv-id of an incoming
//! `Authentication-Results` (RFC 8601 §2.2), folding of our own header
//! values for the milter protocol, and reply text made safe for it.

/// The authserv-id of an `Authentication-Results` value: the first token,
/// after any comments and white space, up to `;`, white space or `(`.
pub(crate) fn authserv_id(value: &str) -> Option<&str> {
    let rest = skip_cfws(value);
    let end = rest
        .find(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .unwrap_or(rest.len());
    let id = rest[..end].trim_matches('"');
    (!id.is_empty()).then_some(id)
}

/// Skips white space and (nested) comments.
fn skip_cfws(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if !s.starts_with('(') {
            return s;
        }
        let mut depth = 0usize;
        let mut escaped = false;
        let mut end = s.len();
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        s = &s[end..];
    }
}

/// Folds a header value at "; " boundaries, then at spaces, so that lines
/// stay near 78 characters; continuation lines start with a tab. The
/// milter protocol takes LF line ends (the MTA writes CRLF).
pub(crate) fn fold(name: &str, value: &str) -> String {
    const WIDTH: usize = 78;
    let mut out = String::with_capacity(value.len() + 16);
    let mut line_len = name.len() + 2;
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 {
            // Never fold before a word of no text (from a run of spaces or
            // a trailing one): that would leave a continuation line of
            // white space only, which RFC 5322 §3.2.2 forbids.
            let text = word.contains(|c| c != ' ' && c != '\t');
            if text && line_len + 1 + word.len() > WIDTH && line_len > 1 {
                out.push_str("\n\t");
                line_len = 1;
            } else {
                out.push(' ');
                line_len += 1;
            }
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

/// Reply text for the milter protocol: libmilter and Sendmail treat `%`
/// as a format character, so it is doubled.
pub(crate) fn reply_text(text: &str) -> String {
    text.replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authserv_id_is_found_after_comments_and_space() {
        assert_eq!(
            authserv_id("mx.example.org; spf=pass"),
            Some("mx.example.org")
        );
        assert_eq!(
            authserv_id("  (note (nested)) mx.example.org 1; none"),
            Some("mx.example.org")
        );
        assert_eq!(
            authserv_id("mx.example.org(c); none"),
            Some("mx.example.org")
        );
        assert_eq!(authserv_id("   "), None);
        assert_eq!(authserv_id("(unclosed"), None);
    }

    #[test]
    fn long_values_fold_with_tabs() {
        let value = "mx.example.org; spf=pass smtp.mailfrom=example.com; spf=pass smtp.helo=mail.example.com; iprev=pass policy.iprev=192.0.2.7 (mail.example.com)";
        let folded = fold("Authentication-Results", value);
        assert!(folded.contains("\n\t"));
        assert_eq!(folded.replace("\n\t", " "), value);
        for line in folded.split('\n') {
            assert!(line.len() <= 80, "{line}");
        }
    }

    #[test]
    fn percent_signs_are_doubled_in_replies() {
        assert_eq!(reply_text("see http://x/?a=%41"), "see http://x/?a=%%41");
    }
}
