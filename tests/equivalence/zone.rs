//! The zone testdns serves for the corpus, in the OpenSPF suite's YAML
//! form: reverse and forward data for the clients (FCrDNS pass, no PTR,
//! PTR not pointing back, PTR lookup timing out), HELO names with every
//! SPF result and DNS trouble, and sender domains with every SPF result.

use std::net::IpAddr;

/// The name under `in-addr.arpa` or `ip6.arpa` for `ip` (RFC 1035 §3.5,
/// RFC 3596 §2.5).
fn reverse_name(ip: &str) -> String {
    match ip.parse::<IpAddr>().expect("an address") {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut name = String::new();
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// Every address a client of the corpus uses (for the good HELO name).
const CLIENT_V4: [&str; 6] = [
    "198.51.100.7",
    "198.51.100.8",
    "198.51.100.9",
    "198.51.100.10",
    "192.0.2.5",
    "192.0.2.20",
];
const CLIENT_V6: [&str; 4] = ["2001:db8::7", "2001:db8::8", "2001:db8::9", "2001:db8::a"];

/// The SPF record that authorises every corpus client.
const AUTHORISES_ALL: &str = "v=spf1 ip4:198.51.100.0/24 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all";

/// The zone, in the OpenSPF suite's YAML form.
pub fn zone() -> String {
    let mut z = String::new();
    let mut name = |n: &str, entries: &[String]| {
        z.push_str(&format!("{n}:\n"));
        for e in entries {
            z.push_str(&format!("  - {e}\n"));
        }
    };
    let a = |ip: &str| format!("A: {ip}");
    let aaaa = |ip: &str| format!("AAAA: \"{ip}\"");
    let txt = |t: &str| format!("TXT: \"{t}\"");
    let ptr = |n: &str| format!("PTR: {n}");
    let timeout = || "TIMEOUT".to_owned();

    // Clients: FCrDNS pass, no PTR (.8, ::8, 192.0.2.20: no entry at
    // all), PTR not pointing back, PTR lookup timing out.
    name(&reverse_name("198.51.100.7"), &[ptr("mail.example.com")]);
    name(&reverse_name("2001:db8::7"), &[ptr("mail.example.com")]);
    name(
        "mail.example.com",
        &[a("198.51.100.7"), aaaa("2001:db8::7")],
    );
    name(
        &reverse_name("198.51.100.9"),
        &[ptr("elsewhere.example.net")],
    );
    name(
        &reverse_name("2001:db8::9"),
        &[ptr("elsewhere.example.net")],
    );
    name(
        "elsewhere.example.net",
        &[a("203.0.113.50"), aaaa("2001:db8:ffff::50")],
    );
    name(&reverse_name("198.51.100.10"), &[timeout()]);
    name(&reverse_name("2001:db8::a"), &[timeout()]);
    name(&reverse_name("192.0.2.5"), &[ptr("trusted.example.com")]);
    name("trusted.example.com", &[a("192.0.2.5")]);

    // HELO names.
    let mut gw: Vec<String> = CLIENT_V4.iter().map(|ip| a(ip)).collect();
    gw.extend(CLIENT_V6.iter().map(|ip| aaaa(ip)));
    gw.push(txt(AUTHORISES_ALL));
    name("gw.example.com", &gw);
    name(
        "helo-pass.example.com",
        &[a("203.0.113.1"), txt(AUTHORISES_ALL)],
    );
    name(
        "helo-fail.example.com",
        &[a("203.0.113.2"), txt("v=spf1 a -all")],
    );
    name(
        "helo-softfail.example.com",
        &[a("203.0.113.3"), txt("v=spf1 a ~all")],
    );
    name("helo-none.example.com", &[a("203.0.113.4")]);
    name(
        "helo-permerror.example.com",
        &[a("203.0.113.5"), txt("v=spf1 frobnicate:x -all")],
    );
    // Addresses answer, the SPF record times out.
    name(
        "helo-slow.example.com",
        &[a("203.0.113.6"), aaaa("2001:db8:ffff::6"), timeout()],
    );
    name("helo-dead.example.com", &[timeout()]);
    name(
        "relay.partner.example",
        &[a("203.0.113.9"), txt("v=spf1 -all")],
    );

    // Sender domains.
    name("pass.example.net", &[txt(AUTHORISES_ALL)]);
    name("fail.example.net", &[txt("v=spf1 ip4:203.0.113.0/24 -all")]);
    name(
        "softfail.example.net",
        &[txt("v=spf1 ip4:203.0.113.0/24 ~all")],
    );
    name("neutral.example.net", &[txt("v=spf1 ?all")]);
    name("none.example.net", &[a("203.0.113.20")]);
    name(
        "permerror.example.net",
        &[txt("v=spf1 -all"), txt("v=spf1 +all")],
    );
    name("slow.example.net", &[timeout()]);
    name(
        "explain.example.net",
        &[txt(
            "v=spf1 ip4:203.0.113.0/24 -all exp=why.explain.example.net",
        )],
    );
    name(
        "why.explain.example.net",
        &[txt("%{i} is not one of our outbound relays")],
    );
    // servfail.example.net answers SERVFAIL (set on the server).
    name("servfail.example.net", &[txt(AUTHORISES_ALL)]);
    name("partner.example.org", &[txt("v=spf1 -all")]);
    z
}

/// The name testdns answers SERVFAIL for.
pub const SERVFAIL_NAME: &str = "servfail.example.net";
