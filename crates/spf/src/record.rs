//! SPF records: the terms of RFC 7208 §4.6.1 and §5–§6, and their parser.
//!
//! The whole record is parsed before evaluation, so a syntax error anywhere
//! is a permerror even if an earlier mechanism would have matched
//! (RFC 7208 §4.6). Errors name the offending term and its position.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::macros::{MacroContext, MacroError, MacroString};

/// A directive's qualifier (RFC 7208 §4.6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `+`: pass.
    Pass,
    /// `-`: fail.
    Fail,
    /// `~`: softfail.
    SoftFail,
    /// `?`: neutral.
    Neutral,
}

/// A mechanism (RFC 7208 §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// `all`.
    All,
    /// `include:<domain-spec>`.
    Include(MacroString),
    /// `a[:<domain-spec>][/<cidr4>][//<cidr6>]`.
    A {
        /// The target; the current domain when absent.
        domain: Option<MacroString>,
        /// IPv4 prefix length (32 when absent).
        cidr4: u8,
        /// IPv6 prefix length (128 when absent).
        cidr6: u8,
    },
    /// `mx[:<domain-spec>][/<cidr4>][//<cidr6>]`.
    Mx {
        /// The target; the current domain when absent.
        domain: Option<MacroString>,
        /// IPv4 prefix length (32 when absent).
        cidr4: u8,
        /// IPv6 prefix length (128 when absent).
        cidr6: u8,
    },
    /// `ptr[:<domain-spec>]`.
    Ptr(Option<MacroString>),
    /// `ip4:<network>[/<cidr>]`.
    Ip4(Ipv4Addr, u8),
    /// `ip6:<network>[/<cidr>]`.
    Ip6(Ipv6Addr, u8),
    /// `exists:<domain-spec>`.
    Exists(MacroString),
}

impl Mechanism {
    /// Whether evaluating this mechanism queries DNS, and so counts
    /// against the limit of 10 (RFC 7208 §4.6.4).
    pub fn queries_dns(&self) -> bool {
        !matches!(
            self,
            Mechanism::All | Mechanism::Ip4(..) | Mechanism::Ip6(..)
        )
    }
}

/// A directive: a qualifier and a mechanism, and the text it was written as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The qualifier (`+` when not written).
    pub qualifier: Qualifier,
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The term as written in the record.
    pub text: String,
}

/// A modifier (RFC 7208 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Modifier {
    /// `redirect=<domain-spec>`.
    Redirect(MacroString),
    /// `exp=<domain-spec>`.
    Exp(MacroString),
    /// Any other `name=value`, ignored in evaluation (RFC 7208 §6).
    Unknown {
        /// The modifier name as written.
        name: String,
        /// Its value.
        value: MacroString,
    },
}

/// A parsed SPF record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The directives in order.
    pub directives: Vec<Directive>,
    /// `redirect=`, if present (at most one).
    pub redirect: Option<MacroString>,
    /// `exp=`, if present (at most one).
    pub exp: Option<MacroString>,
    /// Unknown modifiers, kept for display.
    pub unknown: Vec<(String, MacroString)>,
}

/// What is wrong with a term.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TermError {
    /// A character outside printable ASCII.
    #[error("{0:?} is not allowed in an SPF record (printable ASCII only)")]
    BadChar(char),
    /// Not a known mechanism, and not a modifier.
    #[error("unknown mechanism")]
    UnknownMechanism,
    /// A mechanism that takes no argument was given one, or vice versa.
    #[error("{0}")]
    BadArgument(&'static str),
    /// A domain-spec that does not end in a macro or a valid top label (RFC 7208 §7.1).
    #[error("invalid domain-spec: {0}")]
    BadDomain(&'static str),
    /// An IPv4 or IPv6 address that does not parse.
    #[error("invalid {0} address")]
    BadAddress(&'static str),
    /// A CIDR length that is malformed or out of range.
    #[error("invalid CIDR length")]
    BadCidr,
    /// A macro error.
    #[error(transparent)]
    Macro(#[from] MacroError),
    /// A second `redirect=` or `exp=`.
    #[error("duplicate {0}= modifier")]
    Duplicate(&'static str),
    /// The text does not begin with `v=spf1` and a space or its end.
    #[error("not an SPF version 1 record")]
    NotSpf1,
}

/// A syntax error in a record: which term, where, and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in term {position} \"{term}\": {error}")]
pub struct ParseError {
    /// The offending term as written (control characters escaped).
    pub term: String,
    /// Its 1-based position among the record's terms.
    pub position: usize,
    /// Its byte offset in the record.
    pub offset: usize,
    /// What is wrong.
    pub error: TermError,
}

impl Record {
    /// Whether `text` is an SPF version 1 record: it begins with `v=spf1`
    /// (any case) followed by a space or the end (RFC 7208 §4.5).
    pub fn is_spf1(text: &str) -> bool {
        let bytes = text.as_bytes();
        bytes.len() >= 6
            && bytes[..6].eq_ignore_ascii_case(b"v=spf1")
            && (bytes.len() == 6 || bytes[6] == b' ')
    }

    /// Parses a record; text that [`is_spf1`](Self::is_spf1) refuses is
    /// an error at position 0.
    pub fn parse(text: &str) -> Result<Record, ParseError> {
        if !Record::is_spf1(text) {
            let version: String = text.chars().take(8).collect();
            return Err(ParseError {
                term: version.escape_debug().to_string(),
                position: 0,
                offset: 0,
                error: TermError::NotSpf1,
            });
        }
        let mut record = Record {
            directives: Vec::new(),
            redirect: None,
            exp: None,
            unknown: Vec::new(),
        };
        let body = text.get(6..).unwrap_or("");
        let mut position = 0;
        let mut offset = 6;
        for raw in body.split(' ') {
            let term_offset = offset;
            offset += raw.len() + 1;
            if raw.is_empty() {
                continue;
            }
            position += 1;
            let fail = |error| ParseError {
                term: raw.escape_debug().to_string(),
                position,
                offset: term_offset,
                error,
            };
            if let Some(c) = raw.chars().find(|c| !matches!(c, '!'..='~')) {
                return Err(fail(TermError::BadChar(c)));
            }
            match parse_term(raw).map_err(fail)? {
                Term::Directive(d) => record.directives.push(d),
                Term::Modifier(Modifier::Redirect(target)) => {
                    if record.redirect.replace(target).is_some() {
                        return Err(fail(TermError::Duplicate("redirect")));
                    }
                }
                Term::Modifier(Modifier::Exp(target)) => {
                    if record.exp.replace(target).is_some() {
                        return Err(fail(TermError::Duplicate("exp")));
                    }
                }
                Term::Modifier(Modifier::Unknown { name, value }) => {
                    record.unknown.push((name, value));
                }
            }
        }
        Ok(record)
    }

    /// How many terms of this record query DNS (mechanisms and `redirect=`).
    pub fn dns_terms(&self) -> usize {
        self.directives
            .iter()
            .filter(|d| d.mechanism.queries_dns())
            .count()
            + usize::from(self.redirect.is_some())
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=spf1")?;
        for d in &self.directives {
            write!(f, " {}", d.text)?;
        }
        if let Some(r) = &self.redirect {
            write!(f, " redirect={r}")?;
        }
        if let Some(e) = &self.exp {
            write!(f, " exp={e}")?;
        }
        for (name, value) in &self.unknown {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

enum Term {
    Directive(Directive),
    Modifier(Modifier),
}

/// `name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )` followed by `=`.
fn modifier_name(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some((name, value))
}

fn parse_term(term: &str) -> Result<Term, TermError> {
    if let Some((name, value)) = modifier_name(term) {
        let modifier = if name.eq_ignore_ascii_case("redirect") {
            Modifier::Redirect(domain_spec(value)?)
        } else if name.eq_ignore_ascii_case("exp") {
            Modifier::Exp(domain_spec(value)?)
        } else {
            Modifier::Unknown {
                name: name.to_owned(),
                value: MacroString::parse(value, MacroContext::Unknown)?,
            }
        };
        return Ok(Term::Modifier(modifier));
    }

    let (qualifier, rest) = match term.as_bytes()[0] {
        b'+' => (Qualifier::Pass, &term[1..]),
        b'-' => (Qualifier::Fail, &term[1..]),
        b'~' => (Qualifier::SoftFail, &term[1..]),
        b'?' => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    let name_end = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, args) = rest.split_at(name_end);
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if args.is_empty() => Mechanism::All,
        "all" => return Err(TermError::BadArgument("all takes no argument")),
        "include" => Mechanism::Include(required_domain(args, "include")?),
        "exists" => Mechanism::Exists(required_domain(args, "exists")?),
        "ptr" => match args.strip_prefix(':') {
            Some(spec) => Mechanism::Ptr(Some(domain_spec(spec)?)),
            None if args.is_empty() => Mechanism::Ptr(None),
            None => return Err(TermError::BadArgument("ptr takes no CIDR length")),
        },
        "a" => {
            let (domain, cidr4, cidr6) = domain_and_cidrs(args)?;
            Mechanism::A {
                domain,
                cidr4,
                cidr6,
            }
        }
        "mx" => {
            let (domain, cidr4, cidr6) = domain_and_cidrs(args)?;
            Mechanism::Mx {
                domain,
                cidr4,
                cidr6,
            }
        }
        "ip4" => {
            let spec = args
                .strip_prefix(':')
                .ok_or(TermError::BadArgument("ip4 needs an address"))?;
            let (addr, len) = split_cidr(spec, 32)?;
            let addr = addr
                .parse::<Ipv4Addr>()
                .map_err(|_| TermError::BadAddress("IPv4"))?;
            Mechanism::Ip4(addr, len)
        }
        "ip6" => {
            let spec = args
                .strip_prefix(':')
                .ok_or(TermError::BadArgument("ip6 needs an address"))?;
            let (addr, len) = split_cidr(spec, 128)?;
            let addr = addr
                .parse::<Ipv6Addr>()
                .map_err(|_| TermError::BadAddress("IPv6"))?;
            Mechanism::Ip6(addr, len)
        }
        _ => return Err(TermError::UnknownMechanism),
    };
    Ok(Term::Directive(Directive {
        qualifier,
        mechanism,
        text: term.to_owned(),
    }))
}

fn required_domain(args: &str, mechanism: &'static str) -> Result<MacroString, TermError> {
    match args.strip_prefix(':') {
        Some(spec) => domain_spec(spec),
        None => Err(TermError::BadArgument(match mechanism {
            "include" => "include needs a domain",
            _ => "exists needs a domain",
        })),
    }
}

/// Parses `[:domain-spec][/cidr4][//cidr6]` for `a` and `mx` (RFC 7208 §5.3, §5.4).
fn domain_and_cidrs(args: &str) -> Result<(Option<MacroString>, u8, u8), TermError> {
    let (rest, cidr6) = match strip_cidr(args, "//") {
        Some((rest, len)) => (rest, parse_len(len, 128)?),
        None => (args, 128),
    };
    let (rest, cidr4) = match strip_cidr(rest, "/") {
        Some((rest, len)) => (rest, parse_len(len, 32)?),
        None => (rest, 32),
    };
    let domain = if rest.is_empty() {
        None
    } else if let Some(spec) = rest.strip_prefix(':') {
        Some(domain_spec(spec)?)
    } else if rest.starts_with('/') {
        return Err(TermError::BadCidr);
    } else {
        return Err(TermError::UnknownMechanism);
    };
    Ok((domain, cidr4, cidr6))
}

/// If `s` ends with `sep` followed by digits only, splits them off.
/// With `sep == "/"`, a preceding `/` (making it `//`) does not count.
fn strip_cidr<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let digits_start = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let head = &s[..digits_start];
    let rest = head.strip_suffix(sep)?;
    if sep == "/" && rest.ends_with('/') {
        return None;
    }
    Some((rest, &s[digits_start..]))
}

/// `ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT)`, at most `max`.
fn parse_len(digits: &str, max: u8) -> Result<u8, TermError> {
    if digits.is_empty() || digits.len() > 3 || (digits.len() > 1 && digits.starts_with('0')) {
        return Err(TermError::BadCidr);
    }
    match digits.parse::<u8>() {
        Ok(len) if len <= max => Ok(len),
        _ => Err(TermError::BadCidr),
    }
}

/// Splits `addr[/len]` for ip4 and ip6.
fn split_cidr(spec: &str, max: u8) -> Result<(&str, u8), TermError> {
    match spec.split_once('/') {
        Some((addr, len)) => Ok((addr, parse_len(len, max)?)),
        None => Ok((spec, max)),
    }
}

/// Parses a domain-spec and checks its domain-end (RFC 7208 §7.1):
/// `domain-end = ( "." toplabel [ "." ] ) / macro-expand`.
pub(crate) fn domain_spec(spec: &str) -> Result<MacroString, TermError> {
    if spec.is_empty() {
        return Err(TermError::BadDomain("empty"));
    }
    let parsed = MacroString::parse(spec, MacroContext::DomainSpec)?;
    if parsed.ends_with_expand() {
        return Ok(parsed);
    }
    let trimmed = spec.strip_suffix('.').unwrap_or(spec);
    // A macro-expand followed by one trailing dot is tolerated.
    if trimmed.len() < spec.len()
        && MacroString::parse(trimmed, MacroContext::DomainSpec)
            .map(|m| m.ends_with_expand())
            .unwrap_or(false)
    {
        return Ok(parsed);
    }
    let Some((_, top)) = trimmed.rsplit_once('.') else {
        return Err(TermError::BadDomain("no dot before the top label"));
    };
    if is_toplabel(top) {
        Ok(parsed)
    } else {
        Err(TermError::BadDomain("invalid top label"))
    }
}

/// `toplabel = ( *alphanum ALPHA *alphanum ) /
///             ( 1*alphanum "-" *( alphanum / "-" ) alphanum )`.
fn is_toplabel(label: &str) -> bool {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if bytes.iter().all(u8::is_ascii_alphanumeric) {
        return bytes.iter().any(u8::is_ascii_alphabetic);
    }
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Record, ParseError> {
        Record::parse(text)
    }

    #[test]
    fn version_is_case_insensitive_and_needs_space_or_end() {
        assert!(Record::is_spf1("v=spf1"));
        assert!(Record::is_spf1("V=SpF1 -all"));
        assert!(!Record::is_spf1("v=spf10"));
        assert!(!Record::is_spf1("v=spf1mx"));
        assert!(!Record::is_spf1("spf1"));
    }

    #[test]
    fn every_mechanism_parses_with_qualifiers_and_cidrs() {
        let r = parse(
            "v=spf1 +all -include:_spf.example.com ~a ?a:mail.example.com/24//64 mx//48 \
             ptr ptr:example.org ip4:192.0.2.0/24 ip6:2001:db8::/32 exists:%{i}.bl.example.net",
        )
        .unwrap();
        assert_eq!(r.directives.len(), 10);
        assert_eq!(r.directives[1].qualifier, Qualifier::Fail);
        assert_eq!(
            r.directives[3].mechanism,
            Mechanism::A {
                domain: Some(
                    MacroString::parse("mail.example.com", MacroContext::DomainSpec).unwrap()
                ),
                cidr4: 24,
                cidr6: 64
            }
        );
        assert_eq!(
            r.directives[4].mechanism,
            Mechanism::Mx {
                domain: None,
                cidr4: 32,
                cidr6: 48
            }
        );
        assert_eq!(
            r.directives[7].mechanism,
            Mechanism::Ip4("192.0.2.0".parse().unwrap(), 24)
        );
        assert_eq!(r.directives[2].text, "~a");
        assert_eq!(r.dns_terms(), 7);
    }

    #[test]
    fn modifiers_are_recognised_and_duplicates_refused() {
        let r = parse("v=spf1 redirect=_spf.example.com exp=why.example.com foo.bar=%{d}").unwrap();
        assert!(r.redirect.is_some() && r.exp.is_some());
        assert_eq!(r.unknown.len(), 1);
        let err = parse("v=spf1 exp=a.example.com exp=b.example.com").unwrap_err();
        assert_eq!(err.position, 2);
        assert_eq!(err.error, TermError::Duplicate("exp"));
    }

    #[test]
    fn errors_name_the_term_and_its_position() {
        let err = parse("v=spf1 ip4:192.0.2.1  a:example.com ip4:192.0.2 -all").unwrap_err();
        assert_eq!(err.position, 3);
        assert_eq!(err.term, "ip4:192.0.2");
        assert_eq!(
            err.to_string(),
            "syntax error in term 3 \"ip4:192.0.2\": invalid IPv4 address"
        );
    }

    #[test]
    fn domain_specs_follow_the_domain_end_rule() {
        for good in [
            "a:foo.example.xn--zckzah",
            "a:foo:bar/baz.example.com",
            "a:%{d}",
            "a:museum.example.",
            "exists:%{i}.%{d}.",
        ] {
            assert!(parse(&format!("v=spf1 {good}")).is_ok(), "{good}");
        }
        for bad in [
            "a:foo-bar",
            "a:abc.123",
            "a:museum",
            "a:museum.",
            "a:example.-com",
            "a:example.com:8080",
            "a:",
            "include:",
            "include:example.com/24",
            "exists:example.com/24",
        ] {
            assert!(parse(&format!("v=spf1 {bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_lengths_are_checked() {
        for bad in [
            "a/33",
            "a//129",
            "a/24/64",
            "ip4:192.0.2.1/032",
            "ip4:192.0.2.1//32",
            "ip6:::1/129",
            "ip6:::1//33",
            "ptr/0",
            "all/8",
            "a/",
        ] {
            assert!(parse(&format!("v=spf1 {bad}")).is_err(), "{bad}");
        }
        assert!(parse("v=spf1 a/0 a//0 ip4:192.0.2.1/0").is_ok());
    }

    #[test]
    fn control_and_non_ascii_characters_are_refused() {
        let err = parse("v=spf1 a:ctrl.example.com\rptr -all").unwrap_err();
        assert_eq!(err.error, TermError::BadChar('\r'));
        assert!(parse("v=spf1 \u{80}a:example.net -all").is_err());
        assert!(parse("v=spf1 a:example.net\0").is_err());
    }

    #[test]
    fn invalid_modifier_names_are_refused() {
        for bad in [
            "1up=foo",
            "=all",
            "moo.cow/far_out=man:dog/cat",
            "redirect:example.com",
        ] {
            assert!(parse(&format!("v=spf1 {bad}")).is_err(), "{bad}");
        }
        assert!(parse("v=spf1 moo.cow-far_out=man:dog/cat").is_ok());
        assert!(parse("v=spf1 foo=%abc").is_err());
        assert!(parse("v=spf1 exp=").is_err());
        assert!(parse("v=spf1 redirect=-all").is_err());
    }

    #[test]
    fn text_without_the_version_is_not_parsed() {
        assert_eq!(parse("abcdefall").unwrap_err().error, TermError::NotSpf1);
        assert_eq!(parse("v=spf10 all").unwrap_err().position, 0);
    }

    #[test]
    fn display_round_trips_the_terms() {
        let text = "v=spf1 a mx:example.com/24 -all redirect=example.net exp=why.example.com";
        assert_eq!(parse(text).unwrap().to_string(), text);
    }
}
