//! The imbench-server binary: it prints what it bound and writes what clients need, and on
//! SIGTERM or SIGINT it says Bye to its clients and exits by itself, reporting what it served.

mod util;

use std::process::Command;
use std::time::Duration;

use imbench_proto::Frame;
use imbench_server::Secret;
use imbench_transport::{ClientTrust, Connector, QuicOptions, Transport};
use util::process::{start, wait_exit};

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
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .expect("kill runs")
        .success());
    for conn in &mut clients {
        let frame = tokio::time::timeout(Duration::from_secs(10), conn.reader.read_frame())
            .await
            .expect("Bye within 10 s");
        assert!(
            matches!(frame, Ok(Some(Frame::Bye { ref reason })) if reason.contains("shutting down")),
            "{frame:?}"
        );
    }
    let status = wait_exit(&mut server.child, Duration::from_secs(10)).expect("exits by itself");
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    use std::io::Read;
    server
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr text");
    assert!(stderr.contains("served 2 sessions"), "{stderr}");
    assert!(
        stderr.contains("refused: 0 connections over the limit"),
        "{stderr}"
    );
}
