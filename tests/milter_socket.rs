//! The milter's socket: a unix socket with its mode, a stale socket
//! replaced, the socket removed on exit; and the connection limit.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tollgate::cli::health::probe;
use tollgate::config::{Config, Listen};
use tollgate::milter::Milter;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-socket-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(text: &str, dir: &Path) -> Config {
    // DNS is never asked in these tests; a loopback nameserver keeps it local.
    let text = format!(
        "{text}\ndns:\n  nameservers: [\"127.0.0.1:9\"]\n  timeout: 200ms\n  attempts: 1\n"
    );
    Config::parse(&text, &dir.join("milter.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn unix_socket_replaces_a_stale_one_gets_its_mode_and_is_removed_on_exit() {
    let dir = temp_dir("unix");
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
        &dir,
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
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn unix_socket_path_that_is_not_a_socket_is_left_alone() {
    let dir = temp_dir("notsock");
    let path = dir.join("important.txt");
    std::fs::write(&path, "data").unwrap();
    let config = config(&format!("listen: unix:{}", path.display()), &dir);
    let err = Milter::bind(config).await.unwrap_err().to_string();
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends the milter's option negotiation and waits up to `wait` for its reply.
async fn negotiate(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut packet = 13u32.to_be_bytes().to_vec();
    packet.push(b'O');
    packet.extend(6u32.to_be_bytes());
    packet.extend(0x1ffu32.to_be_bytes());
    packet.extend(0x1f_ffffu32.to_be_bytes());
    stream.write_all(&packet).await.unwrap();
    tokio::time::timeout(wait, stream.read_u32()).await.is_ok()
}

#[tokio::test]
async fn connections_over_the_limit_wait_until_one_closes() {
    let dir = temp_dir("limit");
    let config = config("listen: inet:127.0.0.1:0\nmax_connections: 1", &dir);
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
    let _ = std::fs::remove_dir_all(dir);
}
