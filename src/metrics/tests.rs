//! Tests of the metrics: label values and the encoded text.

use std::collections::BTreeSet;

use tollgate_checks::{Action, SkipReason, Stage, Verdict};
use tollgate_dns::LookupError;

use super::dns::outcome_label;
use super::*;

#[test]
fn dns_outcomes_map_to_a_bounded_set_whatever_the_rcode() {
    assert_eq!(outcome_label(Ok(())), "answer");
    assert_eq!(outcome_label(Err(&LookupError::NxDomain)), "nxdomain");
    assert_eq!(outcome_label(Err(&LookupError::NoData)), "nodata");
    assert_eq!(outcome_label(Err(&LookupError::Timeout)), "timeout");
    assert_eq!(outcome_label(Err(&LookupError::Truncated)), "truncated");
    for (rcode, label) in [
        ("SERVFAIL", "servfail"),
        ("REFUSED", "refused"),
        ("NOTIMP", "other-rcode"),
        ("RCODE3000", "other-rcode"),
    ] {
        let error = LookupError::ServerFailure(rcode.to_owned());
        assert_eq!(outcome_label(Err(&error)), label, "{rcode}");
    }
    // The text of an error from the network never becomes a label.
    let error = LookupError::Other("connection reset by 192.0.2.1".to_owned());
    assert_eq!(outcome_label(Err(&error)), "error");
}

#[test]
fn skip_reasons_become_kinds_without_their_addresses_or_names() {
    let reasons = [
        SkipReason::TrustedNetwork {
            ip: "192.0.2.7".parse().unwrap(),
            network: "192.0.2.0/24".parse().unwrap(),
        },
        SkipReason::Authenticated("bob".to_owned()),
        SkipReason::HeloListed {
            helo: "mx.example.com".to_owned(),
            entry: ".example.com".to_owned(),
        },
        SkipReason::SenderDomainListed {
            domain: "example.com".to_owned(),
            entry: "example.com".to_owned(),
        },
        SkipReason::NoClientAddress,
        SkipReason::ClientNameListed {
            name: "mx.example.com".to_owned(),
            entry: "mx.example.com".to_owned(),
        },
        SkipReason::AllowListed {
            ip: "192.0.2.7".parse().unwrap(),
            zone: "list.example.net".to_owned(),
        },
        SkipReason::Forwarder {
            ip: "192.0.2.7".parse().unwrap(),
            domain: "example.org".to_owned(),
        },
    ];
    let kinds: BTreeSet<&str> = reasons.iter().map(skip_kind).collect();
    assert_eq!(kinds.len(), reasons.len(), "one kind per reason: {kinds:?}");
    for kind in kinds {
        assert!(
            kind.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{kind}"
        );
    }
}

#[test]
fn actions_are_labelled_as_in_the_log_line() {
    let verdict = |action| Verdict {
        action,
        stage: Some(Stage::SpfMailfrom),
        reply: None,
    };
    assert_eq!(action_label(&verdict(Action::Reject), false), "reject");
    assert_eq!(action_label(&verdict(Action::Tempfail), false), "tempfail");
    assert_eq!(action_label(&verdict(Action::Tag), false), "accept");
    assert_eq!(
        action_label(&verdict(Action::Reject), true),
        "dry-run:reject"
    );
    assert_eq!(
        action_label(&verdict(Action::Tempfail), true),
        "dry-run:tempfail"
    );
    assert_eq!(action_label(&verdict(Action::Tag), true), "accept");
    // A dry run records greylisting triplets but delays nothing.
    assert_eq!(action_label(&verdict(Action::Greylist), false), "greylist");
    assert_eq!(
        action_label(&verdict(Action::Greylist), true),
        "dry-run:greylist"
    );
}

#[test]
fn commands_are_counted_and_timed_under_their_own_label() {
    let metrics = Metrics::new();
    metrics.command(Command::Rcpt, Duration::from_micros(200));
    metrics.command(Command::Rcpt, Duration::from_micros(300));
    metrics.command(Command::Close, Duration::from_micros(10));
    metrics.dns_wait(Command::Rcpt, Duration::from_secs(1));
    let text = metrics.encode();
    for line in [
        r#"tollgate_milter_commands_total{command="rcpt"} 2"#,
        r#"tollgate_milter_commands_total{command="close"} 1"#,
        r#"tollgate_milter_commands_total{command="helo"} 0"#,
        r#"tollgate_milter_callback_duration_seconds_count{command="rcpt"} 2"#,
        r#"tollgate_milter_callback_duration_seconds_bucket{command="rcpt",le="0.00025"} 1"#,
        r#"tollgate_milter_dns_wait_seconds_count{command="mail"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    // rcpt waits for no DNS: not recorded.
    assert!(!text.contains(r#"dns_wait_seconds_count{command="rcpt"}"#));
}

#[test]
fn connections_at_the_limit_are_counted() {
    let metrics = Metrics::new();
    metrics.set_connection_limit(2);
    metrics.connection_opened(1, 2);
    metrics.connection_opened(2, 2);
    metrics.connection_closed();
    let text = metrics.encode();
    for line in [
        "tollgate_milter_connections_total 2",
        "tollgate_milter_connections_open 1",
        "tollgate_milter_connections_max 2",
        "tollgate_milter_connections_at_limit_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}
