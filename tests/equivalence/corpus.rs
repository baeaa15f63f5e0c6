//! The scenario corpus: the axes a scenario is made of (client, HELO,
//! sender, recipient, conversation, policy; the zone they resolve in is in
//! `zone.rs`) and the deterministic generation of scenarios from them: per
//! policy, a sweep of every value of each axis against good values of the
//! others (and, for the skip policies, of the listed sender against every
//! client and HELO), plus a seeded random sample of the whole cross product.

use std::fmt;
use std::net::IpAddr;

pub use super::zone::{SERVFAIL_NAME, zone};

/// This host's name: `hostname`, `authserv_id`, `receiver=`.
pub const RECEIVER: &str = "mx.test.example";

/// The seed of the random part of the corpus (splitmix64).
pub const SEED: u64 = 0x7011_6a7e_0008;

/// Random scenarios per policy, on top of the sweeps.
const RANDOM_PER_POLICY: usize = 12;

/// The client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    V4Pass,
    V4NoPtr,
    V4PtrMismatch,
    V4PtrTimeout,
    V6Pass,
    V6NoPtr,
    V6PtrMismatch,
    V6PtrTimeout,
    /// `::ffff:198.51.100.7`, the FCrDNS-pass client as IPv4-mapped IPv6.
    V4MappedPass,
    /// 192.0.2.5: FCrDNS pass, inside the trusted 192.0.2.0/28 of the skip policies.
    Trusted,
    /// 192.0.2.20: no PTR, just outside 192.0.2.0/28.
    BesideTrusted,
}

impl Client {
    pub const ALL: [Client; 11] = [
        Client::V4Pass,
        Client::V4NoPtr,
        Client::V4PtrMismatch,
        Client::V4PtrTimeout,
        Client::V6Pass,
        Client::V6NoPtr,
        Client::V6PtrMismatch,
        Client::V6PtrTimeout,
        Client::V4MappedPass,
        Client::Trusted,
        Client::BesideTrusted,
    ];

    pub fn ip(self) -> &'static str {
        match self {
            Client::V4Pass => "198.51.100.7",
            Client::V4NoPtr => "198.51.100.8",
            Client::V4PtrMismatch => "198.51.100.9",
            Client::V4PtrTimeout => "198.51.100.10",
            Client::V6Pass => "2001:db8::7",
            Client::V6NoPtr => "2001:db8::8",
            Client::V6PtrMismatch => "2001:db8::9",
            Client::V6PtrTimeout => "2001:db8::a",
            Client::V4MappedPass => "::ffff:198.51.100.7",
            Client::Trusted => "192.0.2.5",
            Client::BesideTrusted => "192.0.2.20",
        }
    }

    /// The address literal of the client (RFC 5321 §4.1.3).
    fn literal(self) -> String {
        match self.ip().parse::<IpAddr>().expect("an address") {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => format!("[{v4}]"),
                None => format!("[IPv6:{v6}]"),
            },
            IpAddr::V4(v4) => format!("[{v4}]"),
        }
    }
}

/// The HELO/EHLO argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Helo {
    /// gw.example.com: resolves to every client, SPF pass.
    Good,
    LiteralMatch,
    LiteralMismatch,
    Localhost,
    BareWord,
    /// Resolves elsewhere, SPF pass.
    SpfPass,
    SpfFail,
    SpfSoftfail,
    SpfNone,
    SpfPermerror,
    /// Addresses answer, the TXT query times out.
    SpfTimeout,
    /// NXDOMAIN.
    NotResolving,
    /// Every query times out.
    DnsTimeout,
    /// This host's own name.
    ThisHost,
    /// On the HELO skip list of the skip policies (SPF fail otherwise).
    Listed,
    /// No HELO/EHLO at all: the client goes straight to MAIL.
    Absent,
}

impl Helo {
    pub const ALL: [Helo; 16] = [
        Helo::Good,
        Helo::LiteralMatch,
        Helo::LiteralMismatch,
        Helo::Localhost,
        Helo::BareWord,
        Helo::SpfPass,
        Helo::SpfFail,
        Helo::SpfSoftfail,
        Helo::SpfNone,
        Helo::SpfPermerror,
        Helo::SpfTimeout,
        Helo::NotResolving,
        Helo::DnsTimeout,
        Helo::ThisHost,
        Helo::Listed,
        Helo::Absent,
    ];

    /// The argument, `None` when no HELO is given.
    pub fn name(self, client: Client) -> Option<String> {
        let name = match self {
            Helo::Good => "gw.example.com".to_owned(),
            Helo::LiteralMatch => client.literal(),
            Helo::LiteralMismatch => "[203.0.113.99]".to_owned(),
            Helo::Localhost => "localhost".to_owned(),
            Helo::BareWord => "OEMCOMPUTER".to_owned(),
            Helo::SpfPass => "helo-pass.example.com".to_owned(),
            Helo::SpfFail => "helo-fail.example.com".to_owned(),
            Helo::SpfSoftfail => "helo-softfail.example.com".to_owned(),
            Helo::SpfNone => "helo-none.example.com".to_owned(),
            Helo::SpfPermerror => "helo-permerror.example.com".to_owned(),
            Helo::SpfTimeout => "helo-slow.example.com".to_owned(),
            Helo::NotResolving => "nowhere.example.com".to_owned(),
            Helo::DnsTimeout => "helo-dead.example.com".to_owned(),
            Helo::ThisHost => RECEIVER.to_owned(),
            Helo::Listed => "relay.partner.example".to_owned(),
            Helo::Absent => return None,
        };
        Some(name)
    }
}

/// The MAIL FROM address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sender {
    Pass,
    Fail,
    /// Fail with the domain's own explanation (`exp=`).
    FailExplained,
    Softfail,
    Neutral,
    None,
    Permerror,
    /// The TXT query times out.
    Temperror,
    /// The server answers SERVFAIL.
    Servfail,
    /// `<>`.
    Null,
    /// On the sender domain skip list of the skip policies (SPF fail otherwise).
    Listed,
}

impl Sender {
    pub const ALL: [Sender; 11] = [
        Sender::Pass,
        Sender::Fail,
        Sender::FailExplained,
        Sender::Softfail,
        Sender::Neutral,
        Sender::None,
        Sender::Permerror,
        Sender::Temperror,
        Sender::Servfail,
        Sender::Null,
        Sender::Listed,
    ];

    /// The address without angle brackets (`--sender`; empty for `<>`).
    pub fn address(self) -> &'static str {
        match self {
            Sender::Pass => "alice@pass.example.net",
            Sender::Fail => "bob@fail.example.net",
            Sender::FailExplained => "ivan@explain.example.net",
            Sender::Softfail => "carol@softfail.example.net",
            Sender::Neutral => "dave@neutral.example.net",
            Sender::None => "erin@none.example.net",
            Sender::Permerror => "frank@permerror.example.net",
            Sender::Temperror => "grace@slow.example.net",
            Sender::Servfail => "judy@servfail.example.net",
            Sender::Null => "",
            Sender::Listed => "heidi@partner.example.org",
        }
    }
}

/// The recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rcpt {
    Normal,
    /// Exempt by default (RFC 5321 §4.5.1).
    Postmaster,
}

/// The shape of the SMTP conversation around the scenario's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// One HELO, one message.
    Single,
    /// Another message (from the passing sender) first, on the same
    /// connection: the connection's results carry over, the message's not.
    SecondMessage,
    /// The same EHLO twice (as after STARTTLS): the second gets the same answer.
    EhloTwice,
}

/// A policy variation: extra top-level configuration keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    pub name: &'static str,
    pub yaml: &'static str,
    pub earliest: bool,
    pub dry_run: bool,
    /// Whether it has the skip lists.
    pub skips: bool,
}

/// The skip lists of the skip policies: 192.0.2.0/28 trusted, one HELO
/// name and one sender domain listed.
macro_rules! skip_lists {
    () => {
        "skip:\n  networks: [192.0.2.0/28]\n  helo_names: [relay.partner.example]\n  sender_domains: [partner.example.org]\n"
    };
}

/// Every policy variation.
pub const POLICIES: [Policy; 9] = [
    Policy {
        name: "default",
        yaml: "",
        earliest: false,
        dry_run: false,
        skips: false,
    },
    Policy {
        name: "helo-softfail-reject",
        yaml: "policy:\n  spf-helo:\n    softfail: reject\n",
        earliest: false,
        dry_run: false,
        skips: false,
    },
    Policy {
        name: "fcrdns-off",
        yaml: "policy:\n  fcrdns: off\n",
        earliest: false,
        dry_run: false,
        skips: false,
    },
    Policy {
        name: "spf-helo-off-mailfrom-strict",
        yaml: "policy:\n  spf-helo: off\n  spf-mailfrom:\n    softfail: reject\n    neutral: reject\n    none: tempfail\n",
        earliest: false,
        dry_run: false,
        skips: false,
    },
    Policy {
        name: "earliest",
        yaml: "reject_at: earliest\n",
        earliest: true,
        dry_run: false,
        skips: false,
    },
    Policy {
        name: "dry-run",
        yaml: "dry_run: true\n",
        earliest: false,
        dry_run: true,
        skips: false,
    },
    Policy {
        name: "dry-run-earliest",
        yaml: "dry_run: true\nreject_at: earliest\n",
        earliest: true,
        dry_run: true,
        skips: false,
    },
    Policy {
        name: "skip-lists",
        yaml: skip_lists!(),
        earliest: false,
        dry_run: false,
        skips: true,
    },
    Policy {
        name: "skip-lists-earliest",
        yaml: concat!(skip_lists!(), "reject_at: earliest\n"),
        earliest: true,
        dry_run: false,
        skips: true,
    },
];

/// One scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scenario {
    /// Its number in the corpus: names its recipient and queue id.
    pub id: usize,
    /// Which run of the corpus in this process (the log capture is
    /// shared by the tests of this binary): part of the queue id.
    pub run: usize,
    pub policy: usize,
    pub client: Client,
    pub helo: Helo,
    pub sender: Sender,
    pub rcpt: Rcpt,
    pub conversation: Conversation,
}

impl Scenario {
    pub fn policy(&self) -> &'static Policy {
        &POLICIES[self.policy]
    }

    pub fn helo_name(&self) -> Option<String> {
        self.helo.name(self.client)
    }

    /// The recipient, unique to the scenario, with angle brackets.
    pub fn rcpt_address(&self) -> String {
        let local = match self.rcpt {
            Rcpt::Normal => "rcpt",
            Rcpt::Postmaster => "postmaster",
        };
        format!("<{local}@s{}.example.org>", self.id)
    }

    /// The MTA queue id of its message: finds its log line.
    pub fn queue_id(&self) -> String {
        format!("EQ{}R{:04}", self.run, self.id)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} policy={} client={} ({:?}) helo={} ({:?}) sender=<{}> ({:?}) rcpt={:?} {:?}",
            self.id,
            self.policy().name,
            self.client.ip(),
            self.client,
            self.helo_name()
                .map_or("(none)".to_owned(), |h| format!("{h:?}")),
            self.helo,
            self.sender.address(),
            self.sender,
            self.rcpt,
            self.conversation
        )
    }
}

/// splitmix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// The whole corpus, deterministic, without duplicates.
pub fn corpus() -> Vec<Scenario> {
    use Conversation::{EhloTwice, SecondMessage, Single};
    let mut rng = Rng(SEED);
    let mut all: Vec<Scenario> = Vec::new();
    let mut add = |policy, client, helo, sender, rcpt, conversation| {
        let s = Scenario {
            id: all.len(),
            run: 0,
            policy,
            client,
            helo,
            sender,
            rcpt,
            conversation,
        };
        let same = |o: &Scenario| Scenario { id: o.id, ..s } == *o;
        if !all.iter().any(same) {
            all.push(s);
        }
    };
    for (policy, settings) in POLICIES.iter().enumerate() {
        // Alternate the two FCrDNS-pass clients along a sweep.
        let good = |i: usize| {
            if i.is_multiple_of(2) {
                Client::V4Pass
            } else {
                Client::V6Pass
            }
        };
        for client in Client::ALL {
            add(
                policy,
                client,
                Helo::Good,
                Sender::Pass,
                Rcpt::Normal,
                Single,
            );
        }
        for (i, helo) in Helo::ALL.into_iter().enumerate() {
            add(policy, good(i), helo, Sender::Pass, Rcpt::Normal, Single);
            if settings.earliest {
                add(policy, good(i), helo, Sender::Pass, Rcpt::Normal, EhloTwice);
            }
        }
        for (i, sender) in Sender::ALL.into_iter().enumerate() {
            for rcpt in [Rcpt::Normal, Rcpt::Postmaster] {
                add(policy, good(i), Helo::Good, sender, rcpt, Single);
            }
            add(
                policy,
                good(i + 1),
                Helo::Good,
                sender,
                Rcpt::Normal,
                SecondMessage,
            );
        }
        if settings.skips {
            // A listed sender against every client and HELO: the skip
            // wins over whatever the connection stages found.
            for client in Client::ALL {
                add(
                    policy,
                    client,
                    Helo::Good,
                    Sender::Listed,
                    Rcpt::Normal,
                    Single,
                );
            }
            for (i, helo) in Helo::ALL.into_iter().enumerate() {
                add(policy, good(i), helo, Sender::Listed, Rcpt::Normal, Single);
            }
        }
        for _ in 0..RANDOM_PER_POLICY {
            add(
                policy,
                rng.pick(&Client::ALL),
                rng.pick(&Helo::ALL),
                rng.pick(&Sender::ALL),
                rng.pick(&[Rcpt::Normal, Rcpt::Postmaster]),
                rng.pick(&[Single, Single, SecondMessage, EhloTwice]),
            );
        }
    }
    all
}
