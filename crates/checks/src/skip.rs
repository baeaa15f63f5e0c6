//! Stage 0, `skip`: clients and messages that are not checked at all
//! (trusted networks, SASL-authenticated senders, listed HELO names and
//! sender domains). Skipped mail is never rejected by SPF.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::canonical;
use crate::names::find_name;

/// Why a client or message is not checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The client is in a trusted network.
    TrustedNetwork {
        /// The client.
        ip: IpAddr,
        /// The network it is in.
        network: IpNet,
    },
    /// The sender authenticated (SASL) as this user.
    Authenticated(String),
    /// The HELO name is on the skip list.
    HeloListed {
        /// The HELO name.
        helo: String,
        /// The list entry it matched.
        entry: String,
    },
    /// The sender domain is on the skip list.
    SenderDomainListed {
        /// The domain.
        domain: String,
        /// The list entry it matched.
        entry: String,
    },
    /// The MTA gave no client address (a local submission).
    NoClientAddress,
    /// The client's forward-confirmed reverse name is on the skip list.
    ClientNameListed {
        /// The confirmed name.
        name: String,
        /// The list entry it matched.
        entry: String,
    },
    /// A DNS allow list lists the client.
    AllowListed {
        /// The client.
        ip: IpAddr,
        /// The list's zone.
        zone: String,
    },
    /// The client passes the SPF record of a trusted forwarder: the MAIL
    /// FROM stages (sender-domain, spf-mailfrom) are not enforced; the
    /// other stages are.
    Forwarder {
        /// The client.
        ip: IpAddr,
        /// The forwarder's domain.
        domain: String,
    },
}

impl SkipReason {
    /// Whether this skip exempts only the MAIL FROM stages (a trusted
    /// forwarder), not the whole message.
    pub fn is_partial(&self) -> bool {
        matches!(self, SkipReason::Forwarder { .. })
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TrustedNetwork { ip, network } => {
                write!(f, "client {ip} is in trusted network {network}")
            }
            SkipReason::Authenticated(user) => write!(f, "sender authenticated as {user}"),
            SkipReason::HeloListed { helo, entry } => write!(f, "HELO {helo} is listed ({entry})"),
            SkipReason::SenderDomainListed { domain, entry } => {
                write!(f, "sender domain {domain} is listed ({entry})")
            }
            SkipReason::NoClientAddress => f.write_str("local client without an IP address"),
            SkipReason::ClientNameListed { name, entry } => {
                write!(
                    f,
                    "client name {name} (forward-confirmed) is listed ({entry})"
                )
            }
            SkipReason::AllowListed { ip, zone } => {
                write!(f, "client {ip} is on the allow list {zone}")
            }
            SkipReason::Forwarder { ip, domain } => write!(
                f,
                "client {ip} passes SPF for the trusted forwarder {domain}: MAIL FROM checks not enforced"
            ),
        }
    }
}

/// What is exempt from checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkipLists {
    /// Client networks that are trusted (loopback by default).
    pub trusted_networks: Vec<IpNet>,
    /// Skip SASL-authenticated senders (`{auth_authen}` set).
    pub authenticated: bool,
    /// HELO names to skip: `host.example.com` matches that name only,
    /// `.example.com` any name under example.com.
    pub helo_names: Vec<String>,
    /// Sender domains to skip, with the same matching as `helo_names`.
    pub sender_domains: Vec<String>,
    /// Forward-confirmed client names to skip, with the same matching:
    /// only a name that fcrdns confirmed counts (a PTR alone can be set by
    /// whoever holds the address block).
    pub client_names: Vec<String>,
    /// Domains of trusted forwarders: a client that passes one's SPF
    /// record is exempt from the MAIL FROM stages.
    pub forwarders: Vec<String>,
}

impl Default for SkipLists {
    fn default() -> Self {
        SkipLists {
            trusted_networks: vec![
                "127.0.0.0/8".parse().expect("valid network"),
                "::1/128".parse().expect("valid network"),
            ],
            authenticated: true,
            helo_names: Vec::new(),
            sender_domains: Vec::new(),
            client_names: Vec::new(),
            forwarders: Vec::new(),
        }
    }
}

impl SkipLists {
    /// Why a client address is exempt, if it is.
    pub fn client(&self, ip: IpAddr) -> Option<SkipReason> {
        let ip = canonical(ip);
        self.trusted_networks
            .iter()
            .find(|net| net.contains(&ip))
            .map(|network| SkipReason::TrustedNetwork {
                ip,
                network: *network,
            })
    }

    /// Why an authenticated session is exempt, if it is.
    pub fn auth(&self, auth_user: Option<&str>) -> Option<SkipReason> {
        match auth_user {
            Some(user) if self.authenticated && !user.is_empty() => {
                Some(SkipReason::Authenticated(user.to_owned()))
            }
            _ => None,
        }
    }

    /// Why a HELO name is exempt, if it is.
    pub fn helo(&self, helo: &str) -> Option<SkipReason> {
        find_name(&self.helo_names, helo).map(|entry| SkipReason::HeloListed {
            helo: helo.to_owned(),
            entry: entry.to_owned(),
        })
    }

    /// Why a forward-confirmed client name is exempt, if it is.
    pub fn client_name(&self, confirmed: &str) -> Option<SkipReason> {
        find_name(&self.client_names, confirmed).map(|entry| SkipReason::ClientNameListed {
            name: confirmed.to_owned(),
            entry: entry.to_owned(),
        })
    }

    /// Why a sender domain is exempt, if it is.
    pub fn sender_domain(&self, domain: &str) -> Option<SkipReason> {
        find_name(&self.sender_domains, domain).map(|entry| SkipReason::SenderDomainListed {
            domain: domain.to_owned(),
            entry: entry.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_trusted_by_default_and_mapped_addresses_count() {
        let lists = SkipLists::default();
        assert!(lists.client("127.0.0.1".parse().unwrap()).is_some());
        assert!(lists.client("::ffff:127.0.0.1".parse().unwrap()).is_some());
        assert!(lists.client("::1".parse().unwrap()).is_some());
        assert!(lists.client("192.0.2.7".parse().unwrap()).is_none());
    }

    #[test]
    fn domain_lists_match_exactly_or_by_leading_dot() {
        let lists = SkipLists {
            helo_names: vec!["relay.example.com".into(), ".example.net".into()],
            ..SkipLists::default()
        };
        assert!(lists.helo("Relay.Example.COM").is_some());
        assert!(lists.helo("other.example.com").is_none());
        assert!(lists.helo("mx1.example.net").is_some());
        assert!(lists.helo("example.net").is_none());
        assert!(lists.helo("badexample.net").is_none());
    }

    #[test]
    fn authenticated_senders_are_skipped_unless_disabled() {
        let mut lists = SkipLists::default();
        assert!(lists.auth(Some("alice")).is_some());
        assert!(lists.auth(Some("")).is_none());
        lists.authenticated = false;
        assert!(lists.auth(Some("alice")).is_none());
    }
}
