//! The lint's finding codes: stable names other tools depend on, each with
//! its severity, the RFC section it rests on, and the fix in one sentence.
//! docs/lint.md lists every code with an example; a test keeps the two
//! in step.

use std::fmt;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Receivers get the wrong result, or none: mail is refused or forgeable.
    Error,
    /// Works today, but fragile, wasteful or refused by some receivers.
    Warning,
    /// Worth knowing; nothing to fix.
    Info,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $severity:ident, $rfc:expr, $fix:literal; )*) => {
        /// A finding code. The names are stable: add codes, never rename them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in the order of docs/lint.md.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable name (`too-many-lookups`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// How much a finding of this code matters.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }

            /// The RFC section the finding rests on, if any.
            pub fn rfc(self) -> Option<&'static str> {
                match self { $(Code::$variant => $rfc,)* }
            }

            /// What to do about it, in one sentence.
            pub fn fix(self) -> &'static str {
                match self { $(Code::$variant => $fix,)* }
            }
        }
    };
}

const S3_1: Option<&str> = Some("RFC 7208 §3.1");
const S3_3: Option<&str> = Some("RFC 7208 §3.3");
const S3_4: Option<&str> = Some("RFC 7208 §3.4");
const S4_5: Option<&str> = Some("RFC 7208 §4.5");
const S4_6_1: Option<&str> = Some("RFC 7208 §4.6.1");
const S4_6_4: Option<&str> = Some("RFC 7208 §4.6.4");
const S4_7: Option<&str> = Some("RFC 7208 §4.7");
const S5: Option<&str> = Some("RFC 7208 §5");
const S5_1: Option<&str> = Some("RFC 7208 §5.1");
const S5_2: Option<&str> = Some("RFC 7208 §5.2");
const S5_5: Option<&str> = Some("RFC 7208 §5.5");
const S5_6: Option<&str> = Some("RFC 7208 §5.6");
const S6_1: Option<&str> = Some("RFC 7208 §6.1");
const S6_2: Option<&str> = Some("RFC 7208 §6.2");
const S7_3: Option<&str> = Some("RFC 7208 §7.3");
const S2_3: Option<&str> = Some("RFC 7208 §2.3");
const S2_6: Option<&str> = Some("RFC 7208 §2.6");
const S5321_4_1_1_1: Option<&str> = Some("RFC 5321 §4.1.1.1");

codes! {
    /// The domain publishes no `v=spf1` TXT record.
    NoRecord = "no-record", Error, S4_5,
        "Publish one TXT record at the domain that starts with \"v=spf1\" and ends with \"-all\" or \"~all\".";
    /// More than one `v=spf1` record at one name: permerror.
    MultipleRecords = "multiple-records", Error, S4_5,
        "Merge the records into one TXT record: receivers treat two v=spf1 records as a permanent error.";
    /// The record exists only as type SPF (99), which receivers no longer ask for.
    SpfTypeOnly = "spf-type-only", Error, S3_1,
        "Publish the same text as a TXT record: type SPF (99) was retired and receivers only query TXT.";
    /// A type SPF (99) record next to the TXT one.
    SpfTypeObsolete = "spf-type-obsolete", Info, S3_1,
        "Remove the type SPF (99) record; it is ignored and can drift out of step with the TXT record.";
    /// A TXT record that means to be SPF but does not start with `v=spf1 `,
    /// or a `v=spf1` in the middle of a record.
    VersionMisplaced = "version-misplaced", Error, S4_5,
        "Make \"v=spf1\" the first thing in the record, followed by a space, and publish it only once.";
    /// The version tag in another case than `v=spf1`.
    VersionCase = "version-case", Warning, S4_5,
        "Write the version tag in lower case, \"v=spf1\": some receivers compare it exactly.";
    /// Two character-strings joined without the space the author meant.
    GluedStrings = "glued-strings", Error, S3_3,
        "End the first string with a space (or start the next with one): strings are joined with nothing in between.";
    /// A term that does not parse: permerror.
    SyntaxError = "syntax-error", Error, S4_6_1,
        "Correct or remove the term: one bad term makes the whole record a permanent error.";
    /// More than 10 DNS-querying terms over the include/redirect tree: permerror.
    TooManyLookups = "too-many-lookups", Error, S4_6_4,
        "Bring the tree to 10 DNS lookups or fewer: replace a, mx and includes of your own hosts with ip4/ip6, and drop includes you no longer use.";
    /// 9 or 10 DNS-querying terms: one more include and mail fails.
    LookupsNearLimit = "lookups-near-limit", Warning, S4_6_4,
        "Leave room under the limit of 10: replace a and mx with ip4/ip6 where the addresses are yours.";
    /// A term whose lookup found no such name, or no records.
    VoidLookup = "void-lookup", Warning, S4_6_4,
        "Remove the term or publish the records it names: receivers allow only two lookups that find nothing.";
    /// More than 2 void lookups: permerror.
    TooManyVoidLookups = "too-many-void-lookups", Error, S4_6_4,
        "Remove the terms that name domains or hosts without records; more than two make the record a permanent error.";
    /// An include or redirect to a domain without an SPF record: permerror.
    IncludeWithoutRecord = "include-without-record", Error, S5_2,
        "Remove the include (or redirect), or correct the name to one that publishes a v=spf1 record.";
    /// An include or redirect that leads back to a record on its own path.
    IncludeLoop = "include-loop", Error, S5_2,
        "Break the loop: a record must not include or redirect to itself or to a record that includes it.";
    /// An `mx` whose name has more than 10 MX records: permerror.
    TooManyMxNames = "too-many-mx-names", Error, S4_6_4,
        "Replace the mx mechanism with ip4/ip6 of the outgoing servers: more than 10 MX names is a permanent error.";
    /// A `ptr` or `%{p}` for an address with more than 10 PTR names.
    TooManyPtrNames = "too-many-ptr-names", Warning, S4_6_4,
        "Remove the ptr mechanism; receivers look at only 10 PTR names of an address.";
    /// The `ptr` mechanism, which RFC 7208 says not to use.
    PtrMechanism = "ptr-mechanism", Warning, S5_5,
        "Replace ptr with ip4/ip6 (or a) terms: ptr is slow, unreliable, and some receivers ignore it.";
    /// A macro that needs the client's validated name (`%{p}`).
    PtrMacro = "ptr-macro", Warning, S7_3,
        "Replace %{p} with a macro that needs no reverse lookup, such as %{i}.";
    /// `+all` or a bare `all`: anyone passes.
    PassAll = "pass-all", Error, S5_1,
        "End the record with \"-all\" or \"~all\": \"+all\" lets every host on the Internet pass as you.";
    /// Neither `all` nor `redirect=`: neutral for everyone not listed.
    NoAll = "no-all", Warning, S4_7,
        "End the record with \"-all\" (or \"~all\" while testing) so that unlisted hosts do not get neutral.";
    /// `redirect=` next to `all`: the redirect is never used.
    RedirectWithAll = "redirect-with-all", Warning, S6_1,
        "Remove either the all mechanism or the redirect: with all present the redirect is never followed.";
    /// Terms after `all`, which can never match.
    UnreachableTerms = "unreachable-terms", Warning, S5_1,
        "Move the terms before \"all\", or remove them: evaluation stops at all.";
    /// `ip4`/`ip6` with bits set after the prefix length.
    HostBitsSet = "host-bits-set", Warning, S5_6,
        "Write the network address (the bits after the prefix length zero), or the prefix length you meant.";
    /// The same network twice in one record.
    DuplicateNetwork = "duplicate-network", Warning, S5_6,
        "Remove the second copy of the network.";
    /// A network inside another network of the same record.
    OverlappingNetwork = "overlapping-network", Info, S5_6,
        "Remove the smaller network, which the larger one already covers.";
    /// The same DNS-querying term twice in one record: a wasted lookup.
    DuplicateTerm = "duplicate-term", Warning, S4_6_4,
        "Remove the second copy: it costs a DNS lookup and can never change the result.";
    /// A record longer than 450 octets.
    RecordTooLong = "record-too-long", Warning, S3_4,
        "Shorten the record under 450 octets, for example by moving networks into an included record.";
    /// A TXT answer larger than 512 octets, which needs TCP.
    AnswerNeedsTcp = "answer-needs-tcp", Warning, S3_4,
        "Keep the TXT records at this name under 512 octets in all: larger answers need TCP, which some resolvers and firewalls break.";
    /// A character-string longer than 255 octets.
    StringTooLong = "string-too-long", Error, S3_3,
        "Split the text into strings of at most 255 octets each: DNS cannot carry a longer string.";
    /// `exp=` that does not resolve to exactly one TXT record.
    ExpNotOneTxt = "exp-not-one-txt", Warning, S6_2,
        "Publish exactly one TXT record at the exp= name, or remove exp=: otherwise receivers use no explanation.";
    /// A domain-spec with macros that depend on the message, which a lint cannot follow.
    MacroTarget = "macro-target", Info, S7_3,
        "Nothing to fix; check the names this term expands to for real senders by hand, or with --ip.";
    /// An address given with `--ip` that does not pass.
    IpNotPermitted = "ip-not-permitted", Error, S2_6,
        "Add the address (ip4:/ip6:) or its provider's include to the record.";
    /// The HELO host publishes no SPF record.
    HeloNoRecord = "helo-no-record", Warning, S2_3,
        "Publish \"v=spf1 a -all\" (or the host's ip4/ip6) at the HELO name so receivers can check it.";
    /// The HELO name is an address literal (`[192.0.2.7]`): there is no
    /// name to check SPF for.
    HeloAddressLiteral = "helo-address-literal", Warning, S5321_4_1_1_1,
        "Give the host a name with an A/AAAA record of its address and an SPF record, and use that name in HELO/EHLO.";
    /// The HELO name is neither a fully qualified domain name nor a valid
    /// address literal.
    HeloNotFqdn = "helo-not-fqdn", Error, S5321_4_1_1_1,
        "Make the host give its fully qualified domain name, one that resolves to its address, in HELO/EHLO.";
    /// The HELO host's own record does not permit its address.
    HeloNotPermitted = "helo-not-permitted", Warning, S2_3,
        "Make the HELO name's record cover the address it sends from (ip4/ip6, or a with an A record of that address).";
    /// The HELO host's record is broken or could not be evaluated.
    HeloSpfError = "helo-spf-error", Error, S2_3,
        "Repair the HELO name's SPF record; a permanent error there is refused by strict receivers.";
    /// The HELO name does not resolve to the address.
    HeloNotResolving = "helo-not-resolving", Warning, Some("RFC 5321 §4.1.4"),
        "Give the HELO name an A/AAAA record for the address the host sends from.";
    /// The address's reverse DNS does not confirm.
    FcrdnsFail = "fcrdns-fail", Warning, Some("RFC 8601 §3"),
        "Ask the owner of the address block for a PTR record naming a host that resolves back to the address.";
    /// A DNS lookup failed (timeout, SERVFAIL): the result is incomplete.
    DnsError = "dns-error", Error, Some("RFC 7208 §4.4"),
        "Check the domain's nameservers: they must answer every query, and a timeout or SERVFAIL gives temperror.";
    /// The include tree was too large (or too hostile) to follow completely.
    TreeTruncated = "tree-truncated", Info, S5,
        "Nothing further was followed; shrink the tree until the lint can see all of it.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lower_case_and_fixes_are_one_sentence() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name}"
            );
            let fix = code.fix();
            assert!(fix.ends_with('.'), "{name}: {fix}");
            assert_eq!(fix.matches(". ").count(), 0, "{name}: more than a sentence");
        }
    }
}
