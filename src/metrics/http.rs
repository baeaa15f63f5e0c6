//! The metrics listener: a minimal HTTP/1.x server on the milter's tokio
//! runtime. `GET /metrics` (or `HEAD`) answers 200 with the Prometheus
//! text format; any other path is 404, another method on `/metrics` 405,
//! a request that is not HTTP 400. One request per connection
//! (`Connection: close`).
//!
//! Anyone who can reach the port is a stranger: a request head is read
//! up to [`MAX_REQUEST`] bytes (431 past that), the whole exchange must
//! finish within [`EXCHANGE_TIMEOUT`], and at most [`MAX_CLIENTS`]
//! exchanges run at once (more are closed at once). The listener runs as a
//! task of its own, so a slow scraper never holds up a milter session.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Metrics;

/// The longest request head (request line and headers) read.
pub(crate) const MAX_REQUEST: usize = 8 * 1024;
/// The time a client has to send its request and read the answer.
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Exchanges served at once.
pub(crate) const MAX_CLIENTS: usize = 8;
/// How long to wait after a failed accept (EMFILE and friends).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `/metrics` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Busy: close at once rather than queue.
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let result = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, &metrics)).await;
            if let Ok(Err(e)) = result {
                tracing::debug!(error = %e, "metrics request failed");
            }
            drop(slot);
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `GET /metrics` (`head`: `HEAD`, no body).
    Metrics { head: bool },
    /// `/metrics` with another method.
    MethodNotAllowed,
    /// Another path.
    NotFound,
    /// Not an HTTP/1.x request line.
    Bad,
}

/// Reads the request line: `METHOD SP TARGET SP HTTP/1.x`.
fn parse(head: &[u8]) -> Request {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Request::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Request::Bad;
    }
    let path = target.split('?').next().unwrap_or(target);
    match (path, method) {
        ("/metrics", "GET") => Request::Metrics { head: false },
        ("/metrics", "HEAD") => Request::Metrics { head: true },
        ("/metrics", _) => Request::MethodNotAllowed,
        _ => Request::NotFound,
    }
}

/// Reads up to the end of the request head; `None` when it is too long
/// or the connection ends first.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_REQUEST {
            return Ok(Some(Vec::new()));
        }
    }
}

async fn exchange(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    let Some(head) = read_head(&mut stream).await? else {
        return Ok(());
    };
    let (status, content_type, body, send_body) = if head.is_empty() {
        (
            "431 Request Header Fields Too Large",
            "text/plain",
            String::new(),
            false,
        )
    } else {
        match parse(&head) {
            Request::Metrics { head } => ("200 OK", Metrics::CONTENT_TYPE, metrics.encode(), !head),
            Request::MethodNotAllowed => (
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                "GET only\n".to_owned(),
                true,
            ),
            Request::NotFound => (
                "404 Not Found",
                "text/plain; charset=utf-8",
                "not found: the metrics are at /metrics\n".to_owned(),
                true,
            ),
            Request::Bad => (
                "400 Bad Request",
                "text/plain; charset=utf-8",
                "bad request\n".to_owned(),
                true,
            ),
        }
    };
    let allow = if status.starts_with("405") {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if send_body {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_sorted_by_path_and_method() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head: false }
        );
        assert_eq!(
            parse(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n"),
            Request::Metrics { head: false }
        );
        assert_eq!(
            parse(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Request::Metrics { head: true }
        );
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::MethodNotAllowed
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(parse(b"GET /metrics/ HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(parse(b"GET /metrics\r\n\r\n"), Request::Bad);
        assert_eq!(parse(b"GET /metrics SPDY/3\r\n\r\n"), Request::Bad);
        assert_eq!(parse(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"), Request::Bad);
        assert_eq!(parse(b"GET  /metrics HTTP/1.1\r\n\r\n"), Request::Bad);
    }
}
