//! The test DNS server over real UDP and TCP sockets on 127.0.0.1.

use std::time::Duration;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tollgate_dns::memory::{Entry, RecordData, RecordType as ZoneType, Zone};
use tollgate_testdns::suite::parse_zone;
use tollgate_testdns::{Rcode, TestDns, Transport};

/// How long a test waits for an answer that must not come.
const SILENCE: Duration = Duration::from_millis(200);
/// How long a test waits for an answer that must come.
const PATIENCE: Duration = Duration::from_secs(5);

fn query_bytes(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    msg.to_vec().unwrap()
}

async fn udp_raw(server: &TestDns, packet: &[u8], wait: Duration) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(packet, server.addr()).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, _) = timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    assert!(len <= 512, "a UDP answer of {len} bytes");
    Some(Message::from_vec(&buf[..len]).unwrap())
}

async fn udp(server: &TestDns, name: &str, rtype: RecordType) -> Message {
    udp_raw(server, &query_bytes(name, rtype), PATIENCE)
        .await
        .expect("an answer over UDP")
}

async fn tcp_exchange(stream: &mut TcpStream, packet: &[u8]) -> Message {
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    stream.write_all(&framed).await.unwrap();
    let len = timeout(PATIENCE, stream.read_u16()).await.unwrap().unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

async fn tcp(server: &TestDns, name: &str, rtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    tcp_exchange(&mut stream, &query_bytes(name, rtype)).await
}

fn txt_strings(msg: &Message) -> Vec<Vec<Vec<u8>>> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
            _ => None,
        })
        .collect()
}

fn example_zone() -> Zone {
    parse_zone(
        r#"
        example.com:
          - TXT: v=spf1 mx -all
          - MX: [10, mail.example.com]
          - SPF: v=spf1 mx -all
        mail.example.com:
          - A: 192.0.2.10
          - AAAA: 2001:db8::10
        www.example.com:
          - CNAME: example.com
        slow.example.com:
          - TXT: v=spf1 -all
          - TIMEOUT
        10.2.0.192.in-addr.arpa:
          - PTR: mail.example.com
        "#,
    )
    .unwrap()
}

#[tokio::test]
async fn udp_and_tcp_answer_on_the_same_loopback_port() {
    let server = TestDns::start(example_zone()).await.unwrap();
    assert!(server.addr().ip().is_loopback());
    let over_udp = udp(&server, "mail.example.com.", RecordType::A).await;
    let over_tcp = tcp(&server, "mail.example.com.", RecordType::A).await;
    for msg in [over_udp, over_tcp] {
        assert!(msg.metadata.authoritative);
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert_eq!(msg.answers.len(), 1);
        assert_eq!(msg.answers[0].ttl, 300);
        assert!(matches!(&msg.answers[0].data, RData::A(a) if a.0.to_string() == "192.0.2.10"));
    }
}

#[tokio::test]
async fn nxdomain_and_nodata_are_distinct_and_both_carry_an_soa() {
    let server = TestDns::start(example_zone()).await.unwrap();
    let nx = udp(&server, "nowhere.example.com.", RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let nodata = udp(&server, "example.com.", RecordType::A).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    for msg in [nx, nodata] {
        assert!(msg.answers.is_empty());
        assert_eq!(msg.authorities.len(), 1);
        assert!(matches!(&msg.authorities[0].data, RData::SOA(soa) if soa.minimum == 60));
        assert_eq!(msg.authorities[0].ttl, 60);
    }
}

#[tokio::test]
async fn cname_chain_is_in_the_answer_section() {
    let server = TestDns::start(example_zone()).await.unwrap();
    let msg = udp(&server, "www.example.com.", RecordType::MX).await;
    let types: Vec<_> = msg.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, vec![RecordType::CNAME, RecordType::MX]);
}

#[tokio::test]
async fn mx_ptr_aaaa_and_spf_records_are_served() {
    let server = TestDns::start(example_zone()).await.unwrap();
    let mx = udp(&server, "example.com.", RecordType::MX).await;
    assert!(
        matches!(&mx.answers[0].data, RData::MX(m) if m.preference == 10 && m.exchange.to_ascii() == "mail.example.com.")
    );
    let ptr = udp(&server, "10.2.0.192.in-addr.arpa.", RecordType::PTR).await;
    assert!(matches!(&ptr.answers[0].data, RData::PTR(p) if p.0.to_ascii() == "mail.example.com."));
    let aaaa = udp(&server, "mail.example.com.", RecordType::AAAA).await;
    assert_eq!(aaaa.answers.len(), 1);
    let spf = udp(&server, "example.com.", RecordType::Unknown(99)).await;
    assert_eq!(spf.answers.len(), 1);
    assert_eq!(u16::from(spf.answers[0].record_type()), 99);
}

#[tokio::test]
async fn large_txt_is_truncated_over_udp_and_complete_over_tcp() {
    let long = format!("v=spf1 {} -all", "ip4:192.0.2.1 ".repeat(50));
    assert!(long.len() > 600);
    let mut zone = Zone::new();
    zone.add(
        "big.example.com",
        RecordData::Txt(vec![long.clone(), "tail".into()]),
    );
    let server = TestDns::start(zone).await.unwrap();

    let over_udp = udp(&server, "big.example.com.", RecordType::TXT).await;
    assert!(over_udp.metadata.truncation);
    assert!(over_udp.answers.is_empty());
    assert_eq!(over_udp.queries.len(), 1);

    let over_tcp = tcp(&server, "big.example.com.", RecordType::TXT).await;
    assert!(!over_tcp.metadata.truncation);
    let strings = &txt_strings(&over_tcp)[0];
    assert!(strings.iter().all(|s| s.len() <= 255));
    assert_eq!(strings.last().unwrap(), b"tail");
    let joined: Vec<u8> = strings[..strings.len() - 1].concat();
    assert_eq!(joined, long.as_bytes());

    let log = server.queries();
    assert_eq!(
        log.iter().map(|q| q.transport).collect::<Vec<_>>(),
        vec![Transport::Udp, Transport::Tcp]
    );
}

#[tokio::test]
async fn udp_limit_is_512_even_for_edns_clients() {
    let mut zone = Zone::new();
    zone.add_txt("big.example.com", &"x".repeat(700));
    let server = TestDns::start(zone).await.unwrap();
    let mut msg = Message::query();
    msg.add_query(Query::query(
        Name::from_ascii("big.example.com.").unwrap(),
        RecordType::TXT,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    msg.set_edns(edns);
    let reply = udp_raw(&server, &msg.to_vec().unwrap(), PATIENCE)
        .await
        .unwrap();
    assert!(reply.metadata.truncation);
    assert!(reply.edns.is_some());
}

#[tokio::test]
async fn one_tcp_connection_carries_several_queries() {
    let server = TestDns::start(example_zone()).await.unwrap();
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    for (name, rtype) in [
        ("example.com.", RecordType::TXT),
        ("mail.example.com.", RecordType::A),
        ("nowhere.example.com.", RecordType::A),
    ] {
        let msg = tcp_exchange(&mut stream, &query_bytes(name, rtype)).await;
        assert_eq!(msg.queries[0].name.to_ascii(), name);
    }
    assert_eq!(server.query_count(), 3);
}

#[tokio::test]
async fn timeout_names_are_never_answered_except_for_types_before_the_marker() {
    let server = TestDns::start(example_zone()).await.unwrap();
    let silent = udp_raw(
        &server,
        &query_bytes("slow.example.com.", RecordType::A),
        SILENCE,
    )
    .await;
    assert!(silent.is_none(), "a TIMEOUT name was answered");
    let txt = udp(&server, "slow.example.com.", RecordType::TXT).await;
    assert_eq!(txt.answers.len(), 1);
    // Over TCP the connection stays open and the next query is answered.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let packet = query_bytes("slow.example.com.", RecordType::A);
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&packet);
    stream.write_all(&framed).await.unwrap();
    assert!(timeout(SILENCE, stream.read_u16()).await.is_err());
    let msg = tcp_exchange(
        &mut stream,
        &query_bytes("mail.example.com.", RecordType::A),
    )
    .await;
    assert_eq!(msg.answers.len(), 1);
    assert_eq!(server.query_count_for("SLOW.example.com", ZoneType::A), 2);
}

#[tokio::test]
async fn forced_rcodes_give_servfail_and_refused() {
    let server = TestDns::start(example_zone()).await.unwrap();
    server.set_rcode("example.com", Rcode::ServFail);
    server.set_rcode("mail.example.com.", Rcode::Refused);
    let msg = udp(&server, "Example.COM.", RecordType::TXT).await;
    assert_eq!(msg.metadata.response_code, ResponseCode::ServFail);
    assert!(msg.answers.is_empty());
    let msg = udp(&server, "mail.example.com.", RecordType::A).await;
    assert_eq!(msg.metadata.response_code, ResponseCode::Refused);
    server.clear_rcode("example.com");
    let msg = udp(&server, "example.com.", RecordType::TXT).await;
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn cname_loop_gives_servfail() {
    let mut zone = Zone::new();
    zone.add("a.example.com", RecordData::Cname("b.example.com".into()));
    zone.add("b.example.com", RecordData::Cname("a.example.com".into()));
    let server = TestDns::start(zone).await.unwrap();
    let msg = udp(&server, "a.example.com.", RecordType::A).await;
    assert_eq!(msg.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn zone_can_be_swapped_while_running() {
    let server = TestDns::start(Zone::new()).await.unwrap();
    let msg = udp(&server, "example.com.", RecordType::TXT).await;
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    server.set_zone(example_zone());
    let msg = udp(&server, "example.com.", RecordType::TXT).await;
    assert_eq!(txt_strings(&msg), vec![vec![b"v=spf1 mx -all".to_vec()]]);
}

#[tokio::test]
async fn query_log_records_names_types_and_transports_until_reset() {
    let server = TestDns::start(example_zone()).await.unwrap();
    udp(&server, "Mail.Example.com.", RecordType::AAAA).await;
    tcp(&server, "example.com.", RecordType::MX).await;
    let log = server.queries();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].name.as_str(), log[0].qtype, log[0].transport),
        ("mail.example.com", 28, Transport::Udp)
    );
    assert_eq!(log[1].record_type(), Some(ZoneType::Mx));
    assert_eq!(log[1].transport, Transport::Tcp);
    server.reset_counts();
    assert_eq!(server.query_count(), 0);
}

#[tokio::test]
async fn non_query_opcodes_get_notimp() {
    let server = TestDns::start(example_zone()).await.unwrap();
    let mut msg = Message::query();
    msg.metadata.op_code = OpCode::Notify;
    msg.add_query(Query::query(
        Name::from_ascii("example.com.").unwrap(),
        RecordType::SOA,
    ));
    let reply = udp_raw(&server, &msg.to_vec().unwrap(), PATIENCE)
        .await
        .unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(reply.metadata.id, msg.metadata.id);
}

#[tokio::test]
async fn garbage_is_ignored_and_the_server_keeps_answering() {
    let server = TestDns::start(example_zone()).await.unwrap();
    // Empty, too short for a header, a query whose question runs past the
    // end, a "response".
    let cut_short = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab";
    for packet in [&b""[..], b"\x00", cut_short, &[0xff; 40]] {
        assert!(
            udp_raw(&server, packet, Duration::from_millis(50))
                .await
                .is_none()
        );
    }
    // A TCP frame announcing more than is sent, then the connection closes.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(&[0x01, 0x00, 0xde, 0xad]).await.unwrap();
    drop(stream);
    let msg = udp(&server, "example.com.", RecordType::TXT).await;
    assert_eq!(msg.answers.len(), 1);
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = TestDns::start(example_zone()).await.unwrap();
    let addr = server.addr();
    drop(server);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn timeout_entry_built_by_hand_behaves_like_the_suite_marker() {
    let mut zone = Zone::new();
    zone.add_entry("gone.example.com", Entry::Timeout);
    let server = TestDns::start(zone).await.unwrap();
    assert!(
        udp_raw(
            &server,
            &query_bytes("gone.example.com.", RecordType::TXT),
            SILENCE
        )
        .await
        .is_none()
    );
    assert_eq!(server.query_count(), 1);
}

/// A query for `name`, type `qtype`, built byte by byte (RFC 1035 §4.1).
fn hand_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut packet = id.to_be_bytes().to_vec();
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0]);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&[0, 1]);
    packet
}

/// Skips a (possibly compressed) name at `pos`; the position after it.
fn skip_name(packet: &[u8], mut pos: usize) -> usize {
    loop {
        let len = packet[pos];
        if len & 0xc0 == 0xc0 {
            return pos + 2;
        }
        pos += 1 + usize::from(len);
        if len == 0 {
            return pos;
        }
    }
}

/// The answer section of a response, parsed by hand: (TYPE, RDATA) pairs,
/// so that what went on the wire is seen without any decoder's opinion.
fn hand_answers(packet: &[u8], id: u16) -> Vec<(u16, Vec<u8>)> {
    let word = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    assert_eq!(word(0), id);
    assert_eq!(packet[3] & 0x0f, 0, "RCODE");
    let (qdcount, ancount) = (word(4), word(6));
    let mut pos = 12;
    for _ in 0..qdcount {
        pos = skip_name(packet, pos) + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..ancount {
        pos = skip_name(packet, pos);
        let rtype = word(pos);
        let rdlength = usize::from(word(pos + 8));
        pos += 10;
        answers.push((rtype, packet[pos..pos + rdlength].to_vec()));
        pos += rdlength;
    }
    answers
}

/// The suite's `null-text` zone, as the suite writes it: a record with no
/// character-string at all goes on the wire as it is, RDLENGTH 0 (issue
/// 14, item 5: testdns used to send one empty string instead, which hid a
/// resolver failure). One empty string stays one empty character-string.
#[tokio::test]
async fn txt_record_without_strings_is_sent_with_rdlength_zero() {
    let zone = parse_zone(
        r#"
        null.example.com:
          - SPF: [ "v=spf1 ip4:", "192.0.2.5 -all" ]
          - SPF: [ ]
        one.example.com:
          - TXT: [ "" ]
        "#,
    )
    .unwrap();
    let server = TestDns::start(zone).await.unwrap();
    let expected = vec![
        (16, b"\x0bv=spf1 ip4:\x0e192.0.2.5 -all".to_vec()),
        (16, Vec::new()),
    ];

    let query = hand_query(0x5150, "null.example.com", 16);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query, server.addr()).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, _) = timeout(PATIENCE, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hand_answers(&buf[..len], 0x5150), expected, "over UDP");

    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).await.unwrap();
    let len = timeout(PATIENCE, stream.read_u16()).await.unwrap().unwrap();
    let mut reply = vec![0u8; usize::from(len)];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(hand_answers(&reply, 0x5150), expected, "over TCP");

    let query = hand_query(0x5151, "one.example.com", 16);
    socket.send_to(&query, server.addr()).await.unwrap();
    let (len, _) = timeout(PATIENCE, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hand_answers(&buf[..len], 0x5151), vec![(16, vec![0])]);
}

#[tokio::test]
async fn latency_holds_every_answer_back_at_least_the_fixed_delay() {
    let server = TestDns::start(example_zone()).await.unwrap();
    server.set_latency(tollgate_testdns::Latency::fixed(Duration::from_millis(60)));
    for transport in [Transport::Udp, Transport::Tcp] {
        let started = std::time::Instant::now();
        let reply = match transport {
            Transport::Udp => udp(&server, "example.com.", RecordType::TXT).await,
            Transport::Tcp => tcp(&server, "example.com.", RecordType::TXT).await,
        };
        let waited = started.elapsed();
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(
            waited >= Duration::from_millis(60),
            "{transport:?} answer after {waited:?}"
        );
    }
    server.set_latency(tollgate_testdns::Latency::NONE);
    assert_eq!(
        txt_strings(&udp(&server, "example.com.", RecordType::TXT).await).len(),
        1
    );
}

#[tokio::test]
async fn jittered_latency_holds_answers_back_at_least_base_minus_jitter() {
    let server = TestDns::start(example_zone()).await.unwrap();
    server.set_latency("40ms+-20ms".parse::<tollgate_testdns::Latency>().unwrap());
    for _ in 0..5 {
        let started = std::time::Instant::now();
        udp(&server, "example.com.", RecordType::TXT).await;
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}

/// One answer held back for an hour must not hold back another query,
/// sent after it over the same UDP socket: each answer waits on its own.
#[tokio::test]
async fn a_delayed_udp_answer_does_not_hold_back_the_next_query() {
    let server = TestDns::start(example_zone()).await.unwrap();
    server.set_latency(tollgate_testdns::Latency::fixed(Duration::from_millis(10)));
    server.set_delay("example.com", Some(Duration::from_secs(3600)));
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&query_bytes("example.com.", RecordType::TXT), server.addr())
        .await
        .unwrap();
    socket
        .send_to(
            &query_bytes("mail.example.com.", RecordType::A),
            server.addr(),
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, _) = timeout(PATIENCE, socket.recv_from(&mut buf))
        .await
        .expect("the second answer is not held behind the first")
        .unwrap();
    let reply = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(reply.queries[0].name.to_ascii(), "mail.example.com.");
    assert_eq!(server.query_count(), 2);
}

/// The same over one TCP connection with pipelined queries.
#[tokio::test]
async fn a_delayed_tcp_answer_does_not_hold_back_a_pipelined_query() {
    let server = TestDns::start(example_zone()).await.unwrap();
    server.set_latency(tollgate_testdns::Latency::fixed(Duration::from_millis(10)));
    server.set_delay("example.com", Some(Duration::from_secs(3600)));
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let mut framed = Vec::new();
    for (name, rtype) in [
        ("example.com.", RecordType::TXT),
        ("mail.example.com.", RecordType::A),
    ] {
        let packet = query_bytes(name, rtype);
        framed.extend((packet.len() as u16).to_be_bytes());
        framed.extend(packet);
    }
    stream.write_all(&framed).await.unwrap();
    let len = timeout(PATIENCE, stream.read_u16())
        .await
        .expect("the second answer is not held behind the first")
        .unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    let reply = Message::from_vec(&buf).unwrap();
    assert_eq!(reply.queries[0].name.to_ascii(), "mail.example.com.");
}

#[tokio::test]
async fn many_concurrent_delayed_queries_are_all_answered() {
    let server = TestDns::start(example_zone()).await.unwrap();
    server.set_latency("20ms+-10ms".parse().unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let addr = server.addr();
        tasks.spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            socket
                .send_to(&query_bytes("mail.example.com.", RecordType::A), addr)
                .await
                .unwrap();
            let mut buf = vec![0u8; 512];
            timeout(PATIENCE, socket.recv_from(&mut buf)).await.is_ok()
        });
    }
    let answered = tasks.join_all().await.into_iter().filter(|a| *a).count();
    assert_eq!(answered, 50);
}
