//! The suite loader against the real OpenSPF suite file and small
//! hand-written zones.

use std::net::IpAddr;
use std::path::Path;

use tollgate_dns::memory::{Answer, RecordData, RecordType};
use tollgate_testdns::suite::{SuiteError, load_suite, parse_suite, parse_zone};

fn suite_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../spf/tests/suite/rfc7208-tests.yml")
}

fn txt(answer: Answer) -> Vec<Vec<String>> {
    match answer {
        Answer::Records(records) => records
            .into_iter()
            .filter_map(|(_, d)| match d {
                RecordData::Txt(s) => Some(s),
                _ => None,
            })
            .collect(),
        other => panic!("expected TXT records, got {other:?}"),
    }
}

#[test]
fn whole_suite_loads_with_all_203_tests() {
    let scenarios = load_suite(&suite_path()).expect("suite loads");
    assert_eq!(scenarios.len(), 16);
    let total: usize = scenarios.iter().map(|s| s.tests.len()).sum();
    assert_eq!(total, 203);
    assert_eq!(scenarios[0].description, "Initial processing");
    assert!(scenarios.iter().all(|s| !s.tests.is_empty()));
    for test in scenarios.iter().flat_map(|s| &s.tests) {
        assert!(!test.result.is_empty(), "{} has no result", test.name);
        for r in &test.result {
            assert_eq!(r, &r.to_ascii_lowercase());
        }
    }
}

#[test]
fn suite_test_fields_are_read() {
    let scenarios = load_suite(&suite_path()).unwrap();
    let tests: Vec<_> = scenarios.iter().flat_map(|s| &s.tests).collect();
    let find = |name: &str| *tests.iter().find(|t| t.name == name).expect(name);

    let t = find("toolonglabel");
    assert_eq!(t.spec, vec!["4.3/1".to_owned()]);
    assert!(t.description.is_some() && t.comment.is_some());

    // `result: [permerror, fail]` keeps both values.
    let lists = tests.iter().filter(|t| t.result.len() > 1).count();
    assert!(lists >= 5, "only {lists} tests with several results");

    // IPv6 hosts parse, and empty senders stay empty.
    assert!(
        tests
            .iter()
            .any(|t| t.host == "2001:db8::1".parse::<IpAddr>().unwrap())
    );
    assert!(tests.iter().any(|t| t.mailfrom.is_empty()));
    assert!(
        tests
            .iter()
            .any(|t| t.explanation.as_deref() == Some("DEFAULT"))
    );
}

#[test]
fn double_quoted_escapes_become_code_points() {
    let scenarios = load_suite(&suite_path()).unwrap();
    let zone = &scenarios[0].zone;
    let records = txt(zone.query("hosed.example.com", RecordType::Txt));
    assert_eq!(
        records,
        vec![vec![
            "v=spf1 a:\u{ef}\u{bb}\u{bf}garbage.example.net -all".to_owned()
        ]]
    );
}

#[test]
fn spf_entry_is_served_as_txt_only_where_there_is_no_txt_entry() {
    let zone = parse_zone(
        r#"
        spfonly.example.com:
          - SPF: v=spf1 -all
        both.example.com:
          - SPF: v=spf1 ?all
          - TXT: v=spf1 -all
        suppressed.example.com:
          - SPF: v=spf1 -all
          - TXT: NONE
        "#,
    )
    .unwrap();
    assert_eq!(
        txt(zone.query("spfonly.example.com", RecordType::Txt)),
        vec![vec!["v=spf1 -all".to_owned()]]
    );
    assert!(matches!(
        zone.query("spfonly.example.com", RecordType::Spf),
        Answer::Records(_)
    ));
    assert_eq!(
        txt(zone.query("both.example.com", RecordType::Txt)),
        vec![vec!["v=spf1 -all".to_owned()]]
    );
    assert_eq!(
        zone.query("suppressed.example.com", RecordType::Txt),
        Answer::NoData(vec![])
    );
}

#[test]
fn txt_values_are_character_string_lists() {
    let zone = parse_zone(
        r#"
        null.example.com:
          - SPF: [ "v=spf1 ip4:", "192.0.2.5 -all" ]
          - SPF: [ ]
        "#,
    )
    .unwrap();
    assert_eq!(
        txt(zone.query("null.example.com", RecordType::Txt)),
        vec![
            vec!["v=spf1 ip4:".to_owned(), "192.0.2.5 -all".to_owned()],
            vec![]
        ]
    );
}

#[test]
fn timeout_keeps_its_position_among_the_entries() {
    let zone = parse_zone(
        r#"
        spftimeout.example.com:
          - TXT: v=spf1 -all
          - TIMEOUT
        txttimeout.example.com:
          - SPF: v=spf1 -all
          - TXT: NONE
          - TIMEOUT
        alltimeout.example.com:
          - TIMEOUT
        "#,
    )
    .unwrap();
    assert!(matches!(
        zone.query("spftimeout.example.com", RecordType::Txt),
        Answer::Records(_)
    ));
    assert_eq!(
        zone.query("spftimeout.example.com", RecordType::A),
        Answer::Timeout
    );
    assert_eq!(
        zone.query("txttimeout.example.com", RecordType::Txt),
        Answer::Timeout
    );
    assert!(matches!(
        zone.query("txttimeout.example.com", RecordType::Spf),
        Answer::Records(_)
    ));
    assert_eq!(
        zone.query("alltimeout.example.com", RecordType::Mx),
        Answer::Timeout
    );
}

#[test]
fn name_without_records_exists_and_other_names_do_not() {
    let zone = parse_zone(
        r#"
        empty.example.com: []
        none.example.com:
          - TXT: NONE
        "#,
    )
    .unwrap();
    assert_eq!(
        zone.query("empty.example.com", RecordType::A),
        Answer::NoData(vec![])
    );
    assert_eq!(
        zone.query("none.example.com", RecordType::Txt),
        Answer::NoData(vec![])
    );
    assert_eq!(
        zone.query("missing.example.com", RecordType::A),
        Answer::NxDomain(vec![])
    );
}

#[test]
fn address_mx_ptr_and_cname_entries_are_read() {
    let zone = parse_zone(
        r#"
        example.com:
          - A: 192.0.2.1
          - AAAA: 2001:db8::1
          - MX: [10, mail.example.com]
          - MX: [0, ""]
        7.2.0.192.in-addr.arpa:
          - PTR: mail.example.com.
        www.example.com:
          - CNAME: example.com
        "#,
    )
    .unwrap();
    let Answer::Records(mx) = zone.query("example.com", RecordType::Mx) else {
        panic!()
    };
    assert_eq!(mx.len(), 2);
    assert!(
        matches!(&mx[0].1, RecordData::Mx(m) if m.preference == 10 && m.exchange == "mail.example.com")
    );
    assert!(matches!(&mx[1].1, RecordData::Mx(m) if m.exchange.is_empty()));
    assert!(matches!(
        zone.query("example.com", RecordType::Aaaa),
        Answer::Records(_)
    ));
    assert!(matches!(
        zone.query("7.2.0.192.in-addr.arpa", RecordType::Ptr),
        Answer::Records(_)
    ));
    let Answer::Records(chain) = zone.query("www.example.com", RecordType::A) else {
        panic!()
    };
    assert_eq!(chain.len(), 2);
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert!(matches!(
        parse_zone("example.com: [ {A: not-an-address} ]"),
        Err(SuiteError::Invalid(_))
    ));
    assert!(matches!(
        parse_zone("example.com: [ {BOGUS: x} ]"),
        Err(SuiteError::Invalid(_))
    ));
    assert!(matches!(
        parse_zone("example.com: [ {MX: [1]} ]"),
        Err(SuiteError::Invalid(_))
    ));
    assert!(matches!(
        parse_zone(": : :\n\t- ["),
        Err(SuiteError::Yaml(_))
    ));
    assert!(matches!(
        parse_suite("description: x\ntests:\n  t1:\n    host: nowhere\n    result: pass\n"),
        Err(SuiteError::Invalid(_))
    ));
    assert!(matches!(
        load_suite(Path::new("/nonexistent/suite.yml")),
        Err(SuiteError::Io { .. })
    ));
}
