//! The transports of the hickory adapter: hickory's tokio UDP and TCP,
//! with every answer that holds a record with RDLENGTH 0 repaired before
//! hickory decodes it (hickory refuses such a message as a whole).
//! Part of the `hickory` module, the one place that names hickory types.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_proto::op::{Edns, Header, Message, Query};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_resolver::net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_resolver::net::runtime::{
    DnsUdpSocket, RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hickory's tokio runtime, with transports that repair answers holding
/// empty records before hickory decodes them ([`repair_empty_records`]).
#[derive(Clone, Default)]
pub(super) struct Lenient(TokioRuntimeProvider);

impl RuntimeProvider for Lenient {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = LenientUdp;
    type Tcp = AsyncIoTokioAsStd<LenientTcp>;

    fn create_handle(&self) -> Self::Handle {
        self.0.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<Self::Tcp>>>> {
        let connect = self.0.connect_tcp(server_addr, bind_addr, timeout);
        Box::pin(async move {
            let stream = connect.await?.0;
            Ok(AsyncIoTokioAsStd(LenientTcp {
                stream,
                pending: Vec::new(),
                ready: Vec::new(),
                eof: false,
            }))
        })
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<Self::Udp>>>> {
        let bind = self.0.bind_udp(local_addr, server_addr);
        Box::pin(async move { bind.await.map(LenientUdp) })
    }
}

/// A UDP socket whose datagrams are repaired as they are received.
pub(super) struct LenientUdp(tokio::net::UdpSocket);

impl DnsUdpSocket for LenientUdp {
    type Time = TokioTime;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let (len, from) = match DnsUdpSocket::poll_recv_from(&self.0, cx, buf) {
            Poll::Ready(Ok(received)) => received,
            other => return other,
        };
        match repair_empty_records(&buf[..len]) {
            // The repair can only grow a datagram by a byte per empty TXT
            // record; one that no longer fits is left for hickory to refuse.
            Some(fixed) if fixed.len() <= buf.len() => {
                buf[..fixed.len()].copy_from_slice(&fixed);
                Poll::Ready(Ok((fixed.len(), from)))
            }
            _ => Poll::Ready(Ok((len, from))),
        }
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        DnsUdpSocket::poll_send_to(&self.0, cx, buf, target)
    }
}

/// A TCP stream whose length-framed messages (RFC 1035 §4.2.2) are
/// repaired as they are read: bytes are held until a whole message has
/// arrived (at most 65,537 bytes), then handed on, repaired if need be.
pub(super) struct LenientTcp {
    stream: tokio::net::TcpStream,
    /// Bytes read that do not yet make a whole message.
    pending: Vec<u8>,
    /// Whole messages, framed, not yet handed on.
    ready: Vec<u8>,
    eof: bool,
}

impl LenientTcp {
    /// Moves the whole messages of `pending` to `ready`, repairing each.
    fn frame(&mut self) {
        loop {
            let Some(&[high, low]) = self.pending.first_chunk::<2>() else {
                return;
            };
            let end = 2 + usize::from(u16::from_be_bytes([high, low]));
            if self.pending.len() < end {
                return;
            }
            let message = &self.pending[2..end];
            match repair_empty_records(message).filter(|m| u16::try_from(m.len()).is_ok()) {
                Some(fixed) => {
                    self.ready
                        .extend_from_slice(&(fixed.len() as u16).to_be_bytes());
                    self.ready.extend_from_slice(&fixed);
                }
                None => self.ready.extend_from_slice(&self.pending[..end]),
            }
            self.pending.drain(..end);
        }
    }
}

impl AsyncRead for LenientTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.ready.is_empty() && !this.eof {
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // The end: what is left of a message goes on as it is.
                    this.eof = true;
                    this.ready.append(&mut this.pending);
                }
                Poll::Ready(Ok(())) => {
                    this.pending.extend_from_slice(read.filled());
                    this.frame();
                }
                other => return other,
            }
        }
        let n = this.ready.len().min(buf.remaining());
        buf.put_slice(&this.ready[..n]);
        this.ready.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for LenientTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A DNS message without its empty records, or `None` when it has none
/// (or cannot be read at all, which is left for hickory to report).
///
/// hickory refuses a whole message that holds a record with RDLENGTH 0
/// (outside UPDATE, which uses it for prerequisites). An empty TXT record
/// means a TXT record without text, so it becomes one empty
/// character-string, RFC 1035 §3.3.14's smallest TXT RDATA; an empty
/// record of any other type has no meaning and is dropped. EDNS is kept.
fn repair_empty_records(message: &[u8]) -> Option<Vec<u8>> {
    if !has_empty_record(message) {
        return None;
    }
    let mut decoder = BinDecoder::new(message);
    let Header {
        mut metadata,
        counts,
    } = Header::read(&mut decoder).ok()?;
    let mut repaired = Message::new(metadata.id, metadata.message_type, metadata.op_code);
    for _ in 0..counts.queries {
        repaired.queries.push(Query::read(&mut decoder).ok()?);
    }
    let sections = [counts.answers, counts.authorities, counts.additionals];
    for (section, count) in sections.into_iter().enumerate() {
        for _ in 0..count {
            let mut record = Record::read(&mut decoder).ok()?;
            match record.data {
                RData::Update0(RecordType::OPT) | RData::OPT(_) if section == 2 => {
                    let edns = Edns::from(&record);
                    metadata.merge_response_code(edns.rcode_high());
                    repaired.edns = Some(edns);
                    continue;
                }
                RData::Update0(RecordType::TXT) => {
                    record.data = RData::TXT(TXT::from_bytes(vec![&b""[..]]));
                }
                RData::Update0(_) => continue,
                _ => {}
            }
            match section {
                0 => repaired.answers.push(record),
                1 => repaired.authorities.push(record),
                _ => repaired.additionals.push(record),
            }
        }
    }
    repaired.metadata = metadata;
    repaired.to_vec().ok()
}

/// Whether a message holds a record with RDLENGTH 0 other than OPT: a
/// quick walk over the raw sections, so that answers without one (nearly
/// all) are handed on untouched and decoded once.
fn has_empty_record(message: &[u8]) -> bool {
    let word = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([
            *message.get(at)?,
            *message.get(at + 1)?,
        ]))
    };
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *message.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l if l & 0xc0 == 0 => at += 1 + usize::from(l),
                _ => return None,
            }
        }
    };
    let walk = || -> Option<bool> {
        let questions = word(4)?;
        let records = [word(6)?, word(8)?, word(10)?]
            .map(usize::from)
            .iter()
            .sum::<usize>();
        let mut at = 12;
        for _ in 0..questions {
            at = skip_name(at)? + 4;
        }
        for _ in 0..records {
            at = skip_name(at)?;
            let (rtype, rdlength) = (word(at)?, word(at + 8)?);
            if rdlength == 0 && rtype != u16::from(RecordType::OPT) {
                return Some(true);
            }
            at += 10 + usize::from(rdlength);
        }
        Some(false)
    };
    walk().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response with an empty TXT record between two others, and EDNS.
    fn response_with_empty_txt() -> Vec<u8> {
        let name = hickory_proto::rr::Name::from_ascii("null.example.com.").unwrap();
        let mut msg = Message::response(7, hickory_proto::op::OpCode::Query);
        msg.queries
            .push(Query::query(name.clone(), RecordType::TXT));
        for text in ["v=spf1 -all", "", "other"] {
            let txt = if text.is_empty() {
                TXT::from_bytes(Vec::new())
            } else {
                TXT::new(vec![text.to_owned()])
            };
            msg.answers
                .push(Record::from_rdata(name.clone(), 300, RData::TXT(txt)));
        }
        msg.set_edns(Edns::new());
        msg.to_vec().unwrap()
    }

    #[test]
    fn empty_records_are_repaired_and_the_rest_kept() {
        let raw = response_with_empty_txt();
        assert!(Message::from_vec(&raw).is_err(), "hickory refuses it");
        assert!(has_empty_record(&raw));
        let fixed = Message::from_vec(&repair_empty_records(&raw).unwrap()).unwrap();
        let texts: Vec<_> = fixed
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::TXT(txt) => String::from_utf8_lossy(&txt.txt_data.concat()).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["v=spf1 -all", "", "other"]);
        assert_eq!(fixed.metadata.id, 7);
        assert!(fixed.edns.is_some());
        // A message without empty records is left alone.
        let fine = fixed.to_vec().unwrap();
        assert!(!has_empty_record(&fine));
        assert_eq!(repair_empty_records(&fine), None);
    }

    #[test]
    fn repair_never_panics_on_hostile_bytes() {
        let raw = response_with_empty_txt();
        for len in 0..raw.len() {
            let _ = repair_empty_records(&raw[..len]);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut packet = raw.clone();
            for _ in 0..(state % 6) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % packet.len();
                packet[at] = (state >> 32) as u8;
            }
            let _ = repair_empty_records(&packet);
        }
    }
}
