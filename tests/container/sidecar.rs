//! The compose-style sidecar of docs/docker.md, with podman: tollgate's
//! image and a Postfix container (Debian's postfix on the debootstrap
//! root, postfix.Containerfile) on one podman network, Postfix's
//! `smtpd_milters` pointing at the tollgate service by name (the
//! network alias `tollgate`, resolved by the network's DNS). The milter
//! settings are the ones the compose file of docs/docker.md gives Postfix
//! (its `POSTFIX_<parameter>` variables, made main.cf lines here), so the
//! document is what is tested.
//!
//! Postfix's smtpd is published on 127.0.0.1; the test speaks SMTP to it
//! with XCLIENT (the client is 192.0.2.7, as in the other tests), and reads
//! what was delivered from a Maildir mounted from the host.

use std::path::Path;
use std::time::Duration;

use super::podman::{self, Container, Network};
use super::{FORGED_REPLY, ZONE, hold_bridge, milter::BridgeDns, unique};
use crate::e2e::{self, TempDir, TestResult, message, note, smtp::Smtp};

/// The `POSTFIX_<parameter>: value` lines of the compose file in
/// docs/docker.md, as main.cf lines (`parameter = value`).
fn documented_milter_settings() -> String {
    let doc = std::fs::read_to_string(e2e::repo_root().join("docs/docker.md"))
        .expect("read docs/docker.md");
    let block = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("docs/docker.md has a compose file");
    let compose: serde_yaml::Value = serde_yaml::from_str(block).expect("the compose file parses");
    let env = compose["services"]["postfix"]["environment"]
        .as_mapping()
        .expect("the postfix service has an environment");
    let mut lines = String::new();
    for (key, value) in env {
        let (Some(key), Some(value)) = (
            key.as_str(),
            value
                .as_str()
                .map(str::to_owned)
                .or_else(|| value.as_u64().map(|n| n.to_string())),
        ) else {
            continue;
        };
        if let Some(parameter) = key.strip_prefix("POSTFIX_") {
            lines.push_str(&format!("{parameter} = {value}\n"));
        }
    }
    assert!(
        lines.contains("smtpd_milters = inet:tollgate:8894"),
        "the compose file points Postfix at the tollgate service: {lines}"
    );
    lines
}

/// main.cf of the Postfix container: local delivery of `@example.org` into
/// the Maildir at /var/mail/test/inbox, nothing leaves, the log on
/// standard output (`podman logs`), and the documented milter settings.
fn main_cf(network: &Network) -> String {
    format!(
        "compatibility_level = 3.6\n\
         myhostname = mx.example.org\n\
         mydomain = example.org\n\
         myorigin = example.org\n\
         mydestination =\n\
         inet_interfaces = all\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         smtpd_authorized_xclient_hosts = 127.0.0.0/8 {subnet}\n\
         maillog_file = /dev/stdout\n\
         smtp_dns_support_level = disabled\n\
         virtual_mailbox_domains = example.org\n\
         virtual_mailbox_base = /var/mail/test\n\
         virtual_mailbox_maps = static:inbox/\n\
         virtual_uid_maps = static:65534\n\
         virtual_gid_maps = static:65534\n\
         alias_maps =\n\
         alias_database =\n\
         default_transport = discard:nothing leaves a test instance\n\
         relay_transport = discard:nothing leaves a test instance\n\
         biff = no\n\
         smtpd_banner = $myhostname ESMTP\n\
         {milter}",
        subnet = network.subnet,
        milter = documented_milter_settings(),
    )
}

/// master.cf: the services a delivery needs, no chroot.
const MASTER_CF: &str = "\
smtp      inet  n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
";

/// Writes a Postfix configuration file, backdated: Postfix waits for a
/// main.cf that was modified within the last second (it might be half
/// written).
fn write_backdated(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = podman::write_public(dir, name, text);
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(past))
        .unwrap_or_else(|e| panic!("backdate {name}: {e}"));
    path
}

pub fn sidecar_postfix_refuses_spf_fail_and_delivers_a_pass_with_tollgates_headers() -> TestResult {
    podman::require()?;
    let tollgate_image = super::images::tollgate().unwrap_or_else(|e| panic!("{e}"));
    let postfix_image = super::images::postfix().unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("ctr-sidecar");
    let maildir = dir.path().join("mail");
    e2e::make_dir(&maildir, 0o755, Some((65534, 65534)));

    let network = Network::create(&unique("sidecar"));
    let bridge = hold_bridge(&network, "sidecar");
    let dns = BridgeDns::start(ZONE, &network.gateway);

    // tollgate, known on the network as `tollgate`.
    let config = super::config(&dns, "");
    let config = podman::write_public(dir.path(), "milter.yaml", &config);
    let tollgate = Container::start(
        &unique("sidecar-tollgate"),
        &[
            "--network",
            &network.name,
            "--network-alias",
            "tollgate",
            "--volume",
            &format!("{}:/etc/tollgate/milter.yaml:ro", config.display()),
            tollgate_image,
        ],
    );
    // compose's `depends_on: condition: service_healthy`.
    e2e::wait_for(e2e::WAIT, "tollgate to be healthy", || {
        podman::run(&["healthcheck", "run", &tollgate.name])
            .status
            .success()
            .then_some(())
    });

    let main_cf = write_backdated(dir.path(), "main.cf", &main_cf(&network));
    let master_cf = write_backdated(dir.path(), "master.cf", MASTER_CF);
    note(format_args!(
        "main.cf:\n{}",
        std::fs::read_to_string(&main_cf).unwrap_or_default()
    ));
    let port = e2e::free_port();
    let postfix = Container::start(
        &unique("sidecar-postfix"),
        &[
            "--network",
            &network.name,
            "--hostname",
            "mx.example.org",
            "--publish",
            &format!("127.0.0.1:{port}:25"),
            "--volume",
            &format!("{}:/etc/postfix/main.cf:ro", main_cf.display()),
            "--volume",
            &format!("{}:/etc/postfix/master.cf:ro", master_cf.display()),
            "--volume",
            &format!("{}:/var/mail/test", maildir.display()),
            postfix_image,
            "sh",
            "-c",
            // Make the queue directories, then run Postfix in the
            // foreground as the container's main process.
            "postfix check && exec postfix start-fg",
        ],
    );
    e2e::wait_for(e2e::WAIT, "Postfix's smtpd to greet", || {
        assert!(postfix.running(), "Postfix stopped:\n{}", postfix.logs());
        Smtp::probe(port, Duration::from_millis(500)).then_some(())
    });

    // SPF fail: refused at RCPT with tollgate's reply.
    let mut smtp = Smtp::connect(port);
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    assert_eq!(
        smtp.mail("bob@forged.example.org").code,
        250,
        "{}",
        smtp.show()
    );
    let refused = smtp.rcpt("alice@example.org");
    note(format_args!("SMTP:\n{}", smtp.show()));
    assert_eq!(refused.code, 550, "{}", smtp.show());
    assert_eq!(
        format!("550 {}", refused.lines.join(" ")),
        FORGED_REPLY,
        "{}",
        smtp.show()
    );
    smtp.quit();

    // SPF pass: delivered with tollgate's headers.
    let mut smtp = Smtp::connect(port);
    smtp.ehlo("client.example.com");
    smtp.xclient("192.0.2.7", Some("mx.example.com"), "mx.example.com");
    assert_eq!(smtp.mail("carol@example.com").code, 250, "{}", smtp.show());
    assert_eq!(smtp.rcpt("alice@example.org").code, 250, "{}", smtp.show());
    let reply = smtp.data(&message("sidecar-pass-1", ""));
    assert_eq!(reply.code, 250, "{}", smtp.show());
    smtp.quit();
    let delivered = e2e::wait_for_delivery(&maildir, "sidecar-pass-1");
    assert_eq!(delivered.len(), 1);
    let mail = &delivered[0];
    note(format_args!("delivered:\n{}", mail.raw));
    let spf = mail.fields("Received-SPF");
    assert_eq!(spf.len(), 1, "{}", mail.raw);
    assert!(spf[0].starts_with("Received-SPF: pass "), "{}", spf[0]);
    let ar = mail.fields("Authentication-Results");
    assert!(
        ar.iter()
            .any(|f| f.starts_with("Authentication-Results: mx.example.org;")
                && f.contains("spf=pass")),
        "{}",
        mail.raw
    );
    // Postfix logged the refusal as the milter's.
    let log = postfix.logs();
    assert!(
        log.contains("milter-reject: RCPT from mx.example.com[192.0.2.7]: 550 5.7.23"),
        "{log}"
    );

    drop(postfix);
    drop(tollgate);
    drop(bridge);
    drop(network);
    Ok(())
}
