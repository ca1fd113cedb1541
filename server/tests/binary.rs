//! The imbench-server binary: it prints what it bound and writes what clients need, and on
//! SIGTERM or SIGINT it says Bye to its clients and exits by itself, reporting what it served.

mod util;

use std::process::Command;
use std::time::Duration;

use imbench_proto::Frame;
use imbench_server::Secret;
use imbench_transport::{ClientTrust, Connector, QuicOptions, Transport};
use util::process::{start, start_with_env, wait_exit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_bye_to_every_client_and_exits() {
    let mut server = start("term");
    assert_eq!(
        server.addrs.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![Transport::Quic, Transport::Tcp],
        "every bound address is printed"
    );
    let trust = ClientTrust::from_pem_file(&server.dir.join("cert.pem")).expect("cert.pem");
    let secret = Secret::from_file(&server.dir.join("secret")).expect("secret");
    let mut clients = Vec::new();
    for (i, &(transport, addr)) in server.addrs.iter().enumerate() {
        let connector = Connector::new(
            transport,
            &trust,
            &QuicOptions::default(),
            1,
            addr,
            imbench_proto::Codec::default(),
        )
        .expect("connector");
        clients.push(util::login(&connector, addr, &secret, i as u64 + 1).await);
    }
    terminate(&server);
    for conn in &mut clients {
        let frame = tokio::time::timeout(Duration::from_secs(10), conn.reader.read_frame())
            .await
            .expect("Bye within 10 s");
        assert!(
            matches!(frame, Ok(Some(Frame::Bye { ref reason })) if reason.contains("shutting down")),
            "{frame:?}"
        );
    }
    let stderr = last_words(&mut server);
    assert!(stderr.contains("served 2 sessions"), "{stderr}");
    assert!(
        stderr.contains("refused: 0 connections over the limit"),
        "{stderr}"
    );
}

/// A server shutting down turns new connections away at once: TCP's listener is closed (the
/// kernel refuses), QUIC's endpoint refuses each new handshake. A TCP listener left open took
/// connections into its backlog that nobody answered, which a client took for a port that
/// is not an imbench server's. A connection that sent no Hello keeps the shutdown going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutting_down_refuses_new_connections_at_once() {
    let server = util::process::start_with_args("refusing", &["--hello-timeout", "4s"]);
    let tcp = server.addr(Transport::Tcp);
    let quic = server.addr(Transport::Quic);
    let silent = tokio::net::TcpStream::connect(tcp).await.expect("connects");
    // Served: its session waits for a Hello, which holds the shutdown up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    terminate(&server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !has_exited(&server),
        "the silent connection holds the shutdown up"
    );
    let refused = tokio::net::TcpStream::connect(tcp).await;
    assert_eq!(
        refused.as_ref().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    let trust = ClientTrust::from_pem_file(&server.dir.join("cert.pem")).expect("cert.pem");
    let connector = Connector::new(
        Transport::Quic,
        &trust,
        &QuicOptions::default(),
        1,
        quic,
        imbench_proto::Codec::default(),
    )
    .expect("connector");
    let tried = std::time::Instant::now();
    let attempt =
        tokio::time::timeout(Duration::from_secs(3), connector.connect(quic, "localhost"))
            .await
            .expect("an answer within 3 s, not a handshake timeout");
    let error = attempt.err().expect("refused").to_string();
    assert!(
        error.contains("refused"),
        "{error} after {:?}",
        tried.elapsed()
    );
    drop(silent);
}

/// Whether the server has exited (without waiting).
fn has_exited(server: &util::process::Server) -> bool {
    // A process that has exited and not been waited for is a zombie (state Z).
    std::fs::read_to_string(format!("/proc/{}/stat", server.child.id())).is_ok_and(|status| {
        status
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// A file half sent when the server is stopped is counted in its last words as ended early:
/// the counters were read before the shutdown, which left it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_cut_by_the_shutdown_is_counted() {
    let mut server = start("cut");
    let &(transport, addr) = server
        .addrs
        .iter()
        .find(|a| a.0 == Transport::Tcp)
        .expect("a TCP address");
    let trust = ClientTrust::from_pem_file(&server.dir.join("cert.pem")).expect("cert.pem");
    let secret = Secret::from_file(&server.dir.join("secret")).expect("secret");
    let connector = Connector::new(
        transport,
        &trust,
        &QuicOptions::default(),
        1,
        addr,
        imbench_proto::Codec::default(),
    )
    .expect("connector");
    let mut alice = util::login(&connector, addr, &secret, 1).await;
    let _bob = util::login(&connector, addr, &secret, 2).await;
    let half = util::file_content(64 * 1024);
    util::offer(&mut alice, 1, 2, 2 * half.len() as u64)
        .await
        .expect("accepted");
    let mut out = util::FileOut::open(&alice.link, 1).await;
    out.write(&mut alice, &half).await.expect("half written");
    // The relay has the first half when the server is stopped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    terminate(&server);
    let stderr = last_words(&mut server);
    assert!(
        stderr.contains("files: 0 relayed, 1 ended early"),
        "{stderr}"
    );
}

/// A server whose standard error was closed (`imbench-server 2>&1 | head`) goes on serving
/// while it logs: a log line it cannot write is dropped. The logging library used to say so
/// with eprintln!, which panicked in whichever task logged, quinn's endpoint among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_standard_error_stops_no_one() {
    // Every connection logs at this level, on both sides of the server's code and quinn's.
    let mut server = start_with_env("stderr", &[("RUST_LOG", "trace")]);
    drop(server.child.stderr.take());
    for round in 0..2u64 {
        chat_round(&server, round).await;
    }
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the server exited"
    );
    terminate(&server);
    let status = wait_exit(&mut server.child, Duration::from_secs(10)).expect("exits by itself");
    assert!(status.success(), "{status:?}");
}

/// Limits written as the largest number (meaning none) are the most the server counts: it
/// panicked at start past tokio's semaphore limit (`--max-connections`), or at each login
/// (`--queue-capacity`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_written_as_the_largest_number_mean_none() {
    let most = u64::MAX.to_string();
    let limits = ["--max-connections", &most, "--queue-capacity", &most];
    let mut server = util::process::start_with_args("unbounded", &limits);
    chat_round(&server, 0).await;
    terminate(&server);
    let status = wait_exit(&mut server.child, Duration::from_secs(10)).expect("exits by itself");
    assert!(status.success(), "{status:?}");
}

/// A client over each of the server's addresses logs in (users `10 * round + 1` on), sends to
/// the next one (over the other transport) and gets the message the one before sent it.
async fn chat_round(server: &util::process::Server, round: u64) {
    let secret = server.secret();
    let mut clients = Vec::new();
    for (i, &(transport, addr)) in server.addrs.iter().enumerate() {
        let connector = server.connector(transport);
        let user = 10 * round + i as u64 + 1;
        let login = util::login(&connector, addr, &secret, user);
        let conn = tokio::time::timeout(Duration::from_secs(10), login)
            .await
            .unwrap_or_else(|_| panic!("round {round}: no login over {transport}"));
        clients.push((user, conn));
    }
    for k in 0..clients.len() {
        let to = clients[(k + 1) % clients.len()].0;
        clients[k]
            .1
            .writer
            .write_frame(&util::send(k as u64 + 1, to, b"still served"))
            .await
            .expect("send");
    }
    for (user, conn) in &mut clients {
        loop {
            match util::read(conn).await {
                Some(Frame::Deliver { .. }) => break,
                Some(_) => continue,
                None => panic!("round {round}: user {user} was disconnected"),
            }
        }
    }
}

/// What a stopped server said on its standard error, once it has exited by itself, and well.
fn last_words(server: &mut util::process::Server) -> String {
    use std::io::Read;
    let status = wait_exit(&mut server.child, Duration::from_secs(10)).expect("exits by itself");
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    server
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr text");
    stderr
}

/// Sends the server SIGTERM, as a service manager stops it.
fn terminate(server: &util::process::Server) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .expect("kill runs")
        .success());
}

/// The token secret is readable by its owner only: a secret file that others may read is
/// refused (anyone who reads it can log in as anyone), and the one the server writes is made
/// 0600 even where a file readable by all was there before.
#[test]
fn the_token_secret_is_never_left_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("imbench-secret-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let shared = dir.join("shared-secret");
    std::fs::write(&shared, Secret::generate().expect("secret").to_hex()).expect("write");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args(["--quic", "127.0.0.1:0", "--client-dir"])
        .arg(dir.join("files"))
        .arg("--secret-file")
        .arg(&shared)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "started with a shared secret");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    // A device is no secret file, and chmod on it no advice.
    let device = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args(["--quic", "127.0.0.1:0", "--client-dir"])
        .arg(dir.join("files"))
        .args(["--secret-file", "/dev/null"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&device.stderr);
    assert!(!device.status.success(), "started with /dev/null");
    assert!(
        stderr.contains("not a regular file") && !stderr.contains("chmod"),
        "{stderr}"
    );

    // A secret file left readable by all in the client folder is replaced by a private one:
    // not written through, so a reader that held the old file open learns nothing new, and a
    // symbolic link in its place is replaced, not followed.
    let mut server = util::process::start_with_args("secret-mode", &[]);
    let secret = server.dir.join("secret");
    let _ = server.child.kill();
    let _ = server.child.wait();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let old = std::fs::read_to_string(&secret).expect("old secret");
    let held_open = std::fs::File::open(&secret).expect("open");
    start_and_stop(&server.dir);
    let mode = std::fs::metadata(&secret)
        .expect("secret")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "secret left with mode {:o}",
        mode & 0o777
    );
    let mut through_old_handle = String::new();
    std::io::Read::read_to_string(&mut &held_open, &mut through_old_handle).expect("read");
    assert_eq!(
        through_old_handle, old,
        "the new secret was written through an open file"
    );
    assert_ne!(std::fs::read_to_string(&secret).expect("new"), old);

    let precious = dir.join("precious");
    std::fs::write(&precious, "precious data").expect("write");
    std::fs::remove_file(&secret).expect("remove");
    std::os::unix::fs::symlink(&precious, &secret).expect("symlink");
    start_and_stop(&server.dir);
    let kept = std::fs::read_to_string(&precious).expect("precious");
    let is_link = std::fs::symlink_metadata(&secret)
        .expect("secret")
        .file_type()
        .is_symlink();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        kept, "precious data",
        "the secret was written through a link"
    );
    assert!(!is_link, "the link is still there");
}

/// A second server on the folder of files for clients of one that runs is refused, and the
/// first one's secret and certificate stay as its clients have them.
#[test]
fn a_second_server_on_the_same_client_folder_is_refused() {
    let mut first = util::process::start_with_args("client-dir-twice", &[]);
    let files = client_files(&first.dir);
    let second = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args(["--tcp", "127.0.0.1:0", "--client-dir"])
        .arg(&first.dir)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    let _ = first.child.kill();
    let _ = first.child.wait();
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("of another imbench-server that is running"),
        "{stderr}"
    );
    // The reason, not a backtrace.
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert_eq!(client_files(&first.dir), files);
    // Once the first has stopped, the folder is free.
    start_and_stop(&first.dir);
    // A holder that lets go a moment after the start (a server killed just before, whose
    // process is still ending) is waited for, not taken for one that runs.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(first.dir.join(".lock"))
        .expect("the lock file");
    lock.lock().expect("held");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        drop(lock);
    });
    start_and_stop(&first.dir);
    release.join().expect("released");
}

/// Starts the server binary on `client_dir` until it has said where its secret is, then stops
/// it.
/// What a running server wrote for its clients into `client_dir`: its certificate and its
/// secret, which no other start may replace.
fn client_files(client_dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let read = |name: &str| std::fs::read(client_dir.join(name)).expect(name);
    (read("cert.pem"), read("secret"))
}

fn start_and_stop(client_dir: &std::path::Path) {
    use std::io::BufRead;
    let mut server = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args(["--quic", "127.0.0.1:0", "--client-dir"])
        .arg(client_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = server.stdout.take().expect("stdout");
    let said = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("token secret"));
    let _ = server.kill();
    let _ = server.wait();
    assert!(said, "the server did not start");
}

/// The command the banner gives for a load names a certificate only when a transport checks
/// one (tcp and ws do not), and one address per transport.
#[test]
fn the_suggested_command_gives_a_certificate_only_to_a_transport_that_checks_one() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("imbench-banner-cert-{}", std::process::id()));
    for (listen, with_cert) in [
        (&["--tcp", "--ws"][..], false),
        (&["--tcp", "--tls"], true),
        (&["--tcp", "--tcp"], false),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        let mut args: Vec<&str> = Vec::new();
        for flag in listen {
            args.extend([*flag, "127.0.0.1:0"]);
        }
        let mut server = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
            .args(&args)
            .arg("--client-dir")
            .arg(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starts");
        let stdout = server.stdout.take().expect("stdout");
        let command = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.trim_start().starts_with("imbench run "));
        let _ = server.kill();
        let _ = server.wait();
        let command = command.expect("the banner gives a command");
        assert_eq!(
            command.contains("--cert "),
            with_cert,
            "{listen:?}: {command}"
        );
        assert!(command.contains("--secret-file "), "{command}");
        // One address per transport, as `imbench run` takes: two of one are refused there.
        for t in ["tcp", "ws", "tls"] {
            let given = command.matches(&format!("--server {t}=")).count();
            assert!(given <= 1, "{listen:?}: {command}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate of the user's own (`--cert`) for a name, not the address clients dial: the
/// banner says what it is valid for and its command names the server to check; one that has
/// expired and is a CA's is warned of at start, as clients will refuse it.
#[test]
fn a_given_certificate_for_another_name_is_named_in_the_command_and_its_faults_warned_of() {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("imbench-given-cert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params =
        rcgen::CertificateParams::new(vec!["chat.example.com".into()]).expect("a name");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("a certificate");
    std::fs::write(dir.join("c.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("k.pem"), key.serialize_pem()).expect("write");
    let mut server = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args(["--quic", "127.0.0.1:0", "--cert", "c.pem", "--key", "k.pem"])
        .args(["--client-dir", "files"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let banner = read_banner(server.stdout.take().expect("stdout"));
    terminate_child(&mut server);
    let mut stderr = String::new();
    let _ = server
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        banner.contains("(valid for chat.example.com until 2021-01-01)"),
        "{banner}"
    );
    assert!(
        banner.contains(" --server-name chat.example.com "),
        "{banner}"
    );
    assert!(
        stderr.contains("--cert c.pem: it expired on 2021-01-01"),
        "{stderr}"
    );
    assert!(stderr.contains("it is a CA's certificate"), "{stderr}");
}

/// The banner's lines, up to and including the command it gives.
fn read_banner(stdout: std::process::ChildStdout) -> String {
    use std::io::BufRead;
    let mut banner = String::new();
    for line in std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
    {
        banner.push_str(&line);
        banner.push('\n');
        if line.trim_start().starts_with("imbench run ") {
            break;
        }
    }
    banner
}

/// Stops a server this test started, by its PID, and waits for it.
fn terminate_child(server: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-s", "TERM", &server.id().to_string()])
        .status();
    if util::process::wait_exit(server, std::time::Duration::from_secs(10)).is_none() {
        let _ = server.kill();
        let _ = server.wait();
    }
}

/// A server listening on a wildcard address makes its certificate for every address of the
/// machine's interfaces (not link-local), names them in its banner, and a client dialling
/// any of them verifies it.
#[test]
fn a_wildcard_listener_has_a_certificate_for_each_interface_address() {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
    let server = util::process::start_with_args("wildcard", &["--tls", "0.0.0.0:0"]);
    let line = server
        .banner
        .iter()
        .find(|l| l.starts_with("certificate for clients:"))
        .expect("the banner names the certificate");
    let names: Vec<&str> = line
        .split_once("(valid for ")
        .and_then(|(_, n)| n.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the banner names what the certificate is for: {line}"))
        .split(", ")
        .collect();
    // IPv4's wildcard: the machine's IPv4 addresses.
    let interfaces: Vec<std::net::Ipv4Addr> = nix::ifaddrs::getifaddrs()
        .expect("interfaces")
        .filter_map(|i| Some(i.address?.as_sockaddr_in()?.ip()))
        .collect();
    for ip in &interfaces {
        assert!(names.contains(&ip.to_string().as_str()), "{ip} in {line}");
    }
    let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(server.dir.join("cert.pem"))
        .expect("cert.pem")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(chain[0].clone()).expect("a root");
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("a verifier");
    for name in names.iter().copied().chain(["203.0.113.9"]) {
        let server_name = ServerName::try_from(name.to_string()).expect("a name");
        let verified = rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &chain[0],
            &[],
            &server_name,
            &[],
            UnixTime::now(),
        );
        // An address the machine does not have is the check that verification can fail.
        assert_eq!(
            verified.is_ok(),
            name != "203.0.113.9",
            "{name}: {verified:?}"
        );
    }
}

/// Limits that would refuse everyone, or cut off every recipient at its first message, are
/// refused before the server starts, naming the flag (exit 2).
#[test]
fn limits_that_make_no_sense_are_refused_before_starting() {
    for (flag, value) in [
        ("--max-connections", "0"),
        ("--max-body", "0"),
        ("--max-file-size", "0"),
        ("--transfers-per-user", "0"),
        ("--max-group-members", "0"),
        ("--groups-per-user", "0"),
        ("--queue-capacity", "0"),
        ("--session-queue-bytes", "10"),
        ("--max-queued-bytes", "1KiB"),
        ("--hold-bytes", "1KiB"),
        ("--write-timeout", "0s"),
        ("--hello-timeout", "0s"),
        ("--file-idle-timeout", "1ns"),
        ("--write-timeout", "25h"),
        // A negative time names its flag too.
        ("--write-timeout", "-1s"),
        ("--quic-ack-frequency", "often"),
        ("--quic-ack-frequency", "99999999999"),
        ("--quic-ack-frequency", "-3"),
        // A negative number names its flag, not "unexpected argument '-1'".
        ("--queue-capacity", "-1"),
        ("--hold-per-user", "-1"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
            .args(["--quic", "127.0.0.1:0", "--client-dir"])
            .arg(std::env::temp_dir().join(format!("imbench-limits-{}", std::process::id())))
            .args([flag, value])
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

/// An address given twice for one kind of socket is refused by name before the server starts,
/// not left to fail as "address in use"; QUIC and TCP on one port are two sockets, and fine.
#[test]
fn an_address_given_twice_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("imbench-twice-{}", std::process::id()));
    for (args, refused) in [
        (
            &["--tcp", "127.0.0.1:45991", "--tcp", "127.0.0.1:45991"][..],
            Some("--tcp and --tcp"),
        ),
        (
            &["--tcp", "127.0.0.1:45991", "--ws", "127.0.0.1:45991"][..],
            Some("--tcp and --ws"),
        ),
        (
            &["--tcp", "127.0.0.1:45991", "--metrics-addr", "45991"][..],
            Some("--tcp and --metrics-addr"),
        ),
        (
            &["--quic", "127.0.0.1:0", "--quic", "127.0.0.1:0"][..],
            None,
        ),
        (
            &["--tcp", "0.0.0.0:45991", "--tls", "127.0.0.1:45991"][..],
            Some("--tcp and --tls"),
        ),
        (
            &["--quic", "[::]:45991", "--quic", "127.0.0.1:45991"][..],
            Some("--quic and --quic"),
        ),
    ] {
        let mut server = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
            .args(args)
            .arg("--client-dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        match refused {
            Some(flags) => {
                let out = server.wait_with_output().expect("exits");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
                assert!(
                    (stderr.contains("127.0.0.1:45991 is given twice")
                        || stderr.contains("45991 and 127.0.0.1:45991 overlap"))
                        && stderr.contains(flags),
                    "{args:?}: {stderr}"
                );
            }
            None => {
                // Still running after a moment: it bound both.
                std::thread::sleep(Duration::from_millis(500));
                assert!(
                    server.try_wait().expect("alive?").is_none(),
                    "{args:?} exited"
                );
                server.kill().expect("stopped");
                let _ = server.wait();
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second start that fails (here its port is the first server's) leaves the first server's
/// certificate and secret as they were: its clients keep working. It used to write both before
/// binding, so that an accidental second start cut every new client off the first server.
#[test]
fn a_start_that_fails_does_not_replace_the_running_servers_files() {
    let first = start("files-kept");
    let files = client_files(&first.dir);
    let taken = first.addr(Transport::Tcp).to_string();
    let second = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args(["--tcp", &taken, "--client-dir"])
        .arg(&first.dir)
        .output()
        .expect("runs");
    assert!(!second.status.success(), "a second server bound {taken}");
    assert_eq!(client_files(&first.dir), files);
    // Nor does it leave a folder of files for clients it made for itself.
    let fresh = first.dir.join("never-used").join("nor-this");
    let third = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args(["--tcp", &taken, "--client-dir"])
        .arg(&fresh)
        .output()
        .expect("runs");
    assert!(!third.status.success(), "a third server bound {taken}");
    // Nor one that fails later, with its listeners bound and its files written: here its
    // metrics port is taken.
    let fourth = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args([
            "--tcp",
            "127.0.0.1:0",
            "--metrics-addr",
            &taken,
            "--client-dir",
        ])
        .arg(&fresh)
        .output()
        .expect("runs");
    assert!(!fourth.status.success(), "metrics served on {taken}");
    assert!(
        !first.dir.join("never-used").exists(),
        "{} was left",
        fresh.display()
    );
}

/// A listening address may name its host (`localhost:PORT`), as a client's `--server` may: the
/// server listens on the address the name resolves to, IPv4 first.
#[test]
fn a_listening_address_may_name_its_host() {
    let server = util::process::start_with_args("named", &["--ws", "localhost:0"]);
    let ws = server.addr(Transport::Ws);
    assert_eq!(
        ws.ip(),
        std::net::IpAddr::from([127, 0, 0, 1]),
        "{:?}",
        server.banner
    );
    assert_ne!(ws.port(), 0);
    std::net::TcpStream::connect(ws).expect("the server listens there");
}

/// `--cert-name` names the certificate the server makes; with `--cert` it would change nothing,
/// and is refused.
#[test]
fn a_certificate_name_beside_a_certificate_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args(["--cert", "c.pem", "--key", "k.pem", "--cert-name", "foo"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--cert-name"), "{stderr}");
    // A key without its certificate, beside a name: refused too, not ignored.
    let out = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .args([
            "--key",
            "k.pem",
            "--cert-name",
            "foo",
            "--tcp",
            "127.0.0.1:0",
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--key goes with --cert"), "{stderr}");
    // A name no client can dial: refused, not a server that starts (and is stopped here).
    for name in ["", " ", "a b"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_imbench-server"))
            .args(["--cert-name", name, "--tcp", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("waits") {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{name:?}: {stderr}");
        assert!(stderr.contains("no name a client can dial"), "{stderr}");
    }
}

/// Help printed to a standard output that fails is said to be lost (clap's own printing said
/// nothing and exited 0); a reader that went away is no failure.
#[test]
fn help_that_cannot_be_written_is_said_to_be_lost() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .arg("--help")
        .stdout(full)
        .output()
        .expect("runs imbench-server");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("what it printed was lost"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imbench-server"))
        .arg("--version")
        .output()
        .expect("runs imbench-server");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("imbench-server "),
        "{out:?}"
    );
}
