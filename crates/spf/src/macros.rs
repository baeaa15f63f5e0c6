//! Macro strings and their expansion (RFC 7208 §7).
//!
//! A [`MacroString`] is parsed once, when its record is parsed, and
//! expanded during evaluation against a [`MacroValues`].

use std::fmt;
use std::net::IpAddr;

/// Where a macro string appears; this decides which macro letters are valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacroContext {
    /// A domain-spec of a mechanism or of `redirect=` / `exp=`: the
    /// letters `c`, `r` and `t` are not allowed (RFC 7208 §7.3).
    DomainSpec,
    /// The TXT record that `exp=` points at (RFC 7208 §6.2): every letter,
    /// and spaces.
    Explanation,
    /// The value of an unknown modifier: any letter, never expanded.
    Unknown,
}

/// A macro letter (RFC 7208 §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Letter {
    /// `s`: the sender.
    Sender,
    /// `l`: the local-part of the sender.
    LocalPart,
    /// `o`: the domain of the sender.
    SenderDomain,
    /// `d`: the domain being checked.
    Domain,
    /// `i`: the client IP, dotted (IPv4) or dot-separated nibbles (IPv6).
    Ip,
    /// `p`: the validated domain name of the client IP (discouraged).
    ValidatedName,
    /// `v`: `in-addr` or `ip6`.
    IpVersion,
    /// `h`: the HELO/EHLO domain.
    Helo,
    /// `c`: the client IP in readable form (explanations only).
    ClientIp,
    /// `r`: the domain of the receiving host (explanations only).
    Receiver,
    /// `t`: the current time in seconds since the epoch (explanations only).
    Timestamp,
}

impl Letter {
    fn from_char(c: char) -> Option<(Letter, bool)> {
        let letter = match c.to_ascii_lowercase() {
            's' => Letter::Sender,
            'l' => Letter::LocalPart,
            'o' => Letter::SenderDomain,
            'd' => Letter::Domain,
            'i' => Letter::Ip,
            'p' => Letter::ValidatedName,
            'v' => Letter::IpVersion,
            'h' => Letter::Helo,
            'c' => Letter::ClientIp,
            'r' => Letter::Receiver,
            't' => Letter::Timestamp,
            _ => return None,
        };
        Some((letter, c.is_ascii_uppercase()))
    }

    fn explanation_only(self) -> bool {
        matches!(
            self,
            Letter::ClientIp | Letter::Receiver | Letter::Timestamp
        )
    }
}

/// One piece of a macro string.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Literal text, with `%%`, `%_` and `%-` already resolved.
    Literal(String),
    /// A `%{…}` macro.
    Macro {
        letter: Letter,
        url_escape: bool,
        keep: Option<usize>,
        reverse: bool,
        delimiters: String,
    },
}

/// A parsed macro string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacroString {
    pieces: Vec<Piece>,
    /// Whether the text ends with a macro-expand (a `%{…}` macro or one of
    /// the escapes), which matters for the domain-end rule of RFC 7208 §7.1.
    ends_with_expand: bool,
    text: String,
}

/// A syntax error in a macro string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MacroError {
    /// `%` followed by something other than `{`, `%`, `_` or `-`.
    #[error("'%' must be followed by '{{', '%', '_' or '-' at offset {0}")]
    BadPercent(usize),
    /// A `%{` without its closing brace.
    #[error("unterminated macro at offset {0}")]
    Unterminated(usize),
    /// An unknown macro letter.
    #[error("unknown macro letter '{1}' at offset {0}")]
    UnknownLetter(usize, char),
    /// A letter that only explanations may use.
    #[error("macro letter '{1}' at offset {0} is only allowed in explanations")]
    ExplanationOnly(usize, char),
    /// A zero digit transformer, or garbage in the transformer or delimiters.
    #[error("invalid macro transformer at offset {0}")]
    BadTransformer(usize),
    /// A character that may not appear (control, non-ASCII, or space outside explanations).
    #[error("invalid character {1:?} at offset {0}")]
    BadChar(usize, char),
}

const DELIMITERS: &str = ".-+,/_=";

impl MacroString {
    /// Parses `text` as a macro string for the given context.
    pub fn parse(text: &str, context: MacroContext) -> Result<MacroString, MacroError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut ends_with_expand = false;
        let mut chars = text.char_indices().peekable();
        while let Some((pos, c)) = chars.next() {
            ends_with_expand = false;
            match c {
                '%' => {
                    ends_with_expand = true;
                    match chars.next() {
                        Some((_, '%')) => literal.push('%'),
                        Some((_, '_')) => literal.push(' '),
                        Some((_, '-')) => literal.push_str("%20"),
                        Some((_, '{')) => {
                            if !literal.is_empty() {
                                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                            }
                            pieces.push(parse_macro(&mut chars, pos, context)?);
                        }
                        _ => return Err(MacroError::BadPercent(pos)),
                    }
                }
                ' ' if context == MacroContext::Explanation => literal.push(' '),
                '!'..='~' => literal.push(c),
                _ => return Err(MacroError::BadChar(pos, c)),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(MacroString {
            pieces,
            ends_with_expand,
            text: text.to_owned(),
        })
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the text ends with a macro-expand (`%{…}`, `%%`, `%_`, `%-`).
    pub fn ends_with_expand(&self) -> bool {
        self.ends_with_expand
    }

    /// Whether any macro uses `letter`.
    pub fn uses(&self, letter: Letter) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Macro { letter: l, .. } if *l == letter))
    }

    /// Whether the string contains any `%{…}` macro at all.
    pub fn has_macros(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Macro { .. }))
    }

    /// Expands the string (RFC 7208 §7.3, §7.4) as text: the explanation
    /// string that `exp=` points at (§6.2). At most [`MAX_TEXT`] bytes are
    /// kept, the head, since the text is read from its start.
    ///
    /// Never use this for a domain-spec: a head cut would let a long
    /// macro value push the owner's part of the name out and query a name
    /// of the sender's choosing. Domain-specs go through
    /// [`expand_domain`](Self::expand_domain).
    pub fn expand(&self, values: &MacroValues<'_>) -> String {
        self.expand_bounded(values, Keep::Head)
    }

    /// Expands a domain-spec (of `a`, `mx`, `ptr`, `exists`, `include`,
    /// `redirect` or `exp=`) as the name to query: when the expansion is
    /// longer than 253 octets, whole labels are removed from the *left*
    /// until it fits (RFC 7208 §7.3), so the right-hand part, written by
    /// the record's owner, survives. This is the one path by which the
    /// evaluator turns a domain-spec into a name.
    ///
    /// Memory stays bounded however long the expansion: only its last
    /// [`TAIL_KEPT`]-odd bytes are held while expanding, which is more than
    /// the 254 bytes the cut looks at, so the result is exactly the cut of
    /// the full expansion. When even the last label is longer than 253
    /// octets nothing can be kept and the result is empty.
    pub fn expand_domain(&self, values: &MacroValues<'_>) -> String {
        truncate_domain(self.expand_bounded(values, Keep::Tail))
    }

    /// The whole expansion, unbounded: a reference for tests and fuzz
    /// targets only (its size is the product of the record's and the
    /// values' lengths).
    #[doc(hidden)]
    pub fn expand_unbounded(&self, values: &MacroValues<'_>) -> String {
        self.expand_bounded(values, Keep::All)
    }

    /// Expands, keeping memory bounded however many macros a hostile
    /// record holds: for text the first [`MAX_TEXT`] bytes, for domains
    /// enough of the tail to find the same 253-octet cut.
    fn expand_bounded(&self, values: &MacroValues<'_>, keep_part: Keep) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Macro {
                    letter,
                    url_escape,
                    keep,
                    reverse,
                    delimiters,
                } => {
                    let value = values.value(*letter);
                    let transformed = if keep.is_some() || *reverse || !delimiters.is_empty() {
                        transform(&value, *keep, *reverse, delimiters)
                    } else {
                        value
                    };
                    if *url_escape {
                        url_escape_into(&transformed, &mut out);
                    } else {
                        out.push_str(&transformed);
                    }
                }
            }
            match keep_part {
                Keep::Head if out.len() > MAX_TEXT => {
                    let mut cut = MAX_TEXT;
                    while !out.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    out.truncate(cut);
                    return out;
                }
                Keep::Tail if out.len() > 2 * TAIL_KEPT => {
                    let mut cut = out.len() - TAIL_KEPT;
                    while !out.is_char_boundary(cut) {
                        cut += 1;
                    }
                    out.drain(..cut);
                }
                _ => {}
            }
        }
        out
    }
}

/// The most text an expansion keeps.
pub const MAX_TEXT: usize = 4096;

/// How much of a long domain expansion's tail is kept while expanding;
/// more than the 254 bytes the final cut needs.
const TAIL_KEPT: usize = 1024;

#[derive(Clone, Copy)]
enum Keep {
    /// Text: the first [`MAX_TEXT`] bytes.
    Head,
    /// A domain: at least the last [`TAIL_KEPT`] bytes.
    Tail,
    /// Everything (tests only).
    All,
}

impl fmt::Display for MacroString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_macro(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    start: usize,
    context: MacroContext,
) -> Result<Piece, MacroError> {
    let (lpos, lc) = chars.next().ok_or(MacroError::Unterminated(start))?;
    let (letter, url_escape) = Letter::from_char(lc).ok_or(MacroError::UnknownLetter(lpos, lc))?;
    if context == MacroContext::DomainSpec && letter.explanation_only() {
        return Err(MacroError::ExplanationOnly(lpos, lc));
    }
    let mut keep: Option<usize> = None;
    let mut reverse = false;
    let mut delimiters = String::new();
    let mut digits_done = false;
    loop {
        let (pos, c) = chars.next().ok_or(MacroError::Unterminated(start))?;
        match c {
            '}' => break,
            '0'..='9' if !digits_done && !reverse && delimiters.is_empty() => {
                let digit = c as usize - '0' as usize;
                keep = Some(keep.unwrap_or(0).saturating_mul(10).saturating_add(digit));
            }
            'r' | 'R' if !reverse && delimiters.is_empty() => {
                digits_done = true;
                reverse = true;
            }
            c if DELIMITERS.contains(c) => {
                digits_done = true;
                delimiters.push(c);
            }
            _ => return Err(MacroError::BadTransformer(pos)),
        }
    }
    if keep == Some(0) {
        return Err(MacroError::BadTransformer(start));
    }
    Ok(Piece::Macro {
        letter,
        url_escape,
        keep,
        reverse,
        delimiters,
    })
}

/// Splits on any of the delimiters (default "."), optionally reverses,
/// keeps the rightmost `keep` parts and joins with "." (RFC 7208 §7.3).
fn transform(value: &str, keep: Option<usize>, reverse: bool, delimiters: &str) -> String {
    let delims = if delimiters.is_empty() {
        "."
    } else {
        delimiters
    };
    let mut parts: Vec<&str> = value.split(|c| delims.contains(c)).collect();
    if reverse {
        parts.reverse();
    }
    if let Some(n) = keep
        && n < parts.len()
    {
        parts.drain(..parts.len() - n);
    }
    parts.join(".")
}

/// Percent-encodes everything but RFC 3986 unreserved characters (RFC 7208 §7.3).
fn url_escape_into(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Removes labels from the left until the name is at most 253 octets
/// (RFC 7208 §7.3): the result starts after the first dot that leaves 253
/// or fewer (one pass, whatever the length). It looks at the last 254
/// bytes only, so a kept tail of the expansion gives the same cut.
fn truncate_domain(mut name: String) -> String {
    if name.len() <= 253 {
        return name;
    }
    let from = name.len() - 254;
    match name.as_bytes()[from..].iter().position(|b| *b == b'.') {
        Some(pos) => {
            name.drain(..=from + pos);
            name
        }
        // The last label alone is longer than 253: nothing sensible is left.
        None => String::new(),
    }
}

/// The values macros expand to.
#[derive(Clone, Debug)]
pub struct MacroValues<'a> {
    /// `s`: the sender, `local@domain`.
    pub sender: &'a str,
    /// `l`: the local-part (`postmaster` when the sender had none).
    pub local_part: &'a str,
    /// `o`: the domain of the sender.
    pub sender_domain: &'a str,
    /// `d`: the current domain.
    pub domain: &'a str,
    /// The client address (gives `i`, `c`, `v`).
    pub ip: IpAddr,
    /// `h`: the HELO/EHLO domain.
    pub helo: &'a str,
    /// `p`: the validated domain name, or `unknown`.
    pub validated_name: &'a str,
    /// `r`: the receiving host's domain.
    pub receiver: &'a str,
    /// `t`: seconds since the epoch.
    pub timestamp: u64,
}

impl MacroValues<'_> {
    fn value(&self, letter: Letter) -> String {
        match letter {
            Letter::Sender => self.sender.to_owned(),
            Letter::LocalPart => self.local_part.to_owned(),
            Letter::SenderDomain => self.sender_domain.to_owned(),
            Letter::Domain => self.domain.to_owned(),
            Letter::Ip => dotted_ip(self.ip),
            Letter::ValidatedName => self.validated_name.to_owned(),
            Letter::IpVersion => match self.ip {
                IpAddr::V4(_) => "in-addr".to_owned(),
                IpAddr::V6(_) => "ip6".to_owned(),
            },
            Letter::Helo => self.helo.to_owned(),
            Letter::ClientIp => self.ip.to_string(),
            Letter::Receiver => self.receiver.to_owned(),
            Letter::Timestamp => self.timestamp.to_string(),
        }
    }
}

/// The `i` form of an address: dotted quad, or dot-separated nibbles for IPv6
/// (RFC 7208 §7.3).
fn dotted_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(63);
            for byte in v6.octets() {
                for nibble in [byte >> 4, byte & 0x0f] {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(ip: &str) -> MacroValues<'static> {
        // The examples of RFC 7208 §7.4.
        MacroValues {
            sender: "strong-bad@email.example.com",
            local_part: "strong-bad",
            sender_domain: "email.example.com",
            domain: "email.example.com",
            ip: ip.parse().unwrap(),
            helo: "mx.example.org",
            validated_name: "unknown",
            receiver: "mx.example.net",
            timestamp: 1_700_000_000,
        }
    }

    fn expand(text: &str, ip: &str) -> String {
        MacroString::parse(text, MacroContext::Explanation)
            .unwrap()
            .expand(&values(ip))
    }

    #[test]
    fn rfc7208_examples_expand_as_published() {
        let v4 = "192.0.2.3";
        assert_eq!(expand("%{s}", v4), "strong-bad@email.example.com");
        assert_eq!(expand("%{o}", v4), "email.example.com");
        assert_eq!(expand("%{d}", v4), "email.example.com");
        assert_eq!(expand("%{d4}", v4), "email.example.com");
        assert_eq!(expand("%{d3}", v4), "email.example.com");
        assert_eq!(expand("%{d2}", v4), "example.com");
        assert_eq!(expand("%{d1}", v4), "com");
        assert_eq!(expand("%{dr}", v4), "com.example.email");
        assert_eq!(expand("%{d2r}", v4), "example.email");
        assert_eq!(expand("%{l}", v4), "strong-bad");
        assert_eq!(expand("%{l-}", v4), "strong.bad");
        assert_eq!(expand("%{lr}", v4), "strong-bad");
        assert_eq!(expand("%{lr-}", v4), "bad.strong");
        assert_eq!(expand("%{l1r-}", v4), "strong");
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", v4),
            "3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(
            expand("%{lr-}.lp._spf.%{d2}", v4),
            "bad.strong.lp._spf.example.com"
        );
        assert_eq!(
            expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", v4),
            "3.2.0.192.in-addr.strong.lp._spf.example.com"
        );
        assert_eq!(
            expand("%{d2}.trusted-domains.example.net", v4),
            "example.com.trusted-domains.example.net"
        );
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01"),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
    }

    #[test]
    fn escapes_and_url_encoding() {
        assert_eq!(expand("a%%b%_c%-d", "192.0.2.3"), "a%b c%20d");
        let mut v = values("192.0.2.3");
        v.local_part = "~jack&jill=up-a_b3.c";
        let ms = MacroString::parse("%{L}", MacroContext::Explanation).unwrap();
        assert_eq!(ms.expand(&v), "~jack%26jill%3Dup-a_b3.c");
    }

    #[test]
    fn explanation_only_letters_are_refused_in_domain_specs() {
        assert!(matches!(
            MacroString::parse("%{r}.example.com", MacroContext::DomainSpec),
            Err(MacroError::ExplanationOnly(..))
        ));
        assert!(MacroString::parse("%{c}", MacroContext::Explanation).is_ok());
    }

    #[test]
    fn malformed_macros_are_errors() {
        for bad in [
            "%(ir)", "foo%.bar", "%{a}", "%{d0}", "%{", "%{d", "%{dx}", "%",
        ] {
            assert!(
                MacroString::parse(bad, MacroContext::DomainSpec).is_err(),
                "{bad} should not parse"
            );
        }
    }

    #[test]
    fn huge_digit_transformer_keeps_everything() {
        assert_eq!(
            expand("%{d99999999999999999999999}", "192.0.2.3"),
            "email.example.com"
        );
    }

    #[test]
    fn long_expansions_lose_labels_from_the_left() {
        let long = format!("{}.example.com", ["abcdefghij"; 30].join("."));
        let cut = truncate_domain(long);
        assert!(cut.len() <= 253);
        assert!(cut.ends_with(".example.com"));
        assert!(cut.starts_with("abcdefghij."));
    }

    #[test]
    fn ends_with_expand_is_tracked() {
        let p = |s| MacroString::parse(s, MacroContext::DomainSpec).unwrap();
        assert!(p("foo.%{d}").ends_with_expand());
        assert!(p("foo.%%").ends_with_expand());
        assert!(!p("%{d}.example.com").ends_with_expand());
    }
}
