//! Turning one query packet into one response packet (or none), from a
//! [`Zone`]: the wire side of the test server, free of sockets so it can be
//! tested on its own.
//!
//! The zone answers through [`Zone::query`], the single source of truth for
//! what a name holds. Answers are authoritative; negative answers carry an
//! SOA record in the authority section so that resolvers cache them.
//! Malformed packets, and packets that are responses, get no reply at all.

use std::collections::{HashMap, HashSet};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::null::NULL;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType as WireType};
use tollgate_dns::memory::{Answer, RecordData, RecordType, Zone};
use tollgate_dns::normalize_name;

use crate::Rcode;

/// TTL of the records in positive answers.
pub(crate) const RECORD_TTL: u32 = 300;
/// TTL (and SOA minimum) of negative answers.
pub(crate) const NEGATIVE_TTL: u32 = 60;
/// The largest UDP response sent; larger ones are truncated (TC) and must be
/// asked again over TCP. Every UDP client is treated as a plain RFC 1035
/// client, whatever EDNS buffer size it advertises.
pub(crate) const UDP_LIMIT: usize = 512;
/// The SPF record type (RFC 4408, obsolete), served but never queried by tollgate.
pub(crate) const SPF_TYPE: u16 = 99;

/// What the server learnt from one packet.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The question (normalized name and QTYPE), if the packet was a query with one.
    pub question: Option<(String, u16)>,
    /// The bytes to send back, if any.
    pub reply: Option<Vec<u8>>,
}

/// What the server was told to do for some names, whatever the zone says.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    /// A response code (and no records) for every query for the name.
    pub rcodes: HashMap<String, Rcode>,
    /// Names whose answers are always truncated (TC, no records), over
    /// TCP too: a server whose answer does not fit, or a broken one.
    pub truncated: HashSet<String>,
    /// Names whose answers are held back by exactly this long, whatever
    /// the server's latency.
    pub delays: HashMap<String, std::time::Duration>,
}

/// Answers one packet. `limit` is the largest response the transport
/// carries ([`UDP_LIMIT`] for UDP, 65535 for TCP).
pub(crate) fn respond(packet: &[u8], zone: &Zone, overrides: &Overrides, limit: usize) -> Outcome {
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(_) => {
            return Outcome {
                question: None,
                reply: not_implemented_raw(packet),
            };
        }
    };
    if request.metadata.message_type != MessageType::Query {
        return Outcome::default();
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.queries.clone_from(&request.queries);
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_LIMIT as u16);
        response.set_edns(edns);
    }

    let mut outcome = Outcome::default();
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
    } else if request.queries.len() != 1 {
        response.metadata.response_code = ResponseCode::FormErr;
    } else {
        let query = &request.queries[0];
        let name = name_to_string(&query.name);
        let qtype = u16::from(query.query_type);
        outcome.question = Some((name.clone(), qtype));
        if query.query_class != DNSClass::IN {
            response.metadata.response_code = ResponseCode::Refused;
        } else if let Some(rcode) = overrides.rcodes.get(&name) {
            response.metadata.response_code = ResponseCode::from_low(rcode.code());
        } else if !answer_query(&mut response, query, &name, zone) {
            // A timeout: the query is never answered.
            return outcome;
        }
        if overrides.truncated.contains(&name) {
            outcome.reply = response.truncate().to_vec().ok();
            return outcome;
        }
    }

    outcome.reply = encode(&response, limit);
    outcome
}

/// Fills in the answer to a query; false if the query must time out.
fn answer_query(response: &mut Message, query: &Query, name: &str, zone: &Zone) -> bool {
    response.metadata.authoritative = true;
    let answer = match zone_type(u16::from(query.query_type)) {
        Some(rtype) => zone.query(name, rtype),
        // Types the zone cannot hold: the name exists with no such records,
        // or does not exist.
        None if zone.contains(name) => Answer::NoData(Vec::new()),
        None => Answer::NxDomain(Vec::new()),
    };
    let (chain, rcode) = match answer {
        Answer::Timeout => return false,
        Answer::ServFail => {
            response.metadata.authoritative = false;
            response.metadata.response_code = ResponseCode::ServFail;
            return true;
        }
        Answer::Records(chain) => (chain, ResponseCode::NoError),
        Answer::NoData(chain) => (chain, ResponseCode::NoError),
        Answer::NxDomain(chain) => (chain, ResponseCode::NXDomain),
    };
    let mut answers = Vec::with_capacity(chain.len());
    for (owner, data) in &chain {
        // The first owner is the query name: keep the case the client sent.
        let owner = if owner == name {
            Some(query.name.clone())
        } else {
            wire_name(owner)
        };
        match (owner, rdata(data)) {
            (Some(owner), Some(rdata)) => {
                answers.push(Record::from_rdata(owner, RECORD_TTL, rdata))
            }
            _ => {
                // Zone data that cannot go on the wire (a label over 63 bytes…).
                tracing::debug!(%name, "zone data cannot be encoded; answering SERVFAIL");
                response.metadata.authoritative = false;
                response.metadata.response_code = ResponseCode::ServFail;
                return true;
            }
        }
    }
    let negative = !answers
        .iter()
        .any(|r| u16::from(r.record_type()) == u16::from(query.query_type));
    response.answers = answers;
    response.metadata.response_code = rcode;
    if negative {
        response.authorities.push(soa());
    }
    true
}

/// Encodes a response, truncating it (TC, no records) past `limit` bytes.
fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let truncated = response.truncate();
    truncated.to_vec().ok().filter(|b| b.len() <= limit)
}

/// For a packet hickory cannot decode: a NOTIMP reply built from the raw
/// header if it is a query with an opcode other than QUERY, else nothing.
fn not_implemented_raw(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 12 {
        return None;
    }
    let flags = packet[2];
    let is_query = flags & 0x80 == 0;
    let opcode = (flags >> 3) & 0x0f;
    if !is_query || opcode == 0 {
        return None;
    }
    let mut reply = vec![0u8; 12];
    reply[0] = packet[0];
    reply[1] = packet[1];
    reply[2] = 0x80 | (flags & 0x79); // QR, opcode and RD copied
    reply[3] = 4; // NOTIMP
    Some(reply)
}

/// The zone record type for a QTYPE, if the zone can hold it.
pub(crate) fn zone_type(qtype: u16) -> Option<RecordType> {
    Some(match qtype {
        1 => RecordType::A,
        28 => RecordType::Aaaa,
        15 => RecordType::Mx,
        16 => RecordType::Txt,
        SPF_TYPE => RecordType::Spf,
        12 => RecordType::Ptr,
        5 => RecordType::Cname,
        _ => return None,
    })
}

/// A wire name as the zone spells names: labels joined with dots, lower case,
/// no trailing dot (bytes that are not UTF-8 replaced).
fn name_to_string(name: &Name) -> String {
    let labels: Vec<_> = name.iter().map(String::from_utf8_lossy).collect();
    normalize_name(&labels.join("."))
}

/// A zone name as a wire name; `None` if it cannot be one.
pub(crate) fn wire_name(name: &str) -> Option<Name> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Some(Name::root());
    }
    Name::from_labels(name.split('.').map(str::as_bytes)).ok()
}

/// A TXT-style RDATA: each string a character-string, strings longer than
/// 255 bytes split into 255-byte chunks. A record with no strings at all
/// (the suite's `[]`) goes out as it is: an RR with RDLENGTH 0, which
/// RFC 1035 §3.3.14 does not allow but real servers send (the suite's
/// `null-text` case); one empty string is one empty character-string.
fn character_strings(strings: &[String]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    for s in strings {
        if s.is_empty() {
            out.push(&b""[..]);
        }
        out.extend(s.as_bytes().chunks(255));
    }
    out
}

fn rdata(data: &RecordData) -> Option<RData> {
    Some(match data {
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        RecordData::Mx(mx) => RData::MX(MX::new(mx.preference, wire_name(&mx.exchange)?)),
        RecordData::Txt(strings) => RData::TXT(TXT::from_bytes(character_strings(strings))),
        RecordData::Spf(strings) => {
            let mut bytes = Vec::new();
            for s in character_strings(strings) {
                bytes.push(s.len() as u8); // at most 255 by construction
                bytes.extend_from_slice(s);
            }
            let mut null = NULL::new();
            null.anything = bytes;
            RData::Unknown {
                code: WireType::from(SPF_TYPE),
                rdata: null,
            }
        }
        RecordData::Ptr(target) => RData::PTR(PTR(wire_name(target)?)),
        RecordData::Cname(target) => RData::CNAME(CNAME(wire_name(target)?)),
    })
}

/// The SOA record sent with negative answers. It is owned by the root: the
/// test server pretends to be authoritative for every name.
fn soa() -> Record {
    let mname = wire_name("ns.testdns.test").unwrap_or_else(Name::root);
    let rname = wire_name("hostmaster.testdns.test").unwrap_or_else(Name::root);
    let soa = SOA::new(mname, rname, 1, 3600, 600, 86400, NEGATIVE_TTL);
    Record::from_rdata(Name::root(), NEGATIVE_TTL, RData::SOA(soa))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut msg = Message::query();
        msg.metadata.id = 0x1234;
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(
            wire_name(name).unwrap(),
            WireType::from(qtype),
        ));
        msg.to_vec().unwrap()
    }

    fn zone() -> Zone {
        let mut zone = Zone::new();
        zone.add_txt("example.com", "v=spf1 -all");
        zone.add("alias.example.com", RecordData::Cname("example.com".into()));
        zone
    }

    #[test]
    fn positive_answer_is_authoritative_with_the_query_echoed() {
        let out = respond(
            &query("Example.COM", 16),
            &zone(),
            &Overrides::default(),
            UDP_LIMIT,
        );
        assert_eq!(out.question, Some(("example.com".into(), 16)));
        let reply = Message::from_vec(&out.reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.id, 0x1234);
        assert!(reply.metadata.authoritative);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(reply.queries[0].name.to_ascii(), "Example.COM.");
        assert_eq!(reply.answers.len(), 1);
        assert!(reply.authorities.is_empty());
    }

    #[test]
    fn cname_chain_goes_in_the_answer_section() {
        let out = respond(
            &query("alias.example.com", 16),
            &zone(),
            &Overrides::default(),
            UDP_LIMIT,
        );
        let reply = Message::from_vec(&out.reply.unwrap()).unwrap();
        let types: Vec<_> = reply.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, vec![WireType::CNAME, WireType::TXT]);
    }

    #[test]
    fn unknown_qtype_is_nodata_for_an_existing_name() {
        let out = respond(
            &query("example.com", 33),
            &zone(),
            &Overrides::default(),
            UDP_LIMIT,
        );
        let reply = Message::from_vec(&out.reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
        assert_eq!(reply.authorities[0].record_type(), WireType::SOA);
    }

    #[test]
    fn long_strings_are_split_into_255_byte_chunks() {
        let long = "x".repeat(600);
        let chunks = character_strings(std::slice::from_ref(&long));
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![255, 255, 90]
        );
        assert_eq!(character_strings(&["".into()]), vec![&b""[..]]);
        assert!(character_strings(&[]).is_empty());
    }

    #[test]
    fn garbage_and_truncated_packets_get_no_reply() {
        let zone = zone();
        let forced = Overrides::default();
        let good = query("example.com", 16);
        for len in 0..good.len() {
            let out = respond(&good[..len], &zone, &forced, UDP_LIMIT);
            assert!(out.reply.is_none(), "reply to a {len}-byte prefix");
        }
        // A simple deterministic generator: no packet may panic the server.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut packet = vec![0u8; (state % 80) as usize];
            for byte in &mut packet {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            let _ = respond(&packet, &zone, &forced, UDP_LIMIT);
        }
    }

    #[test]
    fn responses_are_not_answered() {
        let mut packet = query("example.com", 16);
        packet[2] |= 0x80;
        assert!(
            respond(&packet, &zone(), &Overrides::default(), UDP_LIMIT)
                .reply
                .is_none()
        );
    }
}
