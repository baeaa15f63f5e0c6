//! The milter's socket: a unix socket with its mode, a stale socket
//! replaced, the socket removed on exit, a bad group refused before any
//! socket file exists; the connection limit, and idle connections closed
//! after `connection_timeout` so that they give their slot back.

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tollgate::cli::health::probe;
use tollgate::config::{Config, Listen};
use tollgate::milter::{Milter, ServeError};

fn config(text: &str, dir: &Path) -> Config {
    // DNS is never asked in these tests; a loopback nameserver keeps it local.
    let text = format!(
        "{text}\ndns:\n  nameservers: [\"127.0.0.1:9\"]\n  timeout: 200ms\n  attempts: 1\n"
    );
    Config::parse(&text, &dir.join("milter.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn unix_socket_replaces_a_stale_one_gets_its_mode_and_is_removed_on_exit() {
    let tmp = TempDir::new("socket-unix");
    let dir = tmp.path();
    let path = dir.join("tollgate.sock");
    // A stale socket left by a crash: bound, then its listener dropped.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket()
    );

    let config = config(
        &format!("listen: unix:{}\nsocket_mode: \"0640\"", path.display()),
        dir,
    );
    let milter = Milter::bind(config)
        .await
        .expect("binds over the stale socket");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(milter.run(async {
        let _ = stopped.await;
    }));
    probe(&Listen::Unix(path.clone()))
        .await
        .expect("the milter answers on the unix socket");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops")
        .unwrap()
        .expect("clean exit");
    assert!(!path.exists(), "the socket is removed on exit");
}

#[tokio::test]
async fn unix_socket_path_that_is_not_a_socket_is_left_alone() {
    let tmp = TempDir::new("socket-notsock");
    let dir = tmp.path();
    let path = dir.join("important.txt");
    std::fs::write(&path, "data").unwrap();
    let config = config(&format!("listen: unix:{}", path.display()), dir);
    let err = Milter::bind(config).await.unwrap_err().to_string();
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

/// The MTA's option negotiation packet (protocol version 6, every action
/// and protocol option offered).
fn optneg() -> Vec<u8> {
    let mut packet = 13u32.to_be_bytes().to_vec();
    packet.push(b'O');
    packet.extend(6u32.to_be_bytes());
    packet.extend(0x1ffu32.to_be_bytes());
    packet.extend(0x1f_ffffu32.to_be_bytes());
    packet
}

/// Sends the milter's option negotiation and waits up to `wait` for its reply.
async fn negotiate(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.write_all(&optneg()).await.unwrap();
    tokio::time::timeout(wait, stream.read_u32()).await.is_ok()
}

#[tokio::test]
async fn connections_over_the_limit_wait_until_one_closes() {
    let tmp = TempDir::new("socket-limit");
    let dir = tmp.path();
    let config = config("listen: inet:127.0.0.1:0\nmax_connections: 1", dir);
    let milter = Milter::bind(config).await.unwrap();
    let Listen::Inet(addr) = milter.listen().clone() else {
        unreachable!()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(milter.run(async {
        let _ = stopped.await;
    }));
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert!(negotiate(&mut first, Duration::from_secs(10)).await);
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(
        !negotiate(&mut second, Duration::from_millis(300)).await,
        "a second connection was served beyond max_connections: 1"
    );
    drop(first);
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), second.read_exact(&mut len))
        .await
        .expect("served once the first connection closed")
        .unwrap();
    drop(second);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn socket_group_that_does_not_exist_is_a_config_error_and_leaves_no_socket_file() {
    let tmp = TempDir::new("socket-group");
    let dir = tmp.path();
    let path = dir.join("tollgate.sock");
    let config = config(
        &format!(
            "listen: unix:{}\nsocket_group: tollgate-test-no-such-group",
            path.display()
        ),
        dir,
    );
    let err = Milter::bind(config).await.unwrap_err();
    let ServeError::Config(e) = &err else {
        panic!("not a configuration error: {err}");
    };
    assert_eq!(e.key, "socket_group", "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "{}: socket_group: no group \"tollgate-test-no-such-group\"",
            dir.join("milter.yaml").display()
        )),
        "{e}"
    );
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "a socket file was left behind"
    );
}

/// Runs `test` on a paused clock that moves only by `tokio::time::advance`:
/// a blocking task inhibits auto-advance for as long as it runs, so waits
/// for socket I/O are real waits and never jump timers forward. The
/// blocking task also fails a test that hangs (after 60 s).
async fn with_clock_moved_by_hand<T>(test: impl std::future::Future<Output = T>) -> T {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let mut hang =
        tokio::task::spawn_blocking(move || finished.recv_timeout(Duration::from_secs(60)));
    tokio::select! {
        out = test => {
            drop(done);
            let _ = hang.await;
            out
        }
        _ = &mut hang => panic!("the test hung"),
    }
}

/// Sends the option negotiation and reads the whole reply.
async fn negotiated(stream: &mut TcpStream) {
    stream.write_all(&optneg()).await.unwrap();
    read_reply(stream).await;
}

/// Reads one milter reply packet; returns its command byte.
async fn read_reply(stream: &mut TcpStream) -> u8 {
    let len = stream.read_u32().await.expect("a reply");
    let mut body = vec![0; len as usize];
    stream
        .read_exact(&mut body)
        .await
        .expect("the reply's body");
    body[0]
}

/// Whether the milter has neither sent anything nor closed the connection.
fn quiet_and_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test(start_paused = true)]
async fn idle_connection_is_closed_after_the_default_connection_timeout_and_its_slot_reused() {
    // indymilter's own default (7210 s) let idle connections hold every
    // slot for two hours.
    let tmp = TempDir::new("socket-idle");
    let dir = tmp.path();
    let config = config("listen: inet:127.0.0.1:0\nmax_connections: 1", dir);
    let timeout = config.connection_timeout;
    assert_eq!(timeout, Duration::from_secs(600), "the documented default");
    let milter = Milter::bind(config).await.unwrap();
    let Listen::Inet(addr) = milter.listen().clone() else {
        unreachable!()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(milter.run(async {
        let _ = stopped.await;
    }));
    with_clock_moved_by_hand(async {
        // One connection negotiates and then says nothing; it holds the only slot.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        negotiated(&mut idle).await;
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        waiting.write_all(&optneg()).await.unwrap();

        // A second short of the timeout nothing has changed.
        tokio::time::advance(timeout - Duration::from_secs(1)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(quiet_and_open(&idle), "closed before connection_timeout");
        assert!(quiet_and_open(&waiting), "served beyond max_connections: 1");

        // Past it, the milter closes the idle connection...
        tokio::time::advance(Duration::from_secs(2)).await;
        let mut rest = Vec::new();
        match idle.read_to_end(&mut rest).await {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        // ...and the waiting connection gets the slot: its negotiation is answered.
        assert_eq!(read_reply(&mut waiting).await, b'O');
        drop(waiting);
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    })
    .await;
}
