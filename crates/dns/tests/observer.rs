//! The query observer of `HickoryLookup`, against `tollgate-testdns` on
//! 127.0.0.1: every query is reported once, with its type and outcome,
//! and as served by the network exactly when testdns saw it.

#![cfg(feature = "hickory")]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate_dns::memory::RecordType;
use tollgate_dns::{
    HickoryLookup, Lookup, LookupError, QueryEvent, QueryObserver, QueryType, ResolverOptions,
    Served, TextType, TxtStrings,
};
use tollgate_testdns::suite::parse_zone;
use tollgate_testdns::{Rcode, TestDns};

/// What the observer saw: type, outcome, network or cache.
type Seen = (QueryType, Result<(), LookupError>, bool);

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl QueryObserver for Recorder {
    fn query(&self, event: &QueryEvent<'_>) {
        let network = match event.served {
            Served::Network(took) => {
                assert!(took > Duration::ZERO);
                true
            }
            Served::Cache => false,
        };
        self.0.lock().unwrap().push((
            event.query_type,
            event.result.map_err(Clone::clone),
            network,
        ));
    }
}

impl Recorder {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

async fn setup() -> (TestDns, HickoryLookup, Arc<Recorder>) {
    let zone = parse_zone(
        r#"
        example.com:
          - TXT: v=spf1 -all
          - MX: [10, mail.example.com]
        mail.example.com:
          - A: 192.0.2.10
        broken.example.com:
          - A: 192.0.2.11
        slow.example.com:
          - TIMEOUT
        10.2.0.192.in-addr.arpa:
          - PTR: mail.example.com
        "#,
    )
    .unwrap();
    let server = TestDns::start(zone).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let lookup = HickoryLookup::new(ResolverOptions {
        nameservers: Some(vec![server.addr()]),
        timeout: Duration::from_millis(200),
        attempts: 1,
        cache_size: 256,
    })
    .unwrap()
    .with_observer(recorder.clone());
    (server, lookup, recorder)
}

#[tokio::test]
async fn a_repeated_query_is_reported_from_the_cache_and_testdns_sees_it_once() {
    let (server, dns, seen) = setup().await;
    dns.lookup_a("mail.example.com").await.unwrap();
    dns.lookup_a("mail.example.com").await.unwrap();
    assert_eq!(
        seen.take(),
        vec![(QueryType::A, Ok(()), true), (QueryType::A, Ok(()), false)]
    );
    assert_eq!(server.query_count_for("mail.example.com", RecordType::A), 1);
    // A clone shares the cache and the observer.
    dns.clone().lookup_a("mail.example.com").await.unwrap();
    assert_eq!(seen.take(), vec![(QueryType::A, Ok(()), false)]);
}

#[tokio::test]
async fn each_record_type_and_outcome_is_reported() {
    let (server, dns, seen) = setup().await;
    server.set_rcode("broken.example.com", Rcode::ServFail);
    dns.lookup_mx("example.com").await.unwrap();
    dns.lookup_txt("example.com").await.unwrap();
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    dns.lookup_ptr(ip).await.unwrap();
    assert_eq!(
        dns.lookup_aaaa("mail.example.com").await,
        Err(LookupError::NoData)
    );
    assert_eq!(
        dns.lookup_a("nowhere.example.com").await,
        Err(LookupError::NxDomain)
    );
    assert!(matches!(
        dns.lookup_a("broken.example.com").await,
        Err(LookupError::ServerFailure(_))
    ));
    assert_eq!(
        dns.lookup_txt("slow.example.com").await,
        Err(LookupError::Timeout)
    );
    assert!(
        dns.lookup_strings("example.com", TextType::Spf)
            .await
            .is_err()
    );
    let seen = seen.take();
    let expected = [
        (QueryType::Mx, Ok(())),
        (QueryType::Txt, Ok(())),
        (QueryType::Ptr, Ok(())),
        (QueryType::Aaaa, Err(LookupError::NoData)),
        (QueryType::A, Err(LookupError::NxDomain)),
        (
            QueryType::A,
            Err(LookupError::ServerFailure("SERVFAIL".into())),
        ),
        (QueryType::Txt, Err(LookupError::Timeout)),
        (QueryType::Spf, Err(LookupError::NoData)),
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for ((kind, result, network), (want_kind, want_result)) in seen.into_iter().zip(expected) {
        assert_eq!((kind, &result), (want_kind, &want_result));
        assert!(network, "{kind} {result:?} was asked of the nameserver");
    }
}
