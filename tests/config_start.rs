//! `tollgate serve` with a configuration it must refuse: the real binary
//! exits 78 (EX_CONFIG) with one line on standard error naming the file
//! (and the key), and never prints `listening on …`.

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What `tollgate serve --config FILE` did.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `tollgate serve` on `config`; a process still running after 30 s
/// (it listens: the configuration was not refused) is killed and the
/// test fails.
fn serve(config: &Path) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tollgate starts");
    let mut waited = Duration::ZERO;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tollgate serve --config {} did not exit", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
        waited += Duration::from_millis(20);
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Outcome {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Asserts exit 78, nothing on stdout, and one line on stderr that starts
/// with `tollgate: FILE: ` and contains `problem`.
fn assert_refused(outcome: &Outcome, config: &Path, problem: &str) {
    assert_eq!(outcome.code, Some(78), "{outcome:?}");
    assert_eq!(outcome.stdout, "", "it listened: {outcome:?}");
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:?}");
    let line = outcome.stderr.trim_end();
    assert!(
        line.starts_with(&format!("tollgate: {}: ", config.display())),
        "{line}"
    );
    assert!(line.contains(problem), "{line}");
}

/// The configuration every case starts from: loopback, a port of its own,
/// DNS that is never asked.
const BASE: &str = "listen: inet:127.0.0.1:0\ndns:\n  nameservers: [\"127.0.0.1:9\"]\n";

#[test]
fn empty_whitespace_or_comment_only_config_file_is_refused_at_start_with_exit_78() {
    let tmp = TempDir::new("start-empty");
    let dir = tmp.path();
    let config = dir.join("milter.yaml");
    for text in [
        "",
        "  \n\t\n",
        "# listen: inet:127.0.0.1:8894\n#dry_run: true\n",
    ] {
        std::fs::write(&config, text).unwrap();
        let outcome = serve(&config);
        assert_refused(&outcome, &config, "the file has no settings");
    }
}

#[test]
fn config_file_over_one_mebibyte_is_refused_at_start_with_exit_78() {
    let tmp = TempDir::new("start-large");
    let dir = tmp.path();
    let config = dir.join("milter.yaml");
    let mut text = format!("{BASE}local_names:\n");
    while text.len() <= 1024 * 1024 {
        text.push_str("  - host.example.com\n");
    }
    std::fs::write(&config, text).unwrap();
    assert_refused(&serve(&config), &config, "larger than 1024 KiB");
}

#[test]
fn max_connections_2305843009213693952_is_refused_at_start_instead_of_a_panic_after_listening() {
    let tmp = TempDir::new("start-maxconn");
    let dir = tmp.path();
    let config = dir.join("milter.yaml");
    std::fs::write(
        &config,
        format!("{BASE}max_connections: 2305843009213693952\n"),
    )
    .unwrap();
    assert_refused(
        &serve(&config),
        &config,
        "max_connections (line 4): 2305843009213693952 is out of range: must be between 1 and 100000",
    );
}

#[test]
fn log_level_foo_bar_baz_is_refused_at_start_instead_of_silencing_the_log() {
    let tmp = TempDir::new("start-loglevel");
    let dir = tmp.path();
    let config = dir.join("milter.yaml");
    std::fs::write(&config, format!("{BASE}log:\n  level: 'foo=bar=baz'\n")).unwrap();
    assert_refused(
        &serve(&config),
        &config,
        "log.level (line 5): \"foo=bar=baz\"",
    );
}

#[test]
fn unknown_socket_group_exits_78_and_leaves_no_socket_file() {
    let tmp = TempDir::new("start-group");
    let dir = tmp.path();
    let config = dir.join("milter.yaml");
    let socket = dir.join("tollgate.sock");
    std::fs::write(
        &config,
        format!(
            "listen: unix:{}\nsocket_group: tollgate-test-no-such-group\ndns:\n  nameservers: [\"127.0.0.1:9\"]\n",
            socket.display()
        ),
    )
    .unwrap();
    assert_refused(
        &serve(&config),
        &config,
        "socket_group: no group \"tollgate-test-no-such-group\"",
    );
    assert!(
        std::fs::symlink_metadata(&socket).is_err(),
        "the socket file was left behind"
    );
}
