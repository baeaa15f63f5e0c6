//! The MTA side of the milter protocol for the bench: where the milter
//! listens (loopback TCP or a Unix socket), a minimal client that speaks
//! protocol version 6 as Postfix does, and one transaction's commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{End, Grey, Plan};

/// Where the milter listens: loopback TCP, or a Unix socket
/// (`TOLLGATE_BENCH_SOCKET=unix`).
#[derive(Clone, Debug)]
pub(crate) enum MilterAddr {
    Inet(SocketAddr),
    Unix(Arc<std::path::Path>),
}

impl std::fmt::Display for MilterAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MilterAddr::Inet(addr) => write!(f, "inet:{addr}"),
            MilterAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// True when the milter is to listen on a Unix socket.
pub(crate) fn unix_socket() -> bool {
    match std::env::var("TOLLGATE_BENCH_SOCKET").as_deref() {
        Ok("unix") => true,
        Ok("inet") | Err(_) => false,
        Ok(other) => panic!("TOLLGATE_BENCH_SOCKET must be inet or unix, not {other:?}"),
    }
}

/// A connection to the milter, over either kind of socket.
pub(crate) trait MilterStream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> MilterStream for T {}

/// Milter protocol constants (libmilter's mfdef.h), protocol version 6.
pub(crate) mod proto {
    pub const VERSION: u32 = 6;
    /// Every action an MTA may offer (SMFIF_ADDHDRS … SMFIF_SETSYMLIST).
    pub const ALL_ACTIONS: u32 = 0x1ff;
    /// Every protocol flag (SMFIP_NOCONNECT … SMFIP_HDR_LEADSPC).
    pub const ALL_OPTS: u32 = 0x1f_ffff;
    pub const NO_HDRS: u32 = 0x20;
    pub const NO_EOH: u32 = 0x40;
    pub const NR_HDR: u32 = 0x80;
    pub const NR_CONN: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_EOH: u32 = 0x4_0000;
}

/// A minimal MTA side of the milter protocol. Like Postfix, it writes a
/// command and the macros that go with it in one write, and waits for the
/// reply only where the negotiated options say one comes.
pub(crate) struct MtaConn {
    stream: tokio::io::BufReader<Box<dyn MilterStream>>,
    out: Vec<u8>,
    opts: u32,
}

/// A milter's final answer to a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Continue,
    Refused(String),
    Other(u8),
}

impl MtaConn {
    pub(crate) async fn open(addr: &MilterAddr) -> std::io::Result<MtaConn> {
        let stream: Box<dyn MilterStream> = match addr {
            MilterAddr::Inet(addr) => {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Box::new(tcp)
            }
            MilterAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        };
        let mut conn = MtaConn {
            stream: tokio::io::BufReader::new(stream),
            out: Vec::with_capacity(1024),
            opts: 0,
        };
        let mut body = Vec::with_capacity(12);
        body.extend(proto::VERSION.to_be_bytes());
        body.extend(proto::ALL_ACTIONS.to_be_bytes());
        body.extend(proto::ALL_OPTS.to_be_bytes());
        conn.packet(b'O', &body);
        conn.flush().await?;
        let (cmd, data) = conn.read().await?;
        if cmd != b'O' || data.len() < 12 {
            return Err(std::io::Error::other(format!(
                "bad negotiation reply {cmd:?}"
            )));
        }
        conn.opts = u32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        static SHOWN: std::sync::Once = std::sync::Once::new();
        SHOWN.call_once(|| {
            let actions = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes"));
            eprintln!(
                "negotiated: actions {actions:#x}, protocol options {:#x}",
                conn.opts
            );
        });
        Ok(conn)
    }

    pub(crate) fn packet(&mut self, cmd: u8, body: &[u8]) {
        let len = u32::try_from(body.len() + 1).expect("small packet");
        self.out.extend(len.to_be_bytes());
        self.out.push(cmd);
        self.out.extend(body);
    }

    /// Queues a macro definition for the command `stage`.
    pub(crate) fn macros(&mut self, stage: u8, pairs: &[(&str, &str)]) {
        let mut body = vec![stage];
        for (k, v) in pairs {
            body.extend(k.as_bytes());
            body.push(0);
            body.extend(v.as_bytes());
            body.push(0);
        }
        self.packet(b'D', &body);
    }

    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.get_mut().write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    pub(crate) async fn read(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let len = self.stream.read_u32().await? as usize;
        if len == 0 || len > 1 << 20 {
            return Err(std::io::Error::other(format!("bad reply length {len}")));
        }
        let mut data = vec![0; len];
        self.stream.read_exact(&mut data).await?;
        let cmd = data.remove(0);
        Ok((cmd, data))
    }

    /// Sends the queued packets and, unless `noreply`, reads the answer;
    /// message changes sent before it (end of message) are collected.
    pub(crate) async fn send(
        &mut self,
        noreply: bool,
        changes: &mut Vec<(u8, Vec<u8>)>,
    ) -> std::io::Result<Answer> {
        self.flush().await?;
        if noreply {
            return Ok(Answer::Continue);
        }
        loop {
            let (cmd, data) = self.read().await?;
            return Ok(match cmd {
                b'c' => Answer::Continue,
                b'y' => Answer::Refused(
                    String::from_utf8_lossy(data.strip_suffix(b"\0").unwrap_or(&data)).into_owned(),
                ),
                b'h' | b'i' | b'm' | b'+' | b'-' | b'e' | b'2' | b'b' | b'q' | b'p' => {
                    changes.push((cmd, data));
                    continue;
                }
                other => Answer::Other(other),
            });
        }
    }

    pub(crate) fn has(&self, flag: u32) -> bool {
        self.opts & flag != 0
    }
}

/// How many of the six headers are sent (`TOLLGATE_BENCH_HEADERS`).
pub(crate) fn header_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::env::var("TOLLGATE_BENCH_HEADERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6)
    })
}

/// NUL-terminated strings, concatenated.
pub(crate) fn cstr(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(*p);
        out.push(0);
    }
    out
}

impl MtaConn {
    /// CONNECT and HELO.
    pub(crate) async fn hello(&mut self, plan: &Plan) -> Result<(), String> {
        let mut changes = Vec::new();
        let ip = plan.ip.to_string();
        self.macros(
            b'C',
            &[
                ("j", "mx.bench.example"),
                ("{daemon_name}", "smtpd"),
                ("{client_addr}", &ip),
            ],
        );
        let mut body = cstr(&[plan.helo.as_bytes()]);
        body.push(b'4');
        body.extend(40_000u16.to_be_bytes());
        body.extend(cstr(&[ip.as_bytes()]));
        self.packet(b'C', &body);
        let noreply = self.has(proto::NR_CONN);
        want("connect", self.send(noreply, &mut changes).await)?;
        self.packet(b'H', &cstr(&[plan.helo.as_bytes()]));
        let noreply = self.has(proto::NR_HELO);
        want("helo", self.send(noreply, &mut changes).await)
    }

    /// One message: MAIL, RCPT and, unless refused, the headers and the
    /// end of message. Gives how it ended and when RCPT was answered.
    pub(crate) async fn message(
        &mut self,
        plan: &Plan,
        t: usize,
        grey: Grey,
    ) -> Result<(End, Instant), String> {
        let mut changes = Vec::new();
        let ip = plan.ip.to_string();
        let queue_id = format!("4Q{t:08X}");
        let sender = format!("<{}>", plan.sender);
        self.macros(b'M', &[("i", &queue_id), ("{mail_addr}", &plan.sender)]);
        self.packet(b'M', &cstr(&[sender.as_bytes()]));
        let noreply = self.has(proto::NR_MAIL);
        want("mail", self.send(noreply, &mut changes).await)?;
        self.macros(
            b'R',
            &[("i", &queue_id), ("{rcpt_addr}", "user@example.org")],
        );
        self.packet(b'R', &cstr(&[b"<user@example.org>"]));
        let noreply = self.has(proto::NR_RCPT);
        let rcpt = self
            .send(noreply, &mut changes)
            .await
            .map_err(|e| format!("rcpt: {e}"))?;
        let answered = Instant::now();
        match (rcpt, plan.refusal) {
            (Answer::Continue, None) if grey != Grey::New => {}
            (Answer::Refused(text), Some(start)) if text.starts_with(start) => {
                // Postfix aborts the message; nothing is awaited.
                self.packet(b'A', &[]);
                return Ok((End::Refused, answered));
            }
            (Answer::Refused(text), None)
                if grey == Grey::New && text.starts_with("451 4.7.1 Greylisted") =>
            {
                self.packet(b'A', &[]);
                return Ok((End::Greylisted, answered));
            }
            (other, expected) => {
                return Err(format!("rcpt: {other:?} (expected refusal: {expected:?})"));
            }
        }
        if !self.has(proto::NO_HDRS) {
            let message_id = format!("<{t}.{queue_id}@{}>", plan.helo);
            let received = format!(
                "from {} ({} [{ip}]) by mx.bench.example (Postfix) with ESMTPS id {queue_id} for <user@example.org>",
                plan.helo, plan.helo
            );
            let from = format!("Newsletter <{}>", plan.sender);
            let headers: [(&str, &str); 6] = [
                ("Received", &received),
                ("From", &from),
                ("To", "<user@example.org>"),
                ("Subject", "Your weekly update"),
                ("Date", "Mon, 23 Nov 2026 07:00:00 +0000"),
                ("Message-ID", &message_id),
            ];
            let noreply = self.has(proto::NR_HDR);
            for (name, value) in headers.into_iter().take(header_count()) {
                self.packet(b'L', &cstr(&[name.as_bytes(), value.as_bytes()]));
                want("header", self.send(noreply, &mut changes).await)?;
            }
        }
        if !self.has(proto::NO_EOH) {
            self.packet(b'N', &[]);
            let noreply = self.has(proto::NR_EOH);
            want("eoh", self.send(noreply, &mut changes).await)?;
        }
        self.macros(b'E', &[("i", &queue_id)]);
        self.packet(b'E', &[]);
        want("eom", self.send(false, &mut changes).await)?;
        // Received-SPF and Authentication-Results on top; on a first pass
        // through greylisting also X-Greylist (inserted first, so it ends
        // below the other two).
        let expected = if grey == Grey::FirstPass { 3 } else { 2 };
        let on_top = changes
            .iter()
            .filter(|(cmd, data)| *cmd == b'i' && data.starts_with(&[0, 0, 0, 0]))
            .count();
        let greylist_header = changes
            .first()
            .is_some_and(|(cmd, data)| *cmd == b'i' && data.get(4..15) == Some(b"X-Greylist\0"));
        if on_top != expected
            || changes.len() != expected
            || greylist_header != (grey == Grey::FirstPass)
        {
            return Err(format!(
                "eom: expected {expected} headers inserted at 0 (X-Greylist: {}), got {changes:?}",
                grey == Grey::FirstPass
            ));
        }
        Ok((End::Delivered, answered))
    }
}

/// `Continue`, or an error naming the step.
pub(crate) fn want(what: &str, answer: std::io::Result<Answer>) -> Result<(), String> {
    match answer {
        Ok(Answer::Continue) => Ok(()),
        Ok(other) => Err(format!("{what}: {other:?}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}
