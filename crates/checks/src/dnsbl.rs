//! Stage `dnsbl`: the client address on DNS block lists and allow lists
//! (DNSxLs, RFC 5782).
//!
//! Each configured list is asked for an A record at the client's reversed
//! address under the list's zone (RFC 5782 §2.1 for IPv4, §2.4 nibbles for
//! IPv6), all lists at once. An answer counts only if it is one of the
//! list's codes (default: any 127.0.0.0/8 address, RFC 5782 §2.1, except
//! 127.255.255.0/24). Some list operators answer 127.255.255.x to say they
//! refuse the query (a public resolver, too many queries): such an answer
//! never lists a client, whatever the codes say; it is a `temperror` of
//! that list. A listed client's reason is the TXT record at the same name
//! (RFC 5782 §2.1), shown bounded and as printable ASCII.
//!
//! An allow-list hit wins over any block-list hit (`allowed`); otherwise a
//! block-list hit is `listed`; otherwise a list that could not answer makes
//! the stage `temperror`; otherwise it is `pass`.

use std::fmt::Write;
use std::future::{Future, poll_fn};
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::task::Poll;

use tollgate_dns::{Lookup, LookupError};

use crate::{Outcome, canonical};

/// The longest TXT reason kept, in characters (more is cut, with "...").
pub const MAX_REASON: usize = 200;

/// One configured DNS list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsList {
    /// The list's zone, e.g. `bl.example.net`.
    pub zone: String,
    /// Whether a hit blocks or allows.
    pub kind: ListKind,
    /// The A answers that mean "listed"; `None` for the default: any
    /// 127.0.0.0/8 address except the 127.255.255.0/24 error answers.
    pub codes: Option<Vec<Ipv4Addr>>,
}

/// What a hit on a list means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// A block list: a hit is `listed`.
    Block,
    /// An allow list: a hit is `allowed` (exempt from later stages).
    Allow,
}

impl ListKind {
    fn as_str(self) -> &'static str {
        match self {
            ListKind::Block => "block",
            ListKind::Allow => "allow",
        }
    }
}

/// A list that answered for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListHit {
    /// The list's zone.
    pub zone: String,
    /// Block or allow.
    pub kind: ListKind,
    /// The A answer that matched the list's codes.
    pub code: Ipv4Addr,
    /// The TXT record at the same name: printable ASCII, at most
    /// [`MAX_REASON`] characters; `None` when there is none.
    pub reason: Option<String>,
}

/// The stage's finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub outcome: Outcome,
    pub detail: String,
    /// Every list that answered for the client, in configuration order.
    pub hits: Vec<ListHit>,
}

/// The name to ask a DNS list about `ip` (RFC 5782 §2.1, §2.4): the IPv4
/// octets reversed (`7.2.0.192.zone`), or the 32 nibbles of an IPv6
/// address reversed, then the zone. An IPv4-mapped IPv6 address is asked
/// as the IPv4 address it maps.
pub(crate) fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.strip_suffix('.').unwrap_or(zone);
    let mut out = String::with_capacity(64 + zone.len() + 1);
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let _ = write!(out, "{}.{}.{}.{}.", o[3], o[2], o[1], o[0]);
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                let _ = write!(out, "{:x}.{:x}.", byte & 0x0f, byte >> 4);
            }
        }
    }
    out.push_str(zone);
    out
}

/// Whether `code` is one of the error answers (127.255.255.0/24) that list
/// operators give for refused queries.
fn is_error_code(code: Ipv4Addr) -> bool {
    let [a, b, c, _] = code.octets();
    a == 127 && b == 255 && c == 255
}

/// Whether `code` means "listed" for `list`.
fn matches_code(list: &DnsList, code: Ipv4Addr) -> bool {
    if is_error_code(code) {
        return false;
    }
    match &list.codes {
        Some(codes) => codes.contains(&code),
        None => code.octets()[0] == 127,
    }
}

/// What one list answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ListAnswer {
    /// The client is on the list.
    Hit(ListHit),
    /// Not on the list; any A answers that were not listing codes.
    NotListed(Vec<Ipv4Addr>),
    /// The list refused the query (a 127.255.255.0/24 answer).
    Refused(Ipv4Addr),
    /// The query failed temporarily.
    Failed(LookupError),
}

/// Asks one list about `ip`: the A record, and the TXT reason on a hit.
async fn ask<L: Lookup>(lookup: &L, ip: IpAddr, list: &DnsList) -> ListAnswer {
    let name = query_name(ip, &list.zone);
    let answers = match lookup.lookup_a(&name).await {
        Ok(answers) => answers,
        Err(e) if e.is_void() => return ListAnswer::NotListed(Vec::new()),
        Err(e) => return ListAnswer::Failed(e),
    };
    // A refused query never lists the client, even among other answers.
    if let Some(&refused) = answers.iter().find(|&&a| is_error_code(a)) {
        tracing::warn!(
            zone = %list.zone,
            code = %refused,
            "dns list refuses queries from this resolver; its answers count as temperror"
        );
        return ListAnswer::Refused(refused);
    }
    let Some(&code) = answers.iter().find(|&&a| matches_code(list, a)) else {
        return ListAnswer::NotListed(answers);
    };
    let reason = match lookup.lookup_txt(&name).await {
        Ok(texts) => texts
            .iter()
            .map(|t| clean_reason(t))
            .find(|t| !t.is_empty()),
        Err(_) => None,
    };
    ListAnswer::Hit(ListHit {
        zone: list.zone.clone(),
        kind: list.kind,
        code,
        reason,
    })
}

/// A TXT reason as shown: control characters removed, other characters
/// outside printable ASCII as `?`, `"` as `'`, white space runs as one
/// space, at most [`MAX_REASON`] characters.
fn clean_reason(text: &str) -> String {
    let mut out = String::new();
    let mut cut = false;
    for c in text.chars().filter(|c| !c.is_control()) {
        let c = match c {
            '"' => '\'',
            ' '..='~' => c,
            c if c.is_whitespace() => ' ',
            _ => '?',
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.len() >= MAX_REASON {
            cut = true;
            break;
        }
        out.push(c);
    }
    let mut out = out.trim_end().to_owned();
    if cut {
        out.push_str("...");
    }
    out
}

/// Runs the dnsbl stage for `ip` against every list in `lists`, all at
/// once.
pub async fn check<L: Lookup>(lookup: &L, ip: IpAddr, lists: &[DnsList]) -> Finding {
    let ip = canonical(ip);
    let answers = join_all(lists.iter().map(|list| ask(lookup, ip, list)).collect()).await;
    combine(ip, lists, answers)
}

/// Polls every future until all have finished; the outputs in input order.
/// (A small join, so that the lists are asked concurrently without a
/// task per list.)
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// One hit in words: `bl.example.test (127.0.0.2): "reason"`.
fn describe_hit(hit: &ListHit) -> String {
    match &hit.reason {
        Some(reason) => format!("{} ({}): \"{reason}\"", hit.zone, hit.code),
        None => format!("{} ({})", hit.zone, hit.code),
    }
}

/// The combination of the lists' answers (allow wins, then block, then
/// temperror, then pass), in words a remote administrator can act on.
fn combine(ip: IpAddr, lists: &[DnsList], answers: Vec<ListAnswer>) -> Finding {
    let mut hits = Vec::new();
    let mut troubles = Vec::new();
    let mut odd = Vec::new();
    for (list, answer) in lists.iter().zip(answers) {
        match answer {
            ListAnswer::Hit(hit) => hits.push(hit),
            ListAnswer::NotListed(answers) if !answers.is_empty() => {
                let shown: Vec<String> = answers.iter().take(3).map(ToString::to_string).collect();
                odd.push(format!(
                    "{} answered {}, not a listing code",
                    list.zone,
                    shown.join(", ")
                ));
            }
            ListAnswer::NotListed(_) => {}
            ListAnswer::Refused(code) => troubles.push(format!(
                "{} answered {code}: the list refuses queries from this resolver",
                list.zone
            )),
            ListAnswer::Failed(e) => troubles.push(format!(
                "{}: {} looking up {}",
                list.zone,
                e.summary(),
                query_name(ip, &list.zone)
            )),
        }
    }
    let of_kind = |kind: ListKind| -> Vec<String> {
        hits.iter()
            .filter(|h| h.kind == kind)
            .map(describe_hit)
            .collect()
    };
    let allowed = of_kind(ListKind::Allow);
    let blocked = of_kind(ListKind::Block);
    let (outcome, detail) = if !allowed.is_empty() {
        let mut detail = format!("{ip} is on the allow list {}", allowed.join("; and "));
        if !blocked.is_empty() {
            let zones: Vec<&str> = hits
                .iter()
                .filter(|h| h.kind == ListKind::Block)
                .map(|h| h.zone.as_str())
                .collect();
            let _ = write!(
                detail,
                " (which outweighs the block list {})",
                zones.join(", ")
            );
        }
        (Outcome::Allowed, detail)
    } else if !blocked.is_empty() {
        let detail = format!("{ip} is listed by {}", blocked.join("; and by "));
        (Outcome::Listed, detail)
    } else if !troubles.is_empty() {
        let detail = format!("{ip} could not be checked: {}", troubles.join("; "));
        (Outcome::TempError, detail)
    } else {
        let detail = if lists.is_empty() {
            "no DNS lists are configured".to_owned()
        } else {
            let zones: Vec<String> = lists
                .iter()
                .map(|l| format!("{} list {}", l.kind.as_str(), l.zone))
                .collect();
            let mut detail = format!("{ip} is not on the {}", zones.join(", "));
            if !odd.is_empty() {
                let _ = write!(detail, " ({})", odd.join("; "));
            }
            detail
        };
        (Outcome::Pass, detail)
    };
    Finding {
        outcome,
        detail,
        hits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_dns::memory::block_on;

    use tollgate_dns::memory::{Entry, RecordData, Zone};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn list(zone: &str, kind: ListKind) -> DnsList {
        DnsList {
            zone: zone.to_owned(),
            kind,
            codes: None,
        }
    }

    fn listed(zone: &mut Zone, name: &str, code: &str) {
        zone.add(name, RecordData::A(a(code)));
    }

    #[test]
    fn query_name_reverses_ipv4_octets_rfc5782_2_1() {
        // RFC 5782 §2.1's example address.
        assert_eq!(
            query_name(ip("192.168.42.23"), "dnsxl.example.com"),
            "23.42.168.192.dnsxl.example.com"
        );
        assert_eq!(
            query_name(ip("192.0.2.7"), "bl.example.test."),
            "7.2.0.192.bl.example.test"
        );
    }

    #[test]
    fn query_name_reverses_ipv6_nibbles_rfc5782_2_4() {
        // RFC 5782 §2.4's example address: all 32 nibbles, zeros included.
        assert_eq!(
            query_name(ip("2001:db8:1:2:3:4:567:89ab"), "ugly.example.com"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com"
        );
        assert_eq!(
            query_name(ip("2001:db8::1"), "bl.example.test"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example.test"
        );
    }

    #[test]
    fn query_name_of_ipv4_mapped_client_is_the_ipv4_name() {
        assert_eq!(
            query_name(ip("::ffff:192.0.2.7"), "bl.example.test"),
            "7.2.0.192.bl.example.test"
        );
    }

    #[test]
    fn default_codes_are_loopback_except_the_error_answers() {
        let default = list("bl.example.test", ListKind::Block);
        assert!(matches_code(&default, a("127.0.0.2")));
        assert!(matches_code(&default, a("127.1.2.3")));
        assert!(matches_code(&default, a("127.255.254.255")));
        assert!(!matches_code(&default, a("127.255.255.254")));
        assert!(!matches_code(&default, a("127.255.255.0")));
        assert!(!matches_code(&default, a("192.0.2.1")));
    }

    #[test]
    fn configured_codes_are_the_only_listing_answers() {
        let strict = DnsList {
            codes: Some(vec![a("127.0.0.2"), a("127.0.0.4"), a("127.255.255.254")]),
            ..list("bl.example.test", ListKind::Block)
        };
        assert!(matches_code(&strict, a("127.0.0.2")));
        assert!(matches_code(&strict, a("127.0.0.4")));
        assert!(!matches_code(&strict, a("127.0.0.3")));
        // Even when configured, an error answer never lists.
        assert!(!matches_code(&strict, a("127.255.255.254")));
    }

    #[test]
    fn reason_is_bounded_printable_ascii() {
        assert_eq!(
            clean_reason("listed\r\n for \"spam\"\x1b[31m \u{e9}t\u{e9}"),
            "listed for 'spam'[31m ?t?"
        );
        let long = clean_reason(&"x".repeat(1000));
        assert_eq!(long.len(), MAX_REASON + 3);
        assert!(long.ends_with("..."));
        assert_eq!(clean_reason(" \t "), "");
    }

    #[test]
    fn block_hit_names_list_code_and_reason() {
        let mut zone = Zone::new();
        listed(&mut zone, "7.2.0.192.bl.example.test", "127.0.0.2");
        zone.add_txt(
            "7.2.0.192.bl.example.test",
            "listed for spam, see the list's site",
        );
        let lists = [list("bl.example.test", ListKind::Block)];
        let found = block_on(check(&zone, ip("192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::Listed);
        assert_eq!(
            found.detail,
            "192.0.2.7 is listed by bl.example.test (127.0.0.2): \"listed for spam, see the list's site\""
        );
        assert_eq!(
            found.hits,
            [ListHit {
                zone: "bl.example.test".into(),
                kind: ListKind::Block,
                code: a("127.0.0.2"),
                reason: Some("listed for spam, see the list's site".into()),
            }]
        );
    }

    #[test]
    fn nxdomain_and_nodata_are_not_listed() {
        let mut zone = Zone::new();
        zone.add_txt("7.2.0.192.bl2.example.test", "only text, no A");
        let lists = [
            list("bl.example.test", ListKind::Block),
            list("bl2.example.test", ListKind::Block),
        ];
        let found = block_on(check(&zone, ip("192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::Pass);
        assert_eq!(
            found.detail,
            "192.0.2.7 is not on the block list bl.example.test, block list bl2.example.test"
        );
        assert!(found.hits.is_empty());
    }

    #[test]
    fn answer_outside_the_codes_is_not_listed_and_is_mentioned() {
        let mut zone = Zone::new();
        // A parked zone with a wildcard answers with a web server address.
        listed(&mut zone, "7.2.0.192.bl.example.test", "198.51.100.80");
        listed(&mut zone, "7.2.0.192.strict.example.test", "127.0.0.3");
        let lists = [
            list("bl.example.test", ListKind::Block),
            DnsList {
                codes: Some(vec![a("127.0.0.2")]),
                ..list("strict.example.test", ListKind::Block)
            },
        ];
        let found = block_on(check(&zone, ip("192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::Pass);
        assert!(
            found
                .detail
                .contains("bl.example.test answered 198.51.100.80, not a listing code"),
            "{}",
            found.detail
        );
        assert!(
            found
                .detail
                .contains("strict.example.test answered 127.0.0.3")
        );
    }

    #[test]
    fn error_answer_is_temperror_never_listed() {
        let mut zone = Zone::new();
        listed(&mut zone, "7.2.0.192.zen.example.test", "127.255.255.254");
        listed(&mut zone, "7.2.0.192.zen.example.test", "127.0.0.2");
        let lists = [list("zen.example.test", ListKind::Block)];
        let found = block_on(check(&zone, ip("192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::TempError);
        assert_eq!(
            found.detail,
            "192.0.2.7 could not be checked: zen.example.test answered 127.255.255.254: the list refuses queries from this resolver"
        );
        assert!(found.hits.is_empty());
    }

    #[test]
    fn timeout_is_temperror_of_that_list_only() {
        let mut zone = Zone::new();
        zone.add_entry("7.2.0.192.slow.example.test", Entry::Timeout);
        let lists = [
            list("slow.example.test", ListKind::Block),
            list("bl.example.test", ListKind::Block),
        ];
        let found = block_on(check(&zone, ip("192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::TempError);
        assert_eq!(
            found.detail,
            "192.0.2.7 could not be checked: slow.example.test: DNS timeout looking up 7.2.0.192.slow.example.test"
        );
        // A hit on another list decides despite the timeout.
        listed(&mut zone, "7.2.0.192.bl.example.test", "127.0.0.2");
        let found = block_on(check(&zone, ip("192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::Listed);
    }

    #[test]
    fn allow_list_wins_over_block_list() {
        let mut zone = Zone::new();
        listed(&mut zone, "7.2.0.192.bl.example.test", "127.0.0.2");
        listed(&mut zone, "7.2.0.192.wl.example.test", "127.0.10.2");
        zone.add_txt(
            "7.2.0.192.wl.example.test",
            "https://wl.example.test/listing",
        );
        let lists = [
            list("bl.example.test", ListKind::Block),
            list("wl.example.test", ListKind::Allow),
        ];
        let found = block_on(check(&zone, ip("192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::Allowed);
        assert_eq!(
            found.detail,
            "192.0.2.7 is on the allow list wl.example.test (127.0.10.2): \"https://wl.example.test/listing\" (which outweighs the block list bl.example.test)"
        );
        assert_eq!(found.hits.len(), 2);
        assert_eq!(found.hits[1].kind, ListKind::Allow);
    }

    #[test]
    fn several_block_hits_are_all_named() {
        let mut zone = Zone::new();
        listed(&mut zone, "7.2.0.192.one.example.test", "127.0.0.2");
        listed(&mut zone, "7.2.0.192.two.example.test", "127.0.0.4");
        let lists = [
            list("one.example.test", ListKind::Block),
            list("two.example.test", ListKind::Block),
        ];
        let found = block_on(check(&zone, ip("192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::Listed);
        assert_eq!(
            found.detail,
            "192.0.2.7 is listed by one.example.test (127.0.0.2); and by two.example.test (127.0.0.4)"
        );
    }

    #[test]
    fn ipv4_mapped_client_is_checked_as_ipv4() {
        let mut zone = Zone::new();
        listed(&mut zone, "7.2.0.192.bl.example.test", "127.0.0.2");
        let lists = [list("bl.example.test", ListKind::Block)];
        let found = block_on(check(&zone, ip("::ffff:192.0.2.7"), &lists));
        assert_eq!(found.outcome, Outcome::Listed);
        assert!(found.detail.starts_with("192.0.2.7 is listed"));
    }

    #[test]
    fn no_lists_is_pass() {
        let found = block_on(check(&Zone::new(), ip("192.0.2.7"), &[]));
        assert_eq!(found.outcome, Outcome::Pass);
        assert_eq!(found.detail, "no DNS lists are configured");
    }

    #[test]
    fn join_all_keeps_input_order_across_pending_futures() {
        // The first future needs two polls, the second one: outputs stay in order.
        let mut first_polls = 0;
        let first = poll_fn(move |cx| {
            first_polls += 1;
            if first_polls < 2 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(1)
            }
        });
        let second = poll_fn(|_| Poll::Ready(2));
        let futures: Vec<Pin<Box<dyn Future<Output = i32>>>> =
            vec![Box::pin(first), Box::pin(second)];
        let mut joined = std::pin::pin!(join_all(futures));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        assert_eq!(joined.as_mut().poll(&mut cx), Poll::Ready(vec![1, 2]));
    }
}
