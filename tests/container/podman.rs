//! podman, driven from the tests: every command runs with `CONTAINERS_CONF`
//! naming tests/container/containers.conf (runc, rlimits, cgroupfs), and
//! every container and network the tests make is owned by a guard whose
//! `Drop` removes it, so nothing outlives a failing test.
//!
//! [`HostState`] records what netavark changes on the host (IP forwarding,
//! its iptables chains) before the first network is made, and puts it back
//! when the tests are done.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::e2e::{self, Missing};

/// containers.conf for every podman command of the tests.
pub fn containers_conf() -> PathBuf {
    e2e::repo_root().join("tests/container/containers.conf")
}

/// A podman command with the tests' configuration.
pub fn command() -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", containers_conf())
        .stdin(Stdio::null());
    c
}

/// Runs podman with `args`; its output, whatever the exit status.
pub fn run(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("podman {}: {e}", args.join(" ")))
}

/// Runs podman with `args`, panics unless it succeeds; its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "podman {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// podman, debootstrap, runc and iptables, and root (the tests run
/// rootful podman), or what is missing.
pub fn require() -> Result<(), Missing> {
    e2e::require(
        e2e::is_root(),
        "root",
        "the container tests run rootful podman",
    )?;
    for (program, package) in [
        ("podman", "podman"),
        ("runc", "runc"),
        ("debootstrap", "debootstrap"),
        ("iptables", "iptables"),
    ] {
        e2e::require(
            e2e::find_program(program).is_some(),
            program,
            &format!("apt-get install {package}; see .ci/run"),
        )?;
    }
    let out = command().arg("--version").output();
    e2e::require(
        out.is_ok_and(|o| o.status.success()),
        "a working podman",
        "`podman --version` failed",
    )
}

/// A container, removed (`podman rm -f`) on drop; its log is shown if the
/// test fails.
#[derive(Debug)]
pub struct Container {
    /// Its name.
    pub name: String,
}

impl Container {
    /// `podman run -d --name NAME ARGS...`.
    pub fn start(name: &str, args: &[&str]) -> Container {
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        // Owned before it is known to start, so a failed start is removed too.
        let container = Container {
            name: name.to_owned(),
        };
        ok(&all);
        container
    }

    /// `podman inspect --format FORMAT`.
    pub fn inspect(&self, format: &str) -> String {
        ok(&["inspect", "--format", format, &self.name])
            .trim()
            .to_owned()
    }

    /// Everything it wrote to stdout and stderr.
    pub fn logs(&self) -> String {
        let out = run(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `podman kill --signal SIGNAL`.
    pub fn signal(&self, signal: &str) {
        ok(&["kill", "--signal", signal, &self.name]);
    }

    /// Whether it is running.
    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// The host's process id of its main process (rootful: no user
    /// namespace, so its uid is the host's too).
    pub fn pid(&self) -> u32 {
        let pid = self.inspect("{{.State.Pid}}");
        pid.parse()
            .unwrap_or_else(|_| panic!("{}: no pid in {pid:?}", self.name))
    }

    /// Its exit code, once it has stopped.
    pub fn exit_code(&self) -> i32 {
        let code = self.inspect("{{.State.ExitCode}}");
        code.parse()
            .unwrap_or_else(|_| panic!("{}: exit code {code:?}", self.name))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- container {} log ----\n{}", self.name, self.logs());
        }
        let _ = run(&["rm", "--force", "--time", "2", &self.name]);
    }
}

/// A podman network, removed on drop (after the containers on it, which
/// the test drops first).
#[derive(Debug)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// Its gateway: the host's address on the bridge.
    pub gateway: String,
    /// Its subnet.
    pub subnet: String,
}

impl Network {
    /// Creates a bridge network on the first of a few documentation /26s
    /// (203.0.113.0/24, TEST-NET-3, RFC 5737) that no other network uses:
    /// every address is on this machine's own bridge, and no address of a
    /// real network is used, even inside the machine.
    pub fn create(name: &str) -> Network {
        let mut errors = String::new();
        for base in [0u8, 64, 128, 192] {
            let subnet = format!("203.0.113.{base}/26");
            let gateway = format!("203.0.113.{}", base + 1);
            let out = run(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &subnet,
                "--gateway",
                &gateway,
                name,
            ]);
            if out.status.success() {
                return Network {
                    name: name.to_owned(),
                    gateway,
                    subnet,
                };
            }
            errors.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        panic!("podman network create {name} failed on every subnet:\n{errors}");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = run(&["network", "rm", "--force", &self.name]);
    }
}

/// What netavark changes on the host and the tests put back: IP
/// forwarding, and the iptables chains it adds (with the rules that jump
/// to them).
#[derive(Debug)]
pub struct HostState {
    ip_forward: Option<String>,
    /// `(program, table, chain)` of every chain there before.
    chains: Vec<(String, String, String)>,
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const TABLES: [&str; 3] = ["filter", "nat", "mangle"];
const PROGRAMS: [&str; 2] = ["iptables", "ip6tables"];

impl HostState {
    /// Records the state now.
    pub fn record() -> HostState {
        let mut chains = Vec::new();
        for program in PROGRAMS {
            for table in TABLES {
                for line in rules(program, table) {
                    if let Some(chain) = line.strip_prefix("-N ") {
                        chains.push((program.to_owned(), table.to_owned(), chain.to_owned()));
                    }
                }
            }
        }
        HostState {
            ip_forward: std::fs::read_to_string(IP_FORWARD).ok(),
            chains,
        }
    }

    /// Puts it back: IP forwarding as it was; netavark's chains that were
    /// not there before deleted, with every rule that jumps to them.
    /// Returns what it changed, for the test's notes.
    pub fn restore(&self) -> Vec<String> {
        let mut done = Vec::new();
        for program in PROGRAMS {
            for table in TABLES {
                let lines = rules(program, table);
                let new: Vec<&str> = lines
                    .iter()
                    .filter_map(|l| l.strip_prefix("-N "))
                    .filter(|c| c.starts_with("NETAVARK"))
                    .filter(|c| {
                        !self
                            .chains
                            .iter()
                            .any(|(p, t, old)| p == program && t == table && old == c)
                    })
                    .collect();
                if new.is_empty() {
                    continue;
                }
                // Jumps into the new chains from chains that stay.
                for line in &lines {
                    let Some(rule) = line.strip_prefix("-A ") else {
                        continue;
                    };
                    let args = split_rule(rule);
                    let chain = args.first().map(String::as_str).unwrap_or_default();
                    let target = args
                        .iter()
                        .position(|a| a == "-j")
                        .and_then(|i| args.get(i + 1));
                    if !new.contains(&chain) && target.is_some_and(|t| new.contains(&t.as_str())) {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        if iptables(program, table, "-D", &args) {
                            done.push(format!("{program} -t {table} -D {rule}"));
                        }
                    }
                }
                for chain in &new {
                    iptables(program, table, "-F", &[chain]);
                }
                for chain in &new {
                    if iptables(program, table, "-X", &[chain]) {
                        done.push(format!("{program} -t {table} -X {chain}"));
                    }
                }
            }
        }
        if let Some(before) = &self.ip_forward {
            let now = std::fs::read_to_string(IP_FORWARD).unwrap_or_default();
            if now != *before {
                let _ = std::fs::write(IP_FORWARD, before);
                done.push(format!("ip_forward {} -> {}", now.trim(), before.trim()));
            }
        }
        done
    }
}

/// `PROGRAM -t TABLE -S`, one rule a line (none if the table is missing).
fn rules(program: &str, table: &str) -> Vec<String> {
    Command::new(program)
        .args(["-w", "-t", table, "-S"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// One iptables command; whether it succeeded.
fn iptables(program: &str, table: &str, op: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(["-w", "-t", table, op])
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A rule as `iptables -S` prints it, split into arguments: on spaces,
/// except inside double quotes (`--comment "netavark firewall plugin
/// rules"`), where `\"` and `\\` stand for `"` and `\`.
pub fn split_rule(rule: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut started = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            '\\' if quoted => current.extend(chars.next()),
            ' ' if !quoted => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

/// A file under `dir`, written with `text` and readable by every user (the
/// image's user reads mounted files).
pub fn write_public(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    path
}
