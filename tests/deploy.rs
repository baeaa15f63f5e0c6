//! Deployment files without a Docker engine: the Dockerfile's shape, the
//! image's configuration, the compose file of docs/docker.md, the systemd
//! unit, and the binary running unprivileged with the image's configuration.

#[path = "common/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tollgate::config::{Config, Listen};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Dockerfile's instructions, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        current.push_str(line.trim_end_matches('\\'));
        current.push(' ');
        if !line.ends_with('\\') {
            let (op, args) = current
                .trim()
                .split_once(' ')
                .unwrap_or((current.trim(), ""));
            out.push((op.to_owned(), args.trim().to_owned()));
            current.clear();
        }
    }
    out
}

#[test]
fn dockerfile_builds_in_two_stages_and_runs_unprivileged_with_a_healthcheck() {
    let instructions = dockerfile();
    let known = [
        "FROM",
        "WORKDIR",
        "COPY",
        "RUN",
        "ENV",
        "USER",
        "VOLUME",
        "EXPOSE",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "ENTRYPOINT",
        "CMD",
    ];
    for (op, _) in &instructions {
        assert!(known.contains(&op.as_str()), "unknown instruction {op}");
    }
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(froms[0].ends_with("AS build"));
    let runtime: Vec<&(String, String)> = instructions
        .iter()
        .skip_while(|(op, a)| op != "FROM" || a.contains(" AS "))
        .collect();
    let user = runtime
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .expect("a USER");
    assert_ne!(user.1, "root");
    assert_ne!(user.1, "0");
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "COPY"
                && a == "deploy/docker/milter.yaml /etc/tollgate/milter.yaml")
    );
    assert!(runtime.iter().any(|(op, a)| op == "EXPOSE" && a == "8894"));
    // The embedded greylisting store's default directory is a volume, so
    // triplets can outlive the container.
    let tollgate::config::StoreKind::Embedded(db) =
        tollgate::config::Config::defaults().greylist.store
    else {
        panic!("the default greylisting store is the embedded one");
    };
    assert_eq!(db.parent(), Some(Path::new("/var/lib/tollgate")));
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "VOLUME" && a == "/var/lib/tollgate")
    );
    let health = runtime
        .iter()
        .find(|(op, _)| op == "HEALTHCHECK")
        .expect("a HEALTHCHECK");
    assert!(
        health
            .1
            .contains("\"tollgate\", \"health\", \"--config\", \"/etc/tollgate/milter.yaml\"")
    );
    let cmd = runtime.iter().find(|(op, _)| op == "CMD").unwrap();
    assert_eq!(
        cmd.1,
        r#"["serve", "--config", "/etc/tollgate/milter.yaml"]"#
    );
}

#[test]
fn image_configuration_is_valid_and_listens_on_all_interfaces() {
    let config = Config::load(&repo("deploy/docker/milter.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listen, Listen::Inet("0.0.0.0:8894".parse().unwrap()));
}

#[test]
fn compose_file_in_docs_parses_and_points_postfix_at_tollgate() {
    let doc = std::fs::read_to_string(repo("docs/docker.md")).unwrap();
    let block = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a yaml block");
    let compose: serde_yaml::Value = serde_yaml::from_str(block).expect("compose file parses");
    let services = &compose["services"];
    assert!(services["tollgate"]["build"].is_string());
    assert_eq!(
        services["tollgate"]["volumes"][0].as_str(),
        Some("./milter.yaml:/etc/tollgate/milter.yaml:ro")
    );
    assert_eq!(
        services["postfix"]["environment"]["POSTFIX_smtpd_milters"].as_str(),
        Some("inet:tollgate:8894")
    );
    assert_eq!(
        services["postfix"]["depends_on"]["tollgate"]["condition"].as_str(),
        Some("service_healthy")
    );
}

#[test]
fn systemd_unit_is_hardened_and_reloads_with_sighup() {
    let unit = std::fs::read_to_string(repo("deploy/systemd/tollgate.service")).unwrap();
    for line in [
        "DynamicUser=yes",
        "RuntimeDirectory=tollgate",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/local/bin/tollgate serve --config /etc/tollgate/milter.yaml",
        "RestartPreventExitStatus=78",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line}");
    }
    // systemd's own checker, where there is one.
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let tmp = TempDir::new("deploy-unit");
        let dir = tmp.path();
        let unit_path = dir.join("tollgate.service");
        let binary = env!("CARGO_BIN_EXE_tollgate");
        std::fs::write(&unit_path, unit.replace("/usr/local/bin/tollgate", binary)).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", unit_path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("tollgate.service:"),
            "systemd-analyze verify: {stderr}"
        );
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_serves_unprivileged_with_the_image_configuration() {
    // The image's file, on a free loopback port instead of 0.0.0.0:8894.
    let image = std::fs::read_to_string(repo("deploy/docker/milter.yaml")).unwrap();
    let tmp = TempDir::new("deploy-image");
    let dir = tmp.path();
    let config = dir.join("milter.yaml");
    std::fs::write(
        &config,
        image.replace("inet:0.0.0.0:8894", "inet:127.0.0.1:0"),
    )
    .unwrap();
    let binary = env!("CARGO_BIN_EXE_tollgate");
    let mut command = if nix_is_root() {
        // As root, drop to nobody the way the image runs as its own user.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary]);
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        c
    } else {
        Command::new(binary)
    };
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Kill(command.spawn().expect("tollgate starts"));
    let stdout = child.0.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let listen = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    // tollgate health against the running milter, through a config naming its address.
    let probe = dir.join("probe.yaml");
    std::fs::write(&probe, format!("listen: {listen}\n")).unwrap();
    let out = Command::new(binary)
        .args(["health", "--config", probe.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: milter at inet:127.0.0.1:"));
    drop(child);
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
