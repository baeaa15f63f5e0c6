//! The images of the container tests.
//!
//! - The base images the Dockerfile names, `debian:bookworm-slim` and
//!   `rust:1.95-slim-bookworm`, made locally by base-images.sh (no image
//!   can be pulled here) and kept in podman's store between runs.
//! - The Postfix image of the sidecar test, `localhost/tollgate-test-postfix:bookworm`,
//!   made from that Debian root plus Debian's postfix (postfix.Containerfile),
//!   also kept.
//! - tollgate's image, built once per run from the unmodified Dockerfile
//!   exactly as a user builds it (`podman build --format docker .`; podman
//!   needs the docker format to keep the HEALTHCHECK), and removed at the
//!   end ([`remove_built`]).
//!
//! Builds run under `nice -n 10` with the host's network (no bridge
//! for a build: nothing for netavark to set up).

use std::process::Stdio;
use std::sync::OnceLock;

use super::podman;
use crate::e2e::{self, note};

/// The base images, then tollgate's image; its name, or why it could not
/// be built (every test that needs it fails with that).
///
/// `TOLLGATE_TEST_IMAGE=NAME`, when working on the tests themselves, uses
/// an image built before instead (and leaves it in place).
pub fn tollgate() -> Result<&'static str, String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if let Some(name) = prebuilt() {
                eprintln!(
                    "container: testing the image {name} of TOLLGATE_TEST_IMAGE, not a new build"
                );
                return Ok(name);
            }
            base()?;
            let name = format!("localhost/tollgate-test:{}", std::process::id());
            build(&name, &[".", "--file", "Dockerfile"], "tollgate")?;
            Ok(name)
        })
        .as_ref()
        .map(String::as_str)
        .map_err(Clone::clone)
}

/// The Postfix image of the sidecar test.
pub fn postfix() -> Result<&'static str, String> {
    const NAME: &str = "localhost/tollgate-test-postfix:bookworm";
    static IMAGE: OnceLock<Result<(), String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            base()?;
            if podman::run(&["image", "exists", NAME]).status.success() {
                return Ok(());
            }
            build(
                NAME,
                &[
                    "--file",
                    "tests/container/postfix.Containerfile",
                    "--label",
                    "org.tollgate.test.base=1",
                    "tests/container",
                ],
                "postfix",
            )
        })
        .clone()
        .map(|()| NAME)
}

/// base-images.sh, once per run.
fn base() -> Result<(), String> {
    static BASE: OnceLock<Result<(), String>> = OnceLock::new();
    BASE.get_or_init(|| {
        let script = e2e::repo_root().join("tests/container/base-images.sh");
        let out = std::process::Command::new("nice")
            .args(["-n", "10", "sh"])
            .arg(&script)
            .env("CONTAINERS_CONF", podman::containers_conf())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        note(format_args!("base images:\n{log}"));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("base-images.sh failed ({}):\n{log}", out.status))
        }
    })
    .clone()
}

/// `podman build` of `name` with `args` (context and file), from the
/// repository root.
fn build(name: &str, args: &[&str], what: &str) -> Result<(), String> {
    let started = std::time::Instant::now();
    let out = std::process::Command::new("nice")
        .args(["-n", "10", "podman", "build"])
        // The docker format keeps HEALTHCHECK (OCI has no such field).
        .args(["--format", "docker", "--pull=never", "--network", "host"])
        // No intermediate images: the build stage (about 2 GB with its
        // target directory) is gone when the build ends.
        .args(["--layers=false", "--tag", name])
        .args(args)
        .current_dir(e2e::repo_root())
        .env("CONTAINERS_CONF", podman::containers_conf())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("podman build: {e}"))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        note(format_args!(
            "built {what} image {name} in {:.0?}",
            started.elapsed()
        ));
        Ok(())
    } else {
        let tail: Vec<&str> = log.lines().collect();
        Err(format!(
            "podman build of the {what} image failed ({}):\n{}",
            out.status,
            tail[tail.len().saturating_sub(60)..].join("\n")
        ))
    }
}

/// `TOLLGATE_TEST_IMAGE`, if set.
fn prebuilt() -> Option<String> {
    std::env::var("TOLLGATE_TEST_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
}

/// Removes tollgate's image, if this run built it (podman build removes its
/// build containers even when a build fails). The base images and the
/// Postfix image stay.
pub fn remove_built() {
    let name = format!("localhost/tollgate-test:{}", std::process::id());
    if podman::run(&["image", "exists", &name]).status.success() {
        let _ = podman::run(&["rmi", "--force", &name]);
    }
}
