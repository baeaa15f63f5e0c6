//! A small SMTP client over a blocking `TcpStream`, enough to drive an MTA
//! through EHLO, XCLIENT, MAIL, RCPT and DATA and see every reply exactly.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One SMTP reply: the code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// The first line as the server sent it: `550 5.7.23 ...`.
    pub fn first(&self) -> String {
        format!(
            "{} {}",
            self.code,
            self.lines.first().map_or("", String::as_str)
        )
    }

    /// Whether the code is 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{} {line}", self.code)?;
        }
        Ok(())
    }
}

/// A client connection with a transcript, printed when the test fails.
#[derive(Debug)]
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Every line sent (`C: `) and received (`S: `).
    pub transcript: Vec<String>,
}

impl Smtp {
    /// Connects to 127.0.0.1:`port` and reads the greeting, which must be 220.
    pub fn connect(port: u16) -> Smtp {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to SMTP at 127.0.0.1:{port}: {e}"));
        stream
            .set_read_timeout(Some(super::WAIT))
            .expect("set timeout");
        stream
            .set_write_timeout(Some(super::WAIT))
            .expect("set timeout");
        let writer = stream.try_clone().expect("clone stream");
        let mut smtp = Smtp {
            reader: BufReader::new(stream),
            writer,
            transcript: Vec::new(),
        };
        let greeting = smtp.read_reply();
        assert_eq!(greeting.code, 220, "greeting: {greeting}\n{}", smtp.show());
        smtp
    }

    /// Tries to connect and read a 220 greeting, once, within `timeout`.
    pub fn probe(port: u16, timeout: Duration) -> bool {
        let Ok(stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let mut line = String::new();
        let ok = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("220");
        let _ = (&stream).write_all(b"QUIT\r\n");
        ok
    }

    /// The transcript, one line each.
    pub fn show(&self) -> String {
        self.transcript.join("\n")
    }

    /// Reads one (possibly multi-line) reply.
    pub fn read_reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("server closed the connection\n{}", self.show()),
                Ok(_) => {}
                Err(e) => panic!("reading a reply: {e}\n{}", self.show()),
            }
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            self.transcript.push(format!("S: {line}"));
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("malformed reply line {line:?}\n{}", self.show()));
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if !more {
                return Reply { code, lines };
            }
        }
    }

    /// Sends one command line and reads the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.transcript.push(format!("C: {line}"));
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {line:?}: {e}\n{}", self.show()));
        self.read_reply()
    }

    /// Sends a command that must succeed with `code`.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "{line} got {reply}\n{}", self.show());
        reply
    }

    /// EHLO `name`, which must be accepted.
    pub fn ehlo(&mut self, name: &str) -> Reply {
        self.expect(&format!("EHLO {name}"), 250)
    }

    /// Postfix XCLIENT: pretend to be `addr` named `name` (or unknown) that
    /// said HELO `helo`; then EHLO again as `helo` (the session restarts).
    pub fn xclient(&mut self, addr: &str, name: Option<&str>, helo: &str) {
        let name = name.unwrap_or("[UNAVAILABLE]");
        self.expect(&format!("XCLIENT ADDR={addr} NAME={name} HELO={helo}"), 220);
        self.ehlo(helo);
    }

    /// MAIL FROM:<sender>.
    pub fn mail(&mut self, sender: &str) -> Reply {
        self.cmd(&format!("MAIL FROM:<{sender}>"))
    }

    /// RCPT TO:<recipient>.
    pub fn rcpt(&mut self, recipient: &str) -> Reply {
        self.cmd(&format!("RCPT TO:<{recipient}>"))
    }

    /// DATA with `message` (LF or CRLF line ends; dot-stuffed here); returns
    /// the reply after the final dot.
    pub fn data(&mut self, message: &str) -> Reply {
        self.expect("DATA", 354);
        let mut wire = String::new();
        for line in message.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with('.') {
                wire.push('.');
            }
            wire.push_str(line);
            wire.push_str("\r\n");
        }
        wire.push_str(".\r\n");
        self.transcript
            .push(format!("C: <{} bytes of message>", wire.len()));
        self.writer
            .write_all(wire.as_bytes())
            .unwrap_or_else(|e| panic!("sending the message: {e}\n{}", self.show()));
        self.read_reply()
    }

    /// QUIT (the reply is not checked: the server may have closed already).
    pub fn quit(mut self) {
        self.transcript.push("C: QUIT".to_owned());
        let _ = self.writer.write_all(b"QUIT\r\n");
        let mut line = String::new();
        let _ = self.reader.read_line(&mut line);
    }
}
