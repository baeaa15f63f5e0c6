//! The server: UDP and TCP sockets on 127.0.0.1, a query log, and the
//! shared state tests change while it runs.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tollgate_dns::memory::{RecordType, Zone};
use tollgate_dns::normalize_name;

use crate::answer::{Overrides, UDP_LIMIT, respond, zone_type};
use crate::latency::Latency;

/// How many times [`TestDns::start`] tries to get one port for both UDP and TCP.
const BIND_ATTEMPTS: usize = 20;

/// The transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (2-byte length framing).
    Tcp,
}

/// A response code the server can be told to give for a name, whatever
/// the zone says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rcode {
    /// FORMERR (1).
    FormErr,
    /// SERVFAIL (2).
    ServFail,
    /// NXDOMAIN (3), without an SOA record.
    NxDomain,
    /// NOTIMP (4).
    NotImp,
    /// REFUSED (5).
    Refused,
}

impl Rcode {
    /// The numeric RCODE.
    pub fn code(self) -> u8 {
        match self {
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
        }
    }
}

/// One query the server received (answered or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedQuery {
    /// The query name, in lower case without trailing dot.
    pub name: String,
    /// The QTYPE as a number (1 A, 28 AAAA, 15 MX, 16 TXT, 12 PTR, 5 CNAME, 99 SPF…).
    pub qtype: u16,
    /// The transport it came over.
    pub transport: Transport,
}

impl LoggedQuery {
    /// The QTYPE as a zone record type, if the zone knows it.
    pub fn record_type(&self) -> Option<RecordType> {
        zone_type(self.qtype)
    }
}

#[derive(Debug, Default)]
struct Shared {
    zone: RwLock<Arc<Zone>>,
    overrides: RwLock<Overrides>,
    latency: RwLock<Latency>,
    log: Mutex<Vec<LoggedQuery>>,
}

/// An answer and how long to hold it back.
struct Reply {
    bytes: Vec<u8>,
    delay: Duration,
}

impl Shared {
    fn handle(&self, packet: &[u8], transport: Transport) -> Option<Reply> {
        let zone = Arc::clone(&read(&self.zone));
        let limit = match transport {
            Transport::Udp => UDP_LIMIT,
            Transport::Tcp => usize::from(u16::MAX),
        };
        let overrides = read(&self.overrides);
        let outcome = respond(packet, &zone, &overrides, limit);
        let delay = outcome
            .question
            .as_ref()
            .and_then(|(name, _)| overrides.delays.get(name).copied())
            .unwrap_or_else(|| read(&self.latency).draw());
        drop(overrides);
        if let Some((name, qtype)) = outcome.question {
            tracing::trace!(%name, qtype, ?transport, answered = outcome.reply.is_some(), "query");
            lock(&self.log).push(LoggedQuery {
                name,
                qtype,
                transport,
            });
        }
        outcome.reply.map(|bytes| Reply { bytes, delay })
    }
}

// A panic while a lock is held cannot leave these values half-updated.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A DNS server on 127.0.0.1 (UDP and TCP on one port) answering from a
/// [`Zone`]. Dropping it stops the server.
#[derive(Debug)]
pub struct TestDns {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl TestDns {
    /// Starts a server for `zone` on 127.0.0.1, on a free port shared by
    /// UDP and TCP. Must be called within a tokio runtime, which runs the
    /// server's tasks.
    pub async fn start(zone: Zone) -> io::Result<TestDns> {
        let (udp, tcp) = bind_pair().await?;
        Self::serve(zone, udp, tcp)
    }

    /// Starts a server for `zone` on a given loopback address (UDP and TCP),
    /// for the standalone `testdns` binary and tests that need a fixed port.
    pub async fn start_on(zone: Zone, addr: SocketAddr) -> io::Result<TestDns> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "testdns only listens on loopback addresses",
            ));
        }
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(udp.local_addr()?).await?;
        Self::serve(zone, udp, tcp)
    }

    fn serve(zone: Zone, udp: UdpSocket, tcp: TcpListener) -> io::Result<TestDns> {
        let addr = udp.local_addr()?;
        let shared = Arc::new(Shared {
            zone: RwLock::new(Arc::new(zone)),
            ..Shared::default()
        });
        let tasks = vec![
            tokio::spawn(serve_udp(udp, Arc::clone(&shared))),
            tokio::spawn(serve_tcp(tcp, Arc::clone(&shared))),
        ];
        Ok(TestDns {
            addr,
            shared,
            tasks,
        })
    }

    /// The address (127.0.0.1 and the port) for both UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the zone; queries from now on are answered from the new one.
    pub fn set_zone(&self, zone: Zone) {
        *write(&self.shared.zone) = Arc::new(zone);
    }

    /// Makes every query for `name` (any type) get `rcode` with no records.
    pub fn set_rcode(&self, name: &str, rcode: Rcode) {
        write(&self.shared.overrides)
            .rcodes
            .insert(normalize_name(name), rcode);
    }

    /// Undoes [`set_rcode`](Self::set_rcode) for `name`.
    pub fn clear_rcode(&self, name: &str) {
        write(&self.shared.overrides)
            .rcodes
            .remove(&normalize_name(name));
    }

    /// Makes every answer for `name` (any type) truncated, TC set and no
    /// records, over TCP as well as UDP: what a server sends when even a
    /// TCP answer does not fit, and what a broken one sends anyway.
    pub fn set_truncated(&self, name: &str, truncated: bool) {
        let name = normalize_name(name);
        let mut overrides = write(&self.shared.overrides);
        if truncated {
            overrides.truncated.insert(name);
        } else {
            overrides.truncated.remove(&name);
        }
    }

    /// Holds back every answer by `latency` (each drawing its own delay
    /// when it has jitter), from the next query on. Each answer waits in
    /// its own task: concurrent queries, over UDP or pipelined on one TCP
    /// connection, each wait their own delay. [`Latency::NONE`] undoes it.
    pub fn set_latency(&self, latency: Latency) {
        *write(&self.shared.latency) = latency;
    }

    /// Holds back every answer for `name` (any type) by exactly `delay`,
    /// instead of the server's latency; `None` undoes it. A delay longer
    /// than the client's patience makes a slow, not a silent, server.
    pub fn set_delay(&self, name: &str, delay: Option<Duration>) {
        let name = normalize_name(name);
        let mut overrides = write(&self.shared.overrides);
        match delay {
            Some(delay) => overrides.delays.insert(name, delay),
            None => overrides.delays.remove(&name),
        };
    }

    /// Every query received since the start or the last
    /// [`reset_counts`](Self::reset_counts), in arrival order, including
    /// those deliberately left unanswered.
    pub fn queries(&self) -> Vec<LoggedQuery> {
        lock(&self.shared.log).clone()
    }

    /// How many queries were received (see [`queries`](Self::queries)).
    pub fn query_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// How many queries were received for `name` (any case, trailing dot
    /// optional) of zone type `rtype`.
    pub fn query_count_for(&self, name: &str, rtype: RecordType) -> usize {
        let name = normalize_name(name);
        lock(&self.shared.log)
            .iter()
            .filter(|q| q.name == name && q.record_type() == Some(rtype))
            .count()
    }

    /// Forgets the queries received so far.
    pub fn reset_counts(&self) {
        lock(&self.shared.log).clear();
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP")))
}

async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let socket = Arc::new(socket);
    // Answers being held back; dropping the set (when this task is
    // aborted) drops them.
    let mut delayed = JoinSet::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        while delayed.try_join_next().is_some() {}
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // ICMP errors from earlier sends surface here on some systems.
            Err(e) => {
                tracing::trace!(error = %e, "udp receive failed");
                continue;
            }
        };
        let Some(reply) = shared.handle(&buf[..len], Transport::Udp) else {
            continue;
        };
        if reply.delay.is_zero() {
            send_udp(&socket, &reply.bytes, peer).await;
        } else {
            let socket = Arc::clone(&socket);
            delayed.spawn(async move {
                tokio::time::sleep(reply.delay).await;
                send_udp(&socket, &reply.bytes, peer).await;
            });
        }
    }
}

async fn send_udp(socket: &UdpSocket, reply: &[u8], peer: SocketAddr) {
    if let Err(e) = socket.send_to(reply, peer).await {
        tracing::trace!(error = %e, %peer, "udp send failed");
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) aborts the connections.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(serve_connection(stream, Arc::clone(&shared)));
            }
            Err(e) => {
                tracing::trace!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Answers length-framed queries on one connection until the client
/// closes it or sends something that cannot be a message. Undelayed
/// answers go out in order; delayed ones each wait in their own task, so
/// pipelined queries are not held back by one another.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    let mut delayed = JoinSet::new();
    let mut buf = Vec::new();
    loop {
        while delayed.try_join_next().is_some() {}
        let Ok(len) = reader.read_u16().await else {
            break;
        };
        if len == 0 {
            break;
        }
        buf.resize(usize::from(len), 0);
        if reader.read_exact(&mut buf).await.is_err() {
            break;
        }
        let Some(reply) = shared.handle(&buf, Transport::Tcp) else {
            continue;
        };
        if reply.delay.is_zero() {
            if !send_tcp(&writer, &reply.bytes).await {
                break;
            }
        } else {
            let writer = Arc::clone(&writer);
            delayed.spawn(async move {
                tokio::time::sleep(reply.delay).await;
                send_tcp(&writer, &reply.bytes).await;
            });
        }
    }
    // What is still held back goes out before the connection closes.
    while delayed.join_next().await.is_some() {}
}

/// Writes one framed answer; false when the connection is gone.
async fn send_tcp(writer: &tokio::sync::Mutex<OwnedWriteHalf>, reply: &[u8]) -> bool {
    let Ok(reply_len) = u16::try_from(reply.len()) else {
        return true;
    };
    let mut framed = Vec::with_capacity(reply.len() + 2);
    framed.extend_from_slice(&reply_len.to_be_bytes());
    framed.extend_from_slice(reply);
    writer.lock().await.write_all(&framed).await.is_ok()
}
