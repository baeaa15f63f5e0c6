//! A recording milter: speaks just enough of the milter protocol (version
//! 6) to let every message through, and records each command with the
//! macros the MTA sent for it. It shows which macros Postfix and Sendmail
//! really send with the documented configuration, independent of
//! tollgate's own code.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One command received from the MTA.
#[derive(Debug, Clone)]
pub struct Event {
    /// Which milter connection (0, 1, ...) it came on.
    pub connection: usize,
    /// The command: `C` connect, `H` helo, `M` mail, `R` rcpt, `T` data,
    /// `L` header, `N` end of headers, `B` body, `E` end of message, ...
    pub command: char,
    /// The NUL-separated arguments, lossily decoded.
    pub args: Vec<String>,
    /// The macros sent for this command (`SMFIC_MACRO` just before it).
    pub macros: BTreeMap<String, String>,
}

/// The recorder, listening on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct Recorder {
    /// Where it listens.
    pub addr: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts listening on a free port of 127.0.0.1.
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let events = Arc::clone(&events);
            let stop = Arc::clone(&stop);
            let counter = AtomicUsize::new(0);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            let events = Arc::clone(&events);
                            let stop = Arc::clone(&stop);
                            std::thread::spawn(move || serve(stream, n, &events, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Recorder {
            addr,
            events,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("events lock").clone()
    }

    /// The first recorded command `command` of `connection`.
    pub fn first(&self, connection: usize, command: char) -> Option<Event> {
        self.events()
            .into_iter()
            .find(|e| e.connection == connection && e.command == command)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn read_packet(stream: &mut TcpStream, stop: &AtomicBool) -> Option<(u8, Vec<u8>)> {
    let mut len = [0u8; 4];
    loop {
        match stream.read_exact(&mut len) {
            Ok(()) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) && !stop.load(Ordering::Relaxed) => {}
            Err(_) => return None,
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > 1 << 20 {
        return None;
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    let data = body.split_off(1);
    Some((body[0], data))
}

fn write_packet(stream: &mut TcpStream, command: u8, data: &[u8]) -> bool {
    let len = u32::try_from(data.len() + 1).expect("small packet");
    let mut packet = len.to_be_bytes().to_vec();
    packet.push(command);
    packet.extend_from_slice(data);
    stream.write_all(&packet).is_ok()
}

fn split_nul(data: &[u8]) -> Vec<String> {
    let mut parts: Vec<String> = data
        .split(|&b| b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if data.last() == Some(&0) {
        parts.pop();
    }
    parts
}

fn serve(mut stream: TcpStream, connection: usize, events: &Mutex<Vec<Event>>, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut pending: BTreeMap<u8, BTreeMap<String, String>> = BTreeMap::new();
    while let Some((command, data)) = read_packet(&mut stream, stop) {
        match command {
            b'O' => {
                // Version 6, no actions, no protocol flags: send everything,
                // and expect a reply to every command that takes one.
                let mut reply = Vec::new();
                reply.extend_from_slice(&6u32.to_be_bytes());
                reply.extend_from_slice(&0u32.to_be_bytes());
                reply.extend_from_slice(&0u32.to_be_bytes());
                if !write_packet(&mut stream, b'O', &reply) {
                    return;
                }
            }
            b'D' => {
                let Some((&for_command, rest)) = data.split_first() else {
                    continue;
                };
                let parts = split_nul(rest);
                let mut macros = BTreeMap::new();
                for pair in parts.chunks(2) {
                    if !pair[0].is_empty() {
                        macros.insert(pair[0].clone(), pair.get(1).cloned().unwrap_or_default());
                    }
                }
                pending.insert(for_command, macros);
            }
            b'A' => {
                pending.clear();
            }
            b'Q' => return,
            b'K' => pending.clear(),
            _ => {
                let args = if command == b'C' {
                    connect_args(&data)
                } else {
                    split_nul(&data)
                };
                events.lock().expect("events lock").push(Event {
                    connection,
                    command: command as char,
                    args,
                    macros: pending.remove(&command).unwrap_or_default(),
                });
                // SMFIR_CONTINUE (at end of message: accept as is).
                if !write_packet(&mut stream, b'c', &[]) {
                    return;
                }
            }
        }
    }
}

/// SMFIC_CONNECT: hostname NUL, family, port (2 bytes), address NUL.
fn connect_args(data: &[u8]) -> Vec<String> {
    let Some(nul) = data.iter().position(|&b| b == 0) else {
        return vec![String::from_utf8_lossy(data).into_owned()];
    };
    let host = String::from_utf8_lossy(&data[..nul]).into_owned();
    let rest = &data[nul + 1..];
    let Some((&family, rest)) = rest.split_first() else {
        return vec![host];
    };
    let mut out = vec![host, (family as char).to_string()];
    if rest.len() >= 2 {
        out.push(u16::from_be_bytes([rest[0], rest[1]]).to_string());
        out.extend(split_nul(&rest[2..]));
    }
    out
}
