//! The MTA side of the milter protocol, from the host to the container's
//! published port: `indymilter-test` on a runtime of its own, and testdns
//! serving the tests' zone, reached from the containers at the host's
//! address on the podman bridge.

use std::ffi::CString;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use indymilter_test::{EomAction, ProtoOpts, Status, TestConnection};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tollgate_testdns::TestDns;

/// How long the MTA side waits for any one answer.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// testdns serving a zone, in this process, reached by the containers at
/// the host's address on their bridge. testdns listens only on loopback,
/// so a relay on the bridge address (UDP and TCP, the same port) passes
/// each query to it and the answer back: the containers' queries never
/// leave the bridge and the host's loopback.
#[derive(Debug)]
pub struct BridgeDns {
    // Dropped before the runtime that drives it.
    server: TestDns,
    relay: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

/// How long the relay waits for testdns's answer to one UDP query.
const RELAY_WAIT: Duration = Duration::from_secs(5);

impl BridgeDns {
    /// Starts testdns serving `zone_yaml`, and the relay on `ip`.
    pub fn start(zone_yaml: &str, ip: &str) -> BridgeDns {
        let zone = tollgate_testdns::suite::parse_zone(zone_yaml).expect("test zone parses");
        let ip: IpAddr = ip.parse().expect("an address");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let server = runtime
            .block_on(TestDns::start(zone))
            .expect("testdns starts");
        let upstream = server.addr();
        let relay = runtime.block_on(async {
            // The same free port for UDP and TCP.
            for _ in 0..20 {
                let udp = UdpSocket::bind((ip, 0))
                    .await
                    .unwrap_or_else(|e| panic!("bind UDP on {ip}: {e}"));
                let addr = udp.local_addr().expect("local address");
                let Ok(tcp) = TcpListener::bind(addr).await else {
                    continue;
                };
                tokio::spawn(relay_udp(Arc::new(udp), upstream));
                tokio::spawn(relay_tcp(tcp, upstream));
                return addr;
            }
            panic!("no port free for both UDP and TCP on {ip}");
        });
        BridgeDns {
            server,
            relay,
            _runtime: runtime,
        }
    }

    /// Where the containers send their queries.
    pub fn addr(&self) -> SocketAddr {
        self.relay
    }

    /// How many queries testdns has answered.
    pub fn query_count(&self) -> usize {
        self.server.query_count()
    }
}

/// Each datagram to testdns from a socket of its own, its answer back.
async fn relay_udp(socket: Arc<UdpSocket>, upstream: SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    while let Ok((n, client)) = socket.recv_from(&mut buf).await {
        let query = buf[..n].to_vec();
        let socket = Arc::clone(&socket);
        tokio::spawn(async move {
            let Ok(up) = UdpSocket::bind("127.0.0.1:0").await else {
                return;
            };
            if up.send_to(&query, upstream).await.is_err() {
                return;
            }
            let mut answer = vec![0u8; 65_535];
            if let Ok(Ok((m, _))) =
                tokio::time::timeout(RELAY_WAIT, up.recv_from(&mut answer)).await
            {
                let _ = socket.send_to(&answer[..m], client).await;
            }
        });
    }
}

/// Each connection joined to one of its own to testdns.
async fn relay_tcp(listener: TcpListener, upstream: SocketAddr) {
    while let Ok((mut client, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut up) = TcpStream::connect(upstream).await {
                let _ = tokio::time::timeout(
                    RELAY_WAIT,
                    tokio::io::copy_bidirectional(&mut client, &mut up),
                )
                .await;
            }
        });
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
        self.runtime
            .block_on(async { conn.mail(["<probe@example.com>"]).await.is_err() })
    }
}
