//! A private Sendmail instance for one test, run from Debian's packages
//! unpacked into a directory (the `sendmail-bin` package conflicts with
//! `postfix`, so it is not installed; `tests/e2e/install-sendmail.sh` does
//! `apt-get download` + `dpkg -x`). The directory is `TOLLGATE_SENDMAIL_ROOT`,
//! else `/opt/tollgate-e2e/sendmail`, else `/` when the sendmail-bin
//! package is installed.
//!
//! The test generates a `.mc` file (the milter lines come from
//! docs/sendmail.md), compiles it with m4 and the sendmail-cf macros, and
//! runs `sendmail -bD -C sendmail.cf` (foreground daemon) on a free port of
//! 127.0.0.1 with its own queue directory, pid file, status file, alias
//! map and help file. Every local recipient is handed to a small shell
//! mailer that stores the message as one file per recipient under
//! `mail/new/`.
//!
//! Sendmail wants a fully qualified host name at start, and without one
//! it sleeps for a minute ("My unqualified host name ... unknown; sleeping
//! for retry"). So it runs under `unshare --uts --mount`: a host name
//! of its own (mx.example.org), and private bind mounts of /etc/hosts and
//! /etc/resolv.conf (nameserver 127.0.0.1, where nothing answers on port
//! 53), so that no lookup by Sendmail leaves the loopback interface. The
//! machine's own host name and files are untouched: unshare makes the new
//! mount namespace private (which needs `/` to be a mount point, as it is
//! on any normal system; in a bare chroot, bind-mount the root onto itself).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::smtp::Smtp;
use super::{ChildGuard, Message, WAIT, make_dir, wait_for};

/// Where the milter lines of the .mc live.
pub const DOC: &str = "docs/sendmail.md";
/// The marker of the .mc block in [`DOC`].
pub const MARKER: &str = "tollgate sendmail.mc";
/// The milter socket written in the documentation's snippet.
pub const DOC_MILTER: &str = "inet:8894@127.0.0.1";
/// The default unpack directory of install-sendmail.sh.
pub const DEFAULT_ROOT: &str = "/opt/tollgate-e2e/sendmail";
/// This host's name in the instance ($j).
pub const HOSTNAME: &str = "mx.example.org";

/// An unpacked (or installed) Sendmail.
#[derive(Debug, Clone)]
pub struct Install {
    /// The sendmail binary.
    pub sendmail: PathBuf,
    /// makemap, to build the alias map.
    pub makemap: PathBuf,
    /// The sendmail-cf directory (`.../cf/`, with m4/cf.m4).
    pub cf_dir: PathBuf,
    /// m4.
    pub m4: PathBuf,
    /// unshare (util-linux).
    pub unshare: PathBuf,
}

/// Finds Sendmail, m4 and unshare.
pub fn find() -> Result<Install, String> {
    let roots: Vec<PathBuf> = match std::env::var_os("TOLLGATE_SENDMAIL_ROOT") {
        Some(r) => vec![PathBuf::from(r)],
        None => vec![PathBuf::from(DEFAULT_ROOT), PathBuf::from("/")],
    };
    let root = roots
        .iter()
        .find(|r| r.join("usr/libexec/sendmail/sendmail").is_file())
        .ok_or_else(|| {
            format!(
                "no usr/libexec/sendmail/sendmail under {}",
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })?;
    let cf_dir = root.join("usr/share/sendmail/cf");
    if !cf_dir.join("m4/cf.m4").is_file() {
        return Err(format!("no sendmail-cf macros in {}", cf_dir.display()));
    }
    Ok(Install {
        sendmail: root.join("usr/libexec/sendmail/sendmail"),
        makemap: root.join("usr/libexec/sendmail/makemap"),
        cf_dir,
        m4: super::find_program("m4").ok_or("no m4")?,
        unshare: super::find_program("unshare").ok_or("no unshare (util-linux)")?,
    })
}

/// Finds Sendmail, or says what is missing; also needs root.
pub fn require() -> Result<Install, super::Missing> {
    let install = find().map_err(|why| {
        super::Missing(format!(
            "Sendmail (unpacked Debian packages), m4 and unshare are not available \
             ({why}; run tests/e2e/install-sendmail.sh as root, see .ci/run)"
        ))
    })?;
    super::require(super::is_root(), "root", "Sendmail must be started as root")?;
    Ok(install)
}

/// The documented .mc lines with the milter socket replaced by `socket`
/// (`inet:PORT@127.0.0.1`).
pub fn documented_snippet(socket: &str) -> String {
    let snippet = super::doc_snippet(DOC, MARKER);
    assert!(
        snippet.contains(DOC_MILTER),
        "{DOC}: the .mc block no longer says {DOC_MILTER}"
    );
    snippet.replace(DOC_MILTER, socket)
}

/// A running Sendmail daemon.
#[derive(Debug)]
pub struct Sendmail {
    /// The SMTP port on 127.0.0.1.
    pub port: u16,
    /// Where the local mailer stores messages (`new/`, one file per recipient).
    pub mail: PathBuf,
    /// The daemon's stdout and stderr.
    pub output: PathBuf,
    daemon: ChildGuard,
}

fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod +x");
}

impl Sendmail {
    /// Sets up an instance under `dir` with `milter_mc` (.mc lines, such as
    /// the documented snippet) in its .mc, starts it and waits for 220.
    pub fn start(install: &Install, dir: &Path, milter_mc: &str) -> Sendmail {
        let base = dir.join("sendmail");
        let mail = dir.join("mail");
        let etc = base.join("etc");
        make_dir(&base, 0o755, None);
        make_dir(&etc, 0o755, None);
        make_dir(&base.join("queue"), 0o700, Some((0, 0)));
        // The local mailer runs as DefaultUser (mail, 8:8).
        make_dir(&mail, 0o777, None);
        make_dir(&mail.join("new"), 0o777, None);
        make_dir(&mail.join("tmp"), 0o777, None);
        let b = base.display();
        let m = mail.display();

        fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n127.0.0.1 {HOSTNAME} mx\n"),
        )
        .expect("hosts");
        fs::write(
            etc.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .expect("resolv.conf");
        fs::write(base.join("service.switch"), "hosts files\naliases files\n").expect("switch");
        fs::write(base.join("helpfile"), "").expect("helpfile");
        write_executable(
            &base.join("deliver"),
            &format!(
                "#!/bin/sh\n\
                 # The local mailer of the test instance: deliver USER < message\n\
                 umask 022\n\
                 name=\"$1.$$.$(date +%s%N)\"\n\
                 cat > \"{m}/tmp/$name\" && mv \"{m}/tmp/$name\" \"{m}/new/$name\"\n"
            ),
        );

        let port = super::free_port();
        let cf = install.cf_dir.display();
        let mc = format!(
            "divert(-1)\n\
             Generated by tests/e2e/sendmail.rs: a private instance for one test.\n\
             define(`MAIL_SETTINGS_DIR', `{b}/')\n\
             divert(0)dnl\n\
             include(`{cf}/m4/cf.m4')dnl\n\
             VERSIONID(`tollgate e2e')dnl\n\
             define(`STATUS_FILE', `{b}/statistics')dnl\n\
             define(`LOCAL_MAILER_PATH', `{b}/deliver')dnl\n\
             define(`LOCAL_MAILER_ARGS', `deliver $u')dnl\n\
             define(`LOCAL_MAILER_FLAGS', `Pn9')dnl\n\
             OSTYPE(`gnu')dnl\n\
             FEATURE(`no_default_msa')dnl\n\
             define(`confDOMAIN_NAME', `{HOSTNAME}')dnl\n\
             define(`QUEUE_DIR', `{b}/queue')dnl\n\
             define(`confPID_FILE', `{b}/sendmail.pid')dnl\n\
             define(`ALIAS_FILE', `hash:{b}/aliases')dnl\n\
             define(`confSERVICE_SWITCH_FILE', `{b}/service.switch')dnl\n\
             define(`confDONT_PROBE_INTERFACES', `true')dnl\n\
             define(`confDEF_USER_ID', `8:8')dnl\n\
             define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl\n\
             define(`confTO_IDENT', `0s')dnl\n\
             MODIFY_MAILER_FLAGS(`LOCAL', `-w')dnl\n\
             FEATURE(`accept_unresolvable_domains')dnl\n\
             FEATURE(`nocanonify')dnl\n\
             LOCAL_DOMAIN(`example.org')dnl\n\
             DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA')dnl\n\
             {milter_mc}\
             MAILER(`local')dnl\n\
             MAILER(`smtp')dnl\n"
        );
        fs::write(base.join("sendmail.mc"), &mc).expect("write sendmail.mc");
        let out = Command::new(&install.m4)
            .arg(format!("-D_CF_DIR_={cf}/"))
            .arg(base.join("sendmail.mc"))
            .output()
            .expect("run m4");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "m4 sendmail.mc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cf_file = base.join("sendmail.cf");
        fs::write(&cf_file, &out.stdout).expect("write sendmail.cf");

        // The alias map must exist (and end with "@"), or every recipient
        // is queued with "alias database unavailable".
        let mut makemap = Command::new(&install.makemap)
            .arg("-C")
            .arg(&cf_file)
            .args(["hash", &format!("{b}/aliases")])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run makemap");
        {
            use std::io::Write;
            let mut stdin = makemap.stdin.take().expect("makemap stdin");
            stdin
                .write_all(b"tollgate-e2e-unused root\n@ @\n")
                .expect("feed makemap");
        }
        let made = makemap.wait_with_output().expect("makemap");
        assert!(
            made.status.success(),
            "makemap failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );

        let run = base.join("run-sendmail");
        write_executable(
            &run,
            &format!(
                "#!/bin/sh\n\
                 # Runs inside `unshare --uts --mount`: a host name and resolver of its own.\n\
                 set -e\n\
                 mount --bind {b}/etc/hosts /etc/hosts\n\
                 mount --bind {b}/etc/resolv.conf /etc/resolv.conf\n\
                 hostname {HOSTNAME}\n\
                 exec {sendmail} -bD -C {b}/sendmail.cf\n",
                sendmail = install.sendmail.display()
            ),
        );
        let output = base.join("sendmail.out");
        let log = fs::File::create(&output).expect("sendmail.out");
        let child = Command::new(&install.unshare)
            .args(["--uts", "--mount"])
            .arg(&run)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn sendmail");
        let mut daemon = ChildGuard::new("sendmail", child, Some(output.clone())).with_group();
        wait_for(WAIT, "Sendmail to greet", || {
            if let Some(status) = daemon.exited() {
                panic!("sendmail exited ({status}):\n{}", super::tail(&output, 20));
            }
            Smtp::probe(port, Duration::from_millis(500)).then_some(())
        });
        Sendmail {
            port,
            mail,
            output,
            daemon,
        }
    }

    /// A new SMTP session.
    pub fn connect(&self) -> Smtp {
        Smtp::connect(self.port)
    }

    /// Waits for the delivered messages containing `marker` (one per recipient).
    pub fn delivered(&self, marker: &str) -> Vec<Message> {
        super::wait_for_delivery(&self.mail.join("new"), marker)
    }

    /// Stops the daemon now (it is also stopped on drop).
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}
