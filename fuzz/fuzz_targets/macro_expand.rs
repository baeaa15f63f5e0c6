//! Fuzz target: macro-string parsing and expansion.
//!
//! Bytes become a string (lossily), parsed as a macro string in each
//! context and expanded with fixed values (an IPv4 and an IPv6 client);
//! `expand_domain` must never exceed 253 characters and must be a
//! label-suffix of the full expansion, and the contexts must nest
//! (domain-spec ⊆ modifier value ⊆ explanation).

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use tollgate_spf::{MacroContext, MacroString, MacroValues};

const CONTEXTS: [MacroContext; 3] = [
    MacroContext::DomainSpec,
    MacroContext::Unknown,
    MacroContext::Explanation,
];

fn values(ip: IpAddr) -> MacroValues<'static> {
    MacroValues {
        sender: "strong-bad@email.example.com",
        local_part: "strong-bad",
        sender_domain: "email.example.com",
        domain: "email.example.com",
        ip,
        helo: "mx.example.org",
        validated_name: "mail.example.com",
        receiver: "mx.example.net",
        timestamp: 1_700_000_000,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed: Vec<_> = CONTEXTS
        .iter()
        .map(|&c| MacroString::parse(&text, c))
        .collect();
    if parsed[0].is_ok() {
        assert!(
            parsed[1].is_ok(),
            "domain-spec but not modifier value: {text:?}"
        );
    }
    if parsed[1].is_ok() {
        assert!(
            parsed[2].is_ok(),
            "modifier value but not explanation: {text:?}"
        );
    }
    let ips: [IpAddr; 2] = [
        "192.0.2.3".parse().unwrap(),
        "2001:db8::cb01".parse().unwrap(),
    ];
    for ms in parsed.iter().flatten() {
        assert_eq!(ms.as_str(), &*text);
        for ip in ips {
            let v = values(ip);
            let full = ms.expand(&v);
            let domain = ms.expand_domain(&v);
            assert!(domain.len() <= 253, "{} bytes from {text:?}", domain.len());
            assert!(full.ends_with(&domain));
            if full.len() <= 253 {
                assert_eq!(domain, full);
            }
        }
    }
});
