//! `testdns`: the test DNS server as a program, for trying `tollgate
//! check` and the milter by hand and for end-to-end tests with real MTAs.
//!
//! ```text
//! testdns --zone zone.yaml [--listen 127.0.0.1:5353] [--latency 20ms+-10ms]
//! ```
//!
//! `--latency` holds back every answer by a fixed time or one drawn from
//! `base ± jitter`, like a resolver on the internet.
//!
//! The zone file is a mapping in the OpenSPF suite's `zonedata` form. The
//! server prints its address and runs until killed.

use std::net::SocketAddr;
use std::process::ExitCode;

use tollgate_testdns::{Latency, TestDns, suite};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut zone_path = None;
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut latency = Latency::NONE;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--zone", Some(path)) => zone_path = Some(path),
            ("--listen", Some(addr)) => match addr.parse() {
                Ok(a) => listen = a,
                Err(_) => return usage(&format!("--listen: {addr:?} is not IP:PORT")),
            },
            ("--latency", Some(text)) => match text.parse() {
                Ok(l) => latency = l,
                Err(e) => return usage(&format!("--latency: {e}")),
            },
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let Some(zone_path) = zone_path else {
        return usage("--zone is required");
    };
    let zone = match std::fs::read_to_string(&zone_path)
        .map_err(|e| e.to_string())
        .and_then(|text| suite::parse_zone(&text).map_err(|e| e.to_string()))
    {
        Ok(zone) => zone,
        Err(e) => {
            eprintln!("testdns: {zone_path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match TestDns::start_on(zone, listen).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("testdns: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    server.set_latency(latency);
    println!("{}", server.addr());
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "testdns: {problem}\nusage: testdns --zone ZONE.yaml [--listen 127.0.0.1:PORT] [--latency 20ms[+-10ms]]"
    );
    ExitCode::from(2)
}
