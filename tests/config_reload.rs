//! Reloading a configuration file that must be refused: the old
//! configuration keeps serving. In process through the real milter
//! protocol with DNS from testdns (the old policy and nameservers still
//! decide), and through the real binary with SIGHUP (the error is logged,
//! the milter still answers, a good file is then taken).

#[path = "milter/support.rs"]
#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use indymilter_test::Status;
use tollgate_testdns::suite::parse_zone;

use support::{Running, Setup, reply};

/// 192.0.2.7 is mx.example.com (FCrDNS passes); forged.example.org
/// authorises only 203.0.113.0/24.
const ZONE: &str = r#"
mx.example.com:
  - A: 192.0.2.7
  - TXT: "v=spf1 a -all"
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
forged.example.org:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:203.0.113.0/24 -all"
"#;

/// Asserts that the configuration `m` started with still decides: a
/// forged sender from 192.0.2.7 is refused at RCPT with an SPF fail, which
/// takes the old policy and the old nameservers (testdns). With the
/// defaults the resolver would be /etc/resolv.conf's.
async fn old_configuration_still_serves(m: &Running) {
    let mut c = m.client("192.0.2.7", "mx.example.com").await;
    assert_eq!(
        c.mail(["<bob@forged.example.org>"]).await.unwrap(),
        Status::Continue
    );
    let status = c.rcpt(["<alice@example.org>"]).await.unwrap();
    let text = reply(&status).unwrap_or_default();
    assert!(text.starts_with("550 5.7.23 "), "{status:?}");
    c.close().await.unwrap();
}

#[tokio::test]
async fn reload_of_an_empty_truncated_or_oversized_file_keeps_the_old_configuration() {
    let m = Running::start(parse_zone(ZONE).unwrap(), Setup::default()).await;
    old_configuration_still_serves(&m).await;
    let path = m.config_path();
    let oversized = format!(
        "{}local_names:\n{}",
        Setup::default().text("127.0.0.1:53".parse().unwrap()),
        "  - host.example.com\n".repeat(60_000)
    );
    let nested = format!(
        "local_names: {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let cases = [
        ("", "the file has no settings"),
        ("   \n\n", "the file has no settings"),
        (
            "# tollgate\n# listen: inet:127.0.0.1:8894\n",
            "the file has no settings",
        ),
        (oversized.as_str(), "larger than 1024 KiB"),
        (nested.as_str(), "more than 128 [ or {"),
    ];
    for (text, problem) in cases {
        std::fs::write(&path, text).unwrap();
        let err = m
            .handle
            .reload()
            .await
            .expect_err("the file must be refused");
        let line = err.to_string();
        assert!(line.starts_with(&format!("{}: ", path.display())), "{line}");
        assert!(line.contains(problem), "{line}");
        old_configuration_still_serves(&m).await;
    }
}

/// A running `tollgate serve`, killed on drop.
struct Serving {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// Starts the binary; returns it and the address it printed.
    fn start(config: &Path) -> (Serving, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tollgate starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let listen = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("no listening line: {line:?}"))
            .to_owned();
        let (send, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        (Serving { child, stderr }, listen)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// The next log line that contains `text` (the test fails after 30 s
    /// without one).
    fn log_line(&self, text: &str) -> String {
        loop {
            match self.stderr.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {text:?}: {e}"),
            }
        }
    }
}

/// `tollgate health` against `listen`.
fn answers(dir: &Path, listen: &str) -> bool {
    let probe = dir.join("probe.yaml");
    std::fs::write(&probe, format!("listen: {listen}\n")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["health", "--config"])
        .arg(&probe)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn sighup_with_an_emptied_config_file_logs_the_error_and_the_old_configuration_keeps_serving() {
    let dir = std::env::temp_dir().join(format!("tollgate-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("milter.yaml");
    let good = "listen: inet:127.0.0.1:0\ndns:\n  nameservers: [\"127.0.0.1:9\"]\n";
    std::fs::write(&config, good).unwrap();
    let (serving, listen) = Serving::start(&config);
    serving.log_line("tollgate started");

    // A half-written file: truncated to nothing, then SIGHUP.
    std::fs::write(&config, "").unwrap();
    serving.signal("-HUP");
    let line = serving.log_line("reload failed");
    assert!(line.contains("the old configuration stays"), "{line}");
    assert!(line.contains(&config.display().to_string()), "{line}");
    assert!(line.contains("the file has no settings"), "{line}");
    assert!(answers(&dir, &listen), "the milter stopped answering");

    // The reloader is still there: a good file is taken.
    std::fs::write(&config, format!("{good}dry_run: true\n")).unwrap();
    serving.signal("-HUP");
    serving.log_line("configuration reloaded");
    assert!(answers(&dir, &listen));
    drop(serving);
    let _ = std::fs::remove_dir_all(dir);
}
