//! The MTA side of the milter protocol, from the host to the container's
//! published port: `indymilter-test` on a runtime of its own, and testdns
//! serving the tests' zone on the host's address on the podman bridge
//! (where the container's tollgate sends its queries).

use std::ffi::CString;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use indymilter_test::{EomAction, ProtoOpts, Status, TestConnection};
use tollgate_testdns::TestDns;

/// How long the MTA side waits for any one answer.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// testdns serving a zone on `ip` (a free port), in this process.
#[derive(Debug)]
pub struct BridgeDns {
    // Dropped before the runtime that drives it.
    server: TestDns,
    _runtime: tokio::runtime::Runtime,
}

impl BridgeDns {
    /// Starts serving `zone_yaml` on `ip`, UDP and TCP.
    pub fn start(zone_yaml: &str, ip: &str) -> BridgeDns {
        let zone = tollgate_testdns::suite::parse_zone(zone_yaml).expect("test zone parses");
        let ip: IpAddr = ip.parse().expect("an address");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let server = runtime
            .block_on(TestDns::start_on(zone, SocketAddr::new(ip, 0)))
            .unwrap_or_else(|e| panic!("testdns on {ip}: {e}"));
        BridgeDns {
            server,
            _runtime: runtime,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// How many queries it has answered.
    pub fn query_count(&self) -> usize {
        self.server.query_count()
    }
}

/// What became of one message.
#[derive(Debug)]
pub enum Outcome {
    /// Refused at MAIL or RCPT, with the reply text (`550 5.7.23 …`).
    Refused(String),
    /// Accepted; the headers tollgate inserted, as (name, value).
    Accepted(Vec<(String, String)>),
}

/// One milter connection, driven step by step.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    conn: Option<TestConnection>,
}

impl Session {
    /// Connects to the milter at `addr`, sends CONNECT for client `ip`
    /// and HELO `helo`.
    pub fn open(addr: SocketAddr, ip: &str, helo: &str) -> Session {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let conn = runtime.block_on(async {
            let mut conn = TestConnection::configure()
                .read_timeout(READ_TIMEOUT)
                .write_timeout(READ_TIMEOUT)
                .open_tcp(addr)
                .await
                .unwrap_or_else(|e| panic!("the milter at {addr} accepts a connection: {e}"));
            let ip: IpAddr = ip.parse().expect("an IP address");
            let status = conn
                .connect(format!("[{ip}]"), (ip, 40_000))
                .await
                .expect("the milter answers CONNECT");
            assert!(
                matches!(status, Status::Continue | Status::Noreply),
                "CONNECT: {status:?}"
            );
            let status = conn.helo(helo).await.expect("the milter answers HELO");
            assert_eq!(status, Status::Continue, "HELO {helo}");
            conn
        });
        Session {
            runtime,
            conn: Some(conn),
        }
    }

    /// One message from `sender` to `rcpt`, to the end.
    pub fn message(&mut self, sender: &str, rcpt: &str) -> Outcome {
        let conn = self.conn.as_mut().expect("session open");
        self.runtime.block_on(async {
            for (step, status) in [
                ("MAIL", conn.mail([sender]).await.expect("MAIL answered")),
                ("RCPT", conn.rcpt([rcpt]).await.expect("RCPT answered")),
            ] {
                match status {
                    Status::Continue => {}
                    Status::Reject { message } | Status::Tempfail { message } => {
                        let text = message
                            .as_ref()
                            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                            .unwrap_or_else(|| format!("{step}: refused without a text"));
                        conn.abort().await.expect("ABORT");
                        return Outcome::Refused(text);
                    }
                    other => panic!("{step} {sender} -> {rcpt}: {other:?}"),
                }
            }
            let opts = conn.negotiated_opts();
            if !opts.contains(ProtoOpts::NO_HEADER) {
                let status = conn
                    .header("Subject", "container test")
                    .await
                    .expect("header");
                assert!(matches!(status, Status::Continue | Status::Noreply));
            }
            if !opts.contains(ProtoOpts::NO_EOH) {
                let status = conn.eoh().await.expect("eoh");
                assert!(matches!(status, Status::Continue | Status::Noreply));
            }
            let (actions, status) = conn.eom().await.expect("the milter answers end of message");
            assert!(
                matches!(status, Status::Continue | Status::Accept),
                "end of message: {status:?}"
            );
            let lossy = |s: &CString| String::from_utf8_lossy(s.as_bytes()).into_owned();
            let headers = actions
                .actions
                .iter()
                .filter_map(|a| match a {
                    EomAction::InsertHeader { name, value, .. }
                    | EomAction::AddHeader { name, value } => Some((lossy(name), lossy(value))),
                    _ => None,
                })
                .collect();
            Outcome::Accepted(headers)
        })
    }

    /// Closes the connection as an MTA does (QUIT).
    pub fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.runtime.block_on(conn.close());
        }
    }

    /// Whether the milter has closed the connection: the next command
    /// gets no answer.
    pub fn closed_by_milter(&mut self) -> bool {
        let conn = self.conn.as_mut().expect("session open");
        self.runtime.block_on(async { conn.mail(["<probe@example.com>"]).await.is_err() })
    }
}
