//! Does a host name spell the client's address? The forms ISPs use in
//! their generic names: decimal octets joined by `-`, `.` or `_`, in
//! order or reversed, zero-padded or not (`192-0-2-7`, `7.2.0.192`,
//! `192-000-002-007`); twelve zero-padded digits (`192000002007`); eight
//! hex digits (`c0000207`); the address as one 32-bit integer; for IPv6
//! the RFC 5952 text with `-` for `:` (`2001-db8--7`), the eight groups
//! padded or not, the 32 hex digits run together, or the reversed nibbles
//! of `ip6.arpa` (RFC 3596 §2.5). Part of the address — two or three
//! adjacent octets, or an IPv6 /64 prefix — is reported separately:
//! alone it is weak evidence (mail platforms number hosts that way too).
//!
//! Everything works on a stack copy of at most 253 bytes: no allocation.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

/// How much of the address the name spells, and in which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spelled {
    /// The whole address.
    Whole(Form),
    /// Two or three adjacent octets, or an IPv6 /64 prefix.
    Part(Form),
}

/// The form of an encoded address, for the reason shown to administrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// Decimal octets joined by separators.
    Octets {
        reversed: bool,
        padded: bool,
        /// `b'.'`, `b'-'` or `b'_'`; 0 when they are mixed.
        sep: u8,
    },
    /// Twelve zero-padded digits run together.
    PaddedDigits { reversed: bool },
    /// Eight hexadecimal digits.
    Hex,
    /// The address as one 32-bit decimal number.
    Integer,
    /// Four octet-sized numbers in a row with other text between them:
    /// `host7-2-dynamic.0-192-r` (reversed), `7.ip-192-0-2` (last first).
    Scattered,
    /// IPv6 groups joined by `-`, compressed (RFC 5952) or all eight.
    Ipv6Groups { padded: bool },
    /// IPv6 hexadecimal digits run together.
    Ipv6Hex,
    /// IPv6 nibbles reversed and dotted, as in `ip6.arpa`.
    Ipv6Nibbles,
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Form::Octets {
                reversed,
                padded,
                sep,
            } => {
                let order = if reversed { "reversed " } else { "" };
                let pad = if padded { "zero-padded " } else { "" };
                let sep = match sep {
                    b'.' => "dotted",
                    b'-' => "dashed",
                    b'_' => "underscored",
                    _ => "separated",
                };
                write!(f, "{order}{pad}{sep} octets")
            }
            Form::PaddedDigits { reversed: false } => f.write_str("zero-padded digits"),
            Form::PaddedDigits { reversed: true } => f.write_str("reversed zero-padded digits"),
            Form::Hex => f.write_str("hexadecimal"),
            Form::Integer => f.write_str("32-bit number"),
            Form::Scattered => f.write_str("octets spread over the name"),
            Form::Ipv6Groups { padded: false } => f.write_str("IPv6 groups, dashed"),
            Form::Ipv6Groups { padded: true } => f.write_str("IPv6 zero-padded groups, dashed"),
            Form::Ipv6Hex => f.write_str("IPv6 hexadecimal"),
            Form::Ipv6Nibbles => f.write_str("IPv6 reversed nibbles"),
        }
    }
}

/// Whether `text` (lower-case labels, dots included) spells `ip`.
pub(crate) fn find_v4(text: &[u8], ip: Ipv4Addr) -> Option<Spelled> {
    let runs = Runs::of(text);
    let octets = ip.octets();
    whole_octets(&runs, text, octets)
        .or_else(|| whole_digits(&runs, text, ip))
        .or_else(|| hex(text, octets))
        .or_else(|| scattered(&runs, octets))
        .or_else(|| part_octets(&runs, text, octets))
}

/// Whether `text` (lower-case labels, dots included) spells `ip`.
pub(crate) fn find_v6(text: &[u8], ip: Ipv6Addr) -> Option<Spelled> {
    let seg = ip.segments();
    let mut buf = Buf::new();

    // RFC 5952 text, `:` as `-`: `2001-db8--7`.
    let _ = write!(buf, "{ip}");
    buf.replace(b':', b'-');
    if contains_token(text, buf.as_bytes()) {
        return Some(Spelled::Whole(Form::Ipv6Groups { padded: false }));
    }
    for padded in [false, true] {
        buf.clear();
        groups(&mut buf, &seg, padded);
        if contains_token(text, buf.as_bytes()) {
            return Some(Spelled::Whole(Form::Ipv6Groups { padded }));
        }
    }
    buf.clear();
    for s in seg {
        let _ = write!(buf, "{s:04x}");
    }
    if contains(text, buf.as_bytes()) {
        return Some(Spelled::Whole(Form::Ipv6Hex));
    }
    buf.clear();
    for s in seg.iter().rev() {
        for shift in [0, 4, 8, 12] {
            let _ = write!(buf, "{:x}.", (s >> shift) & 0xf);
        }
    }
    buf.pop();
    if contains(text, buf.as_bytes()) {
        return Some(Spelled::Whole(Form::Ipv6Nibbles));
    }

    // The /64 prefix (one customer's network): 16 hex digits or 4 groups.
    buf.clear();
    for s in &seg[..4] {
        let _ = write!(buf, "{s:04x}");
    }
    if contains(text, buf.as_bytes()) {
        return Some(Spelled::Part(Form::Ipv6Hex));
    }
    for padded in [false, true] {
        buf.clear();
        groups(&mut buf, &seg[..4], padded);
        if contains_token(text, buf.as_bytes()) {
            return Some(Spelled::Part(Form::Ipv6Groups { padded }));
        }
    }
    None
}

/// `seg` as hex groups joined by `-`.
fn groups(buf: &mut Buf, seg: &[u16], padded: bool) {
    for (i, s) in seg.iter().enumerate() {
        if i > 0 {
            buf.push(b'-');
        }
        let _ = if padded {
            write!(buf, "{s:04x}")
        } else {
            write!(buf, "{s:x}")
        };
    }
}

/// A maximal run of decimal digits in the text.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    start: usize,
    end: usize,
    /// The digits' value, saturating (runs longer than 19 digits).
    value: u64,
}

impl Run {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// A name of at most 253 bytes has at most 127 runs of digits.
const MAX_RUNS: usize = 128;

/// The digit runs of a text, in order.
struct Runs {
    runs: [Run; MAX_RUNS],
    count: usize,
}

impl Runs {
    fn of(text: &[u8]) -> Runs {
        let mut runs = [Run::default(); MAX_RUNS];
        let mut count = 0;
        let mut i = 0;
        while i < text.len() && count < MAX_RUNS {
            if !text[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            let mut value: u64 = 0;
            while i < text.len() && text[i].is_ascii_digit() {
                value = value
                    .saturating_mul(10)
                    .saturating_add(u64::from(text[i] - b'0'));
                i += 1;
            }
            runs[count] = Run {
                start,
                end: i,
                value,
            };
            count += 1;
        }
        Runs { runs, count }
    }

    fn as_slice(&self) -> &[Run] {
        &self.runs[..self.count]
    }
}

/// `runs` are consecutive octet-sized numbers, each joined to the next by
/// exactly one separator; returns the separator (0 when mixed) and whether
/// every number has three digits.
fn chain(runs: &[Run], text: &[u8]) -> Option<(u8, bool)> {
    let mut sep = None;
    let mut padded = true;
    for (i, run) in runs.iter().enumerate() {
        if run.len() > 3 {
            return None;
        }
        padded &= run.len() == 3;
        if let Some(next) = runs.get(i + 1) {
            let between = &text[run.end..next.start];
            let [s] = between else { return None };
            if !matches!(s, b'-' | b'.' | b'_') {
                return None;
            }
            sep = match sep {
                None => Some(*s),
                Some(prev) if prev == *s => Some(prev),
                Some(_) => Some(0),
            };
        }
    }
    Some((sep.unwrap_or(0), padded))
}

fn values_are(runs: &[Run], octets: &[u8]) -> bool {
    runs.len() == octets.len()
        && runs
            .iter()
            .zip(octets)
            .all(|(r, o)| r.value == u64::from(*o))
}

/// Four joined numbers equal to the octets, in order or reversed.
fn whole_octets(runs: &Runs, text: &[u8], [a, b, c, d]: [u8; 4]) -> Option<Spelled> {
    for window in runs.as_slice().windows(4) {
        for (reversed, want) in [(false, [a, b, c, d]), (true, [d, c, b, a])] {
            if values_are(window, &want)
                && let Some((sep, padded)) = chain(window, text)
            {
                // "000" and "0" are the same octet; call it padded only
                // when the padding shows (an octet below 100).
                let padded = padded && want.iter().any(|o| *o < 100);
                return Some(Spelled::Whole(Form::Octets {
                    reversed,
                    padded,
                    sep,
                }));
            }
        }
    }
    None
}

/// Four consecutive numbers of at most three digits, whatever lies
/// between them, equal to the octets in order, reversed, or with the last
/// octet first (`34.red-192-0-2`, `9.ip-192-0-2`).
fn scattered(runs: &Runs, [a, b, c, d]: [u8; 4]) -> Option<Spelled> {
    runs.as_slice()
        .windows(4)
        .filter(|w| w.iter().all(|r| r.len() <= 3))
        .any(|w| {
            [[a, b, c, d], [d, c, b, a], [d, a, b, c]]
                .iter()
                .any(|want| values_are(w, want))
        })
        .then_some(Spelled::Whole(Form::Scattered))
}

/// Two or three joined numbers equal to adjacent octets, in order or reversed.
fn part_octets(runs: &Runs, text: &[u8], [a, b, c, d]: [u8; 4]) -> Option<Spelled> {
    let forward = [a, b, c, d];
    let backward = [d, c, b, a];
    for len in [3, 2] {
        for window in runs.as_slice().windows(len) {
            for (reversed, octets) in [(false, &forward), (true, &backward)] {
                let hit = octets.windows(len).any(|want| values_are(window, want));
                if hit && let Some((sep, padded)) = chain(window, text) {
                    return Some(Spelled::Part(Form::Octets {
                        reversed,
                        padded,
                        sep,
                    }));
                }
            }
        }
    }
    None
}

/// Twelve zero-padded digits, or the address as one number.
fn whole_digits(runs: &Runs, text: &[u8], ip: Ipv4Addr) -> Option<Spelled> {
    let [a, b, c, d] = ip.octets();
    let mut forward = Buf::new();
    let _ = write!(forward, "{a:03}{b:03}{c:03}{d:03}");
    let mut backward = Buf::new();
    let _ = write!(backward, "{d:03}{c:03}{b:03}{a:03}");
    let number = u64::from(u32::from(ip));
    for run in runs.as_slice() {
        let digits = &text[run.start..run.end];
        if digits == forward.as_bytes() {
            return Some(Spelled::Whole(Form::PaddedDigits { reversed: false }));
        }
        if digits == backward.as_bytes() {
            return Some(Spelled::Whole(Form::PaddedDigits { reversed: true }));
        }
        // At least 8 digits (public addresses start at 1.0.0.0 = 16777216),
        // no leading zero: a chance match is then implausible.
        if run.len() >= 8 && digits[0] != b'0' && run.value == number {
            return Some(Spelled::Whole(Form::Integer));
        }
    }
    None
}

/// Eight hexadecimal digits anywhere (`pc0000207`, `c0000207.bb`).
fn hex(text: &[u8], [a, b, c, d]: [u8; 4]) -> Option<Spelled> {
    let mut buf = Buf::new();
    let _ = write!(buf, "{a:02x}{b:02x}{c:02x}{d:02x}");
    contains(text, buf.as_bytes()).then_some(Spelled::Whole(Form::Hex))
}

fn contains(text: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && text.windows(needle.len()).any(|w| w == needle)
}

/// `needle` occurs in `text` not glued to more hex digits on either side,
/// so that `2001-db8--7` does not match inside `2001-db8--70`.
fn contains_token(text: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || needle.len() > text.len() {
        return false;
    }
    (0..=text.len() - needle.len()).any(|at| {
        let end = at + needle.len();
        &text[at..end] == needle
            && (at == 0 || !text[at - 1].is_ascii_hexdigit())
            && match text.get(end) {
                None => true,
                Some(c) if c.is_ascii_hexdigit() => false,
                Some(b'-') => !text.get(end + 1).is_some_and(u8::is_ascii_hexdigit),
                Some(_) => true,
            }
    })
}

/// A fixed-size text buffer: the longest form written is the 63 bytes of
/// IPv6 reversed nibbles.
struct Buf {
    bytes: [u8; 64],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            bytes: [0; 64],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, b: u8) {
        if self.len < self.bytes.len() {
            self.bytes[self.len] = b;
            self.len += 1;
        }
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    fn replace(&mut self, from: u8, to: u8) {
        for b in &mut self.bytes[..self.len] {
            if *b == from {
                *b = to;
            }
        }
    }
}

impl fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > self.bytes.len() {
            return Err(fmt::Error);
        }
        self.bytes[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> Option<Spelled> {
        find_v4(text.as_bytes(), Ipv4Addr::new(192, 0, 2, 7))
    }

    fn v6(text: &str) -> Option<Spelled> {
        find_v6(text.as_bytes(), "2001:db8:1:2::7".parse().unwrap())
    }

    fn whole(text: &str) -> String {
        match v4(text) {
            Some(Spelled::Whole(form)) => form.to_string(),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn decimal_octets_in_every_order_and_separator() {
        assert_eq!(whole("c-192-0-2-7.hsd1.ca"), "dashed octets");
        assert_eq!(whole("7.2.0.192.rev"), "reversed dotted octets");
        assert_eq!(whole("ip_192_0_2_7"), "underscored octets");
        assert_eq!(
            whole("dslb-192-000-002-007.192.000.pools"),
            "zero-padded dashed octets"
        );
        assert_eq!(
            whole("modemcable007.2-0-192.mc"),
            "reversed separated octets"
        );
        assert_eq!(whole("host192-0-2-7.range192-0"), "dashed octets");
    }

    #[test]
    fn digits_hex_and_number() {
        assert_eq!(whole("kd192000002007.au-net"), "zero-padded digits");
        assert_eq!(whole("pc0000207.dip0"), "hexadecimal");
        assert_eq!(whole("host3221225991"), "32-bit number");
    }

    #[test]
    fn octets_spread_over_the_name() {
        assert_eq!(
            whole("host7-2-dynamic.0-192-r"),
            "octets spread over the name"
        );
        assert_eq!(whole("7.red-192-0-2"), "octets spread over the name");
        assert_eq!(whole("c192x0y2z7"), "octets spread over the name");
        assert!(matches!(v4("2.ip-192-0-7"), Some(Spelled::Part(_))));
        assert_eq!(v4("1192x0y2z7"), None);
    }

    #[test]
    fn joined_octets_need_one_separator_each() {
        let dashed_part = Some(Spelled::Part(Form::Octets {
            reversed: false,
            padded: false,
            sep: b'-',
        }));
        assert_eq!(v4("1920-2-7"), dashed_part);
        assert_eq!(v4("192-0-2x7"), Some(Spelled::Whole(Form::Scattered)));
        assert_eq!(v4("192--0--2--7"), Some(Spelled::Whole(Form::Scattered)));
        assert_eq!(v4("mail-192"), None);
    }

    #[test]
    fn two_or_three_adjacent_octets_are_a_part() {
        assert!(matches!(v4("a2-7.smtp-out"), Some(Spelled::Part(_))));
        assert!(matches!(v4("ip-192-0-2"), Some(Spelled::Part(_))));
        assert!(matches!(v4("host7-2-dynamic"), Some(Spelled::Part(_))));
        assert_eq!(v4("mail-sor-f41"), None);
    }

    #[test]
    fn ipv6_forms() {
        let whole6 = |t: &str| match v6(t) {
            Some(Spelled::Whole(form)) => form.to_string(),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(whole6("2001-db8-1-2--7.ip"), "IPv6 groups, dashed");
        assert_eq!(whole6("x-2001-db8-1-2-0-0-0-7"), "IPv6 groups, dashed");
        assert_eq!(
            whole6("dynamic-2001-0db8-0001-0002-0000-0000-0000-0007.310.pool"),
            "IPv6 zero-padded groups, dashed"
        );
        assert_eq!(
            whole6("p20010db8000100020000000000000007.dip0"),
            "IPv6 hexadecimal"
        );
        assert_eq!(
            whole6("7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"),
            "IPv6 reversed nibbles"
        );
        assert_eq!(
            v6("2001-db8-1-2--70"),
            Some(Spelled::Part(Form::Ipv6Groups { padded: false }))
        );
        assert!(matches!(
            v6("p20010db800010002.dip0"),
            Some(Spelled::Part(Form::Ipv6Hex))
        ));
        assert_eq!(v6("2001-db8-3-4--7"), None);
    }
}
