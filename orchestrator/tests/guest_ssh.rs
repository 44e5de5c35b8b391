//! The SSH worker against a real sshd: dropbear on 127.0.0.1 with a
//! throwaway host key. Dropbear takes authorized_keys from the user's home,
//! so it runs in a private mount namespace (`unshare -m`, or `-r -m` when
//! not root) with a temporary directory bind-mounted over that home.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kcycle::guest::{ssh, ExecRequest, KeyPair, Ssh, SshError, SshTarget};

struct Dropbear {
    child: Child,
    port: u16,
    _home: tempfile::TempDir,
    key: KeyPair,
}

impl Drop for Dropbear {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip_or_fail(why: &str) -> Option<Dropbear> {
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot run loopback dropbear: {why}"
    );
    eprintln!("skipping: cannot run loopback dropbear: {why}");
    None
}

fn start_dropbear() -> Option<Dropbear> {
    let home = tempfile::tempdir().unwrap();
    let key = match KeyPair::generate(home.path()) {
        Ok(key) => key,
        Err(err) => return skip_or_fail(&err.to_string()),
    };
    let ssh_dir = home.path().join(".ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    std::fs::write(ssh_dir.join("authorized_keys"), &key.public_line).unwrap();
    let host_key = home.path().join("host_key");
    let made = Command::new("dropbearkey")
        .args(["-t", "ed25519", "-f"])
        .arg(&host_key)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        return skip_or_fail("dropbearkey failed (install dropbear-bin)");
    }
    let port = kcycle::vm::free_port().unwrap();
    let is_root = unsafe { libc::geteuid() } == 0;
    let user_home = if is_root {
        "/root".to_string()
    } else {
        std::env::var("HOME").unwrap()
    };
    let script = format!(
        "mount --bind {home} {user_home} && exec dropbear -F -E -s -p 127.0.0.1:{port} -r {host_key}",
        home = home.path().display(),
        host_key = host_key.display(),
    );
    let unshare_args: &[&str] = if is_root { &["-m"] } else { &["-r", "-m"] };
    let child = Command::new("unshare")
        .args(unshare_args)
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(err) => return skip_or_fail(&format!("unshare: {err}")),
    };
    let mut server = Dropbear {
        child,
        port,
        _home: home,
        key,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || server.child.try_wait().unwrap().is_some() {
            return skip_or_fail("dropbear did not start listening (no mount namespace?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

fn connect(server: &Dropbear) -> Ssh {
    let target = SshTarget {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, server.port)),
        user: "root".into(),
        key: server.key.private.clone(),
    };
    let (session, socket) = ssh::connect_once(&target, Duration::from_secs(10)).unwrap();
    Ssh::start(session, socket).unwrap()
}

#[test]
fn exec_returns_status_stdout_and_stderr() {
    let Some(server) = start_dropbear() else {
        return;
    };
    let mut ssh = connect(&server);
    let out = ssh
        .exec(ExecRequest::new("echo out; echo err >&2; exit 3"))
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");

    let out = ssh
        .exec(ExecRequest::new("cat | wc -c").stdin(vec![b'x'; 100_000]))
        .unwrap();
    assert_eq!(out.stdout_text().trim(), "100000");
    assert!(out.success());
}

/// 4 MiB on stderr while stdout waits: a blocking reader of stdout would stall
/// once the stderr window fills.
#[test]
fn large_stderr_does_not_stall() {
    let Some(server) = start_dropbear() else {
        return;
    };
    let mut ssh = connect(&server);
    let out = ssh
        .exec(
            ExecRequest::new("head -c 4194304 /dev/zero >&2; echo done")
                .deadline(Duration::from_secs(60)),
        )
        .unwrap();
    assert_eq!(out.stderr.len(), 4 * 1024 * 1024);
    assert_eq!(out.stdout_text(), "done\n");
}

#[test]
fn inactivity_and_deadline_end_commands() {
    let Some(server) = start_dropbear() else {
        return;
    };
    let mut ssh = connect(&server);
    let err = ssh
        .exec(ExecRequest::new("echo hi; sleep 30").inactivity(Duration::from_millis(500)))
        .unwrap_err();
    assert!(
        matches!(&err, SshError::Inactive { stdout_tail, .. } if stdout_tail == "hi\n"),
        "{err}"
    );
    // The session survives an inactivity timeout.
    assert_eq!(
        ssh.exec(ExecRequest::new("echo again"))
            .unwrap()
            .stdout_text(),
        "again\n"
    );

    let started = Instant::now();
    let err = ssh
        .exec(
            ExecRequest::new("while true; do echo tick; sleep 0.1; done")
                .deadline(Duration::from_secs(1)),
        )
        .unwrap_err();
    assert!(matches!(err, SshError::Deadline { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "deadline enforced"
    );
    // After a deadline the session is closed; a new one works.
    assert!(matches!(
        ssh.exec(ExecRequest::new("true")),
        Err(SshError::Gone)
    ));
    let mut again = connect(&server);
    assert!(again.exec(ExecRequest::new("true")).unwrap().success());
}

#[test]
fn refused_login_is_a_clear_error() {
    let Some(server) = start_dropbear() else {
        return;
    };
    let other = tempfile::tempdir().unwrap();
    let stranger = KeyPair::generate(other.path()).unwrap();
    let target = SshTarget {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, server.port)),
        user: "root".into(),
        key: stranger.private,
    };
    let err = ssh::connect_once(&target, Duration::from_secs(10))
        .err()
        .unwrap();
    assert!(err.to_string().contains("public key auth"), "{err}");
}
