//! The container image, built and run for real with podman (Debian's
//! packages): the unmodified Dockerfile built as a user builds it, the
//! image run with a mounted configuration on a podman network of its own,
//! driven from the host through the milter protocol on its published port,
//! with DNS from testdns on the host's address on that network's bridge.
//! Then the sidecar: the image and a Postfix container on one network
//! (tests/container/sidecar.rs).
//!
//! No image can be pulled here: tests/container/base-images.sh makes the
//! two base images the Dockerfile names (debootstrap, the host's Rust
//! toolchain) and keeps them in podman's store for later runs. podman runs
//! with tests/container/containers.conf (runc, rlimits). The image built
//! from the Dockerfile is removed at the end, and what netavark changed on
//! the host (IP forwarding, iptables chains) is put back. docs/docker.md
//! says what is kept and how to remove it.
//!
//! Without root or podman (and debootstrap, runc, iptables) the tests are
//! reported ignored, with the reason, unless `CI` or
//! `TOLLGATE_E2E_REQUIRED=1` is set: then they fail (tests/e2e/harness.rs).
//! `.ci/run` installs everything.

// The `main!` of the harness is not used: this `main` cleans up after the
// tests.
#[allow(unused_macros, unused_imports)]
mod e2e;
#[path = "container/images.rs"]
mod images;
#[path = "container/milter.rs"]
mod milter;
#[path = "container/podman.rs"]
mod podman;
#[path = "container/sidecar.rs"]
mod sidecar;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{Missing, TempDir, TestResult, note};
use milter::{BridgeDns, Outcome, Session};
use podman::{Container, Network};

/// The DNS world: 192.0.2.7 is mx.example.com (FCrDNS pass), the only
/// sender example.com's SPF allows; forged.example.org allows only
/// 198.51.100.0/24.
pub const ZONE: &str = r#"
example.com:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:192.0.2.7 -all"
mx.example.com:
  - A: 192.0.2.7
  - TXT: "v=spf1 a -all"
7.2.0.192.in-addr.arpa:
  - PTR: mx.example.com
forged.example.org:
  - MX: [10, mx.example.com]
  - TXT: "v=spf1 ip4:198.51.100.0/24 -all"
"#;

/// The reply for forged.example.org from 192.0.2.7.
pub const FORGED_REPLY: &str = "550 5.7.23 SPF fail: 192.0.2.7 is not allowed to send mail as forged.example.org (matched \"-all\")";

/// What the image runs: its user and the configuration path inside.
const UID: &str = "10001";
const CONFIG: &str = "/etc/tollgate/milter.yaml";

/// A unique name for this run's containers and networks.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "tollgate-test-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// podman, root and the image, or what is missing. An image that does
/// not build is a failure, not a missing part.
fn require_image() -> Result<&'static str, Missing> {
    podman::require()?;
    Ok(images::tollgate().unwrap_or_else(|e| panic!("{e}")))
}

/// The configuration the tests mount: the image's own file
/// (deploy/docker/milter.yaml, so `listen: inet:0.0.0.0:8894`), with DNS
/// from testdns and `extra` top-level keys (which replace the image's).
pub fn config(dns: &BridgeDns, extra: &str) -> String {
    let keys: Vec<&str> = extra
        .lines()
        .filter(|l| !l.starts_with([' ', '#']))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    let image = std::fs::read_to_string(e2e::repo_root().join("deploy/docker/milter.yaml"))
        .expect("read deploy/docker/milter.yaml")
        .lines()
        .filter(|l| !keys.iter().any(|k| l.starts_with(&format!("{k}:"))))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "{image}\n\
         hostname: mx.example.org\n\
         dns:\n  nameservers: [\"{}\"]\n  timeout: 2s\n  attempts: 1\n  time_budget: 8s\n\
         {extra}",
        dns.addr()
    )
}

/// The bridge of `network`, and the host's address on it (the gateway),
/// exist while a container is on the network: this one, a shell of the
/// Debian base image that sleeps, holds them up for testdns to bind to.
pub fn hold_bridge(network: &Network, label: &str) -> Container {
    let holder = Container::start(
        &unique(&format!("{label}-bridge")),
        &[
            "--network",
            &network.name,
            "docker.io/library/debian:bookworm-slim",
            "sleep",
            "infinity",
        ],
    );
    e2e::wait_for(e2e::WAIT, "the gateway's address on the bridge", || {
        std::net::UdpSocket::bind((network.gateway.as_str(), 0))
            .is_ok()
            .then_some(())
    });
    holder
}

/// One test's world: the image running on a network of its own with a
/// mounted configuration, its milter port published on 127.0.0.1, and
/// testdns on the bridge. Dropped in field order: the container before
/// its network.
struct World {
    container: Container,
    _bridge: Container,
    _network: Network,
    dns: BridgeDns,
    /// The published milter port on the host.
    milter: std::net::SocketAddr,
    dir: TempDir,
}

impl World {
    fn start(label: &str, extra: &str) -> Result<World, Missing> {
        let image = require_image()?;
        let dir = TempDir::new(&format!("ctr-{label}"));
        let network = Network::create(&unique(label));
        let bridge = hold_bridge(&network, label);
        let dns = BridgeDns::start(ZONE, &network.gateway);
        let path = podman::write_public(dir.path(), "milter.yaml", &config(&dns, extra));
        let port = e2e::free_port();
        let publish = format!("127.0.0.1:{port}:8894");
        let mount = format!("{}:{CONFIG}:ro", path.display());
        let container = Container::start(
            &unique(label),
            &[
                "--network",
                &network.name,
                "--publish",
                &publish,
                "--volume",
                &mount,
                image,
            ],
        );
        let world = World {
            container,
            _bridge: bridge,
            _network: network,
            dns,
            milter: ([127, 0, 0, 1], port).into(),
            dir,
        };
        e2e::wait_for(e2e::WAIT, "tollgate's listening line", || {
            assert!(
                world.container.running(),
                "the container stopped:\n{}",
                world.container.logs()
            );
            world
                .container
                .logs()
                .contains("listening on inet:0.0.0.0:8894")
                .then_some(())
        });
        Ok(world)
    }

    /// Rewrites the mounted configuration in place (the same inode: a
    /// single-file bind mount keeps pointing at the file it was given).
    fn rewrite_config(&self, extra: &str) {
        use std::io::Write;
        let mut file = std::fs::File::options()
            .write(true)
            .truncate(true)
            .open(self.dir.path().join("milter.yaml"))
            .expect("open milter.yaml");
        file.write_all(config(&self.dns, extra).as_bytes())
            .expect("rewrite milter.yaml");
    }

    /// Forged mail (SPF fail) from mx.example.com.
    fn forged(&self) -> Outcome {
        let mut s = Session::open(self.milter, "192.0.2.7", "mx.example.com");
        let outcome = s.message("<bob@forged.example.org>", "<alice@example.org>");
        s.close();
        outcome
    }

    /// Mail that passes SPF, from mx.example.com.
    fn legitimate(&self) -> Outcome {
        let mut s = Session::open(self.milter, "192.0.2.7", "mx.example.com");
        let outcome = s.message("<carol@example.com>", "<alice@example.org>");
        s.close();
        outcome
    }
}

/// The `Name: value` of every inserted header whose name is `name`.
fn headers<'a>(outcome: &'a Outcome, name: &str) -> Vec<&'a str> {
    match outcome {
        Outcome::Accepted(h) => h
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect(),
        Outcome::Refused(reply) => panic!("refused: {reply}"),
    }
}

fn image_is_built_from_the_unmodified_dockerfile_with_its_user_port_and_healthcheck() -> TestResult
{
    let image = require_image()?;
    let inspect = |format: &str| podman::ok(&["image", "inspect", "--format", format, image]);
    let user = inspect("{{.Config.User}}");
    note(format_args!("user {user}"));
    assert!(
        matches!(user.trim(), "tollgate" | "10001" | "10001:10001"),
        "USER {user}"
    );
    let health = inspect("{{json .Config.Healthcheck}}");
    assert!(
        health.contains(r#""CMD","tollgate","health","--config","/etc/tollgate/milter.yaml""#),
        "the image kept its HEALTHCHECK: {health}"
    );
    let ports = inspect("{{json .Config.ExposedPorts}}");
    assert!(ports.contains("8894/tcp"), "EXPOSE 8894: {ports}");
    let size = inspect("{{.Size}}");
    let size: u64 = size.trim().parse().expect("a size");
    eprintln!(
        "container: runtime image {image}: {size} bytes ({:.1} MB)",
        size as f64 / 1e6
    );
    Ok(())
}

fn container_runs_as_uid_10001_and_answers_the_milter_protocol_on_its_published_port() -> TestResult
{
    let w = World::start("milter", "")?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.container.pid()))
        .expect("the container's process");
    for key in ["Uid:", "Gid:"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {status}"));
        let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(ids, [UID; 4], "{line}");
    }
    match w.forged() {
        Outcome::Refused(reply) => assert_eq!(reply, FORGED_REPLY),
        other => panic!("forged mail: {other:?}"),
    }
    let pass = w.legitimate();
    let spf = headers(&pass, "Received-SPF");
    assert_eq!(spf.len(), 1, "{pass:?}");
    assert!(spf[0].starts_with("pass "), "{}", spf[0]);
    let ar = headers(&pass, "Authentication-Results");
    assert!(ar.iter().any(|v| v.contains("spf=pass")), "{pass:?}");
    assert!(w.dns.query_count() > 0, "the container asked testdns");
    resident_memory_under_load(&w);
    Ok(())
}

/// Not a check: the resident memory of the container's tollgate after a
/// load of sessions (docs/docker.md reports it). The load is bounded: two
/// rounds in which 8 threads each open 25 sessions (200 live at once, of
/// the 256 `max_connections` allows), send one message in each, half of
/// them forged, and close them.
fn resident_memory_under_load(w: &World) {
    let pid = w.container.pid();
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len()..].trim().to_owned())
                .unwrap_or_default()
        };
        format!("VmRSS {} (peak VmHWM {})", field("VmRSS:"), field("VmHWM:"))
    };
    let idle = rss();
    for _round in 0..2 {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let addr = w.milter;
                std::thread::spawn(move || {
                    let mut sessions: Vec<Session> = (0..25)
                        .map(|_| Session::open(addr, "192.0.2.7", "mx.example.com"))
                        .collect();
                    for (i, s) in sessions.iter_mut().enumerate() {
                        let sender = if (t + i) % 2 == 0 {
                            "<carol@example.com>"
                        } else {
                            "<bob@forged.example.org>"
                        };
                        s.message(sender, "<alice@example.org>");
                    }
                    for s in sessions {
                        s.close();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("load thread");
        }
    }
    eprintln!(
        "container: resident memory idle: {idle}; after 400 sessions, 200 at a time: {}",
        rss()
    );
}

fn healthcheck_passes_and_fails_when_the_milter_does_not_answer() -> TestResult {
    let w = World::start("health", "")?;
    let out = podman::run(&["healthcheck", "run", &w.container.name]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "podman healthcheck run: {text}");
    assert_eq!(
        w.container.inspect("{{.State.Health.Status}}"),
        "healthy",
        "{text}"
    );
    // A milter that accepts connections but never answers (stopped):
    // the check times out and reports it.
    w.container.signal("STOP");
    let out = podman::run(&["healthcheck", "run", &w.container.name]);
    w.container.signal("CONT");
    assert!(
        !out.status.success(),
        "the health check passed while the milter was stopped: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

fn sighup_reloads_the_mounted_configuration() -> TestResult {
    let w = World::start("reload", "")?;
    match w.forged() {
        Outcome::Refused(reply) => assert_eq!(reply, FORGED_REPLY),
        other => panic!("forged mail before the reload: {other:?}"),
    }
    w.rewrite_config("dry_run: true\n");
    w.container.signal("HUP");
    e2e::wait_for(e2e::WAIT, "\"configuration reloaded\" in the log", || {
        w.container
            .logs()
            .contains("configuration reloaded")
            .then_some(())
    });
    // In dry run the forged mail goes through, with its headers.
    let after = w.forged();
    let spf = headers(&after, "Received-SPF");
    assert!(
        spf.first().is_some_and(|v| v.starts_with("fail ")),
        "{after:?}"
    );
    Ok(())
}

fn sigterm_stops_it_within_shutdown_timeout_with_exit_0() -> TestResult {
    let w = World::start("stop", "shutdown_timeout: 2s\n")?;
    // A live session that never ends: tollgate must close it when
    // shutdown_timeout runs out, and exit.
    let mut live = Session::open(w.milter, "192.0.2.7", "mx.example.com");
    // podman stop sends the image's STOPSIGNAL (SIGTERM), then SIGKILL
    // (exit 137) if the container is still running after --time seconds.
    podman::ok(&["stop", "--time", "20", &w.container.name]);
    let logs = w.container.logs();
    assert_eq!(w.container.exit_code(), 0, "{logs}");
    assert!(logs.contains("\"signal\":\"SIGTERM\""), "{logs}");
    assert!(
        logs.contains("sessions still open after the shutdown timeout; closing them"),
        "{logs}"
    );
    assert!(logs.contains("tollgate stopped"), "{logs}");
    assert!(live.closed_by_milter(), "the live session was closed");
    Ok(())
}

fn bad_mounted_configuration_exits_78_with_one_line_error() -> TestResult {
    let image = require_image()?;
    let dir = TempDir::new("ctr-bad");
    let path = podman::write_public(
        dir.path(),
        "milter.yaml",
        "listen: inet:0.0.0.0:8894\ndns:\n  timeout: soon\n",
    );
    let mount = format!("{}:{CONFIG}:ro", path.display());
    let name = unique("bad");
    let container = Container { name: name.clone() };
    let out = podman::run(&[
        "run",
        "--name",
        &name,
        "--network",
        "none",
        "--volume",
        &mount,
        image,
    ]);
    assert_eq!(out.status.code(), Some(78), "podman run: {out:?}");
    assert_eq!(container.exit_code(), 78);
    let logs = container.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    note(format_args!("podman logs: {logs}"));
    assert_eq!(lines.len(), 1, "one line: {logs}");
    assert!(lines[0].contains(CONFIG), "names the file: {logs}");
    assert!(lines[0].contains("timeout"), "names the key: {logs}");
    Ok(())
}

fn iptables_rules_are_split_like_the_shell_splits_them() -> TestResult {
    assert_eq!(
        podman::split_rule(
            r#"FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD"#
        ),
        [
            "FORWARD",
            "-m",
            "comment",
            "--comment",
            "netavark firewall plugin rules",
            "-j",
            "NETAVARK_FORWARD"
        ]
    );
    assert_eq!(
        podman::split_rule(r#"X --comment "a \"b\" \\ c" --comment """#),
        ["X", "--comment", r#"a "b" \ c"#, "--comment", ""]
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let host = podman::HostState::record();
    let code = e2e::harness::run(&[
        (
            "image_is_built_from_the_unmodified_dockerfile_with_its_user_port_and_healthcheck",
            image_is_built_from_the_unmodified_dockerfile_with_its_user_port_and_healthcheck,
        ),
        (
            "container_runs_as_uid_10001_and_answers_the_milter_protocol_on_its_published_port",
            container_runs_as_uid_10001_and_answers_the_milter_protocol_on_its_published_port,
        ),
        (
            "healthcheck_passes_and_fails_when_the_milter_does_not_answer",
            healthcheck_passes_and_fails_when_the_milter_does_not_answer,
        ),
        (
            "sighup_reloads_the_mounted_configuration",
            sighup_reloads_the_mounted_configuration,
        ),
        (
            "sigterm_stops_it_within_shutdown_timeout_with_exit_0",
            sigterm_stops_it_within_shutdown_timeout_with_exit_0,
        ),
        (
            "bad_mounted_configuration_exits_78_with_one_line_error",
            bad_mounted_configuration_exits_78_with_one_line_error,
        ),
        (
            "iptables_rules_are_split_like_the_shell_splits_them",
            iptables_rules_are_split_like_the_shell_splits_them,
        ),
        (
            "sidecar_postfix_refuses_spf_fail_and_delivers_a_pass_with_tollgates_headers",
            sidecar::sidecar_postfix_refuses_spf_fail_and_delivers_a_pass_with_tollgates_headers,
        ),
    ]);
    if podman::require().is_err() {
        // Nothing ran podman.
        return code;
    }
    images::remove_built();
    // Another run's containers (tests of another checkout, say) still need
    // netavark's chains and forwarding: the last run to finish undoes them.
    let others = podman::run(&["ps", "--all", "--quiet"]);
    if !others.stdout.is_empty() {
        eprintln!(
            "container: other containers are there; netavark's changes to the host stay until they are gone:\n{}",
            String::from_utf8_lossy(&others.stdout)
        );
        return code;
    }
    // netavark may still be tearing down the last network (a cleanup
    // process of podman's): undo until there is nothing left to undo.
    for _ in 0..5 {
        e2e::wait_for_or_none(Duration::from_secs(10), || {
            (!std::process::Command::new("pgrep")
                .args(["-x", "netavark"])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success()))
            .then_some(())
        });
        let undone = host.restore();
        for change in &undone {
            eprintln!("container: undid {change}");
        }
        if undone.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    code
}
