//! A large file through the server binary: its peak memory stays far below the file's size.
//! (A file of its own, so that a test process of its own keeps the measurement apart from
//! other tests.)

mod util;

use imbench_server::Secret;
use imbench_transport::{ClientTrust, Connector, QuicOptions};
use util::process::{memory_kib, start};

/// A file four times larger than the bound passes through the server on each transport, and
/// the server's peak memory grows by less than the bound: it never holds the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_passes_through_a_few_mib_of_server_memory() {
    const SIZE: u64 = 128 * 1024 * 1024;
    const BOUND_KIB: u64 = 32 * 1024;
    let server = start("files");
    let pid = server.child.id();
    let trust = ClientTrust::from_pem_file(&server.dir.join("cert.pem")).expect("cert.pem");
    let secret = Secret::from_file(&server.dir.join("secret")).expect("secret");
    let (_, before_kib) = memory_kib(pid);
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
        let recipient = 20 + i as u64;
        let mut alice = util::login(&connector, addr, &secret, 10 + i as u64).await;
        let mut bob = util::login(&connector, addr, &secret, recipient).await;
        let mut files = util::FileIn::new(&bob);
        util::offer(&mut alice, 1, recipient, SIZE)
            .await
            .expect("accepted");
        let writer = tokio::spawn(async move {
            let piece = util::file_content(1024 * 1024);
            let mut out = util::FileOut::open(&alice.link, 1).await;
            for _ in 0..SIZE / piece.len() as u64 {
                out.write(&mut alice, &piece).await.expect("written");
            }
            out.finish();
            alice
        });
        match files.drain(&mut bob).await {
            util::Received::Whole(..) => {}
            other => panic!("{transport}: expected the whole file, got {other:?}"),
        }
        writer.await.expect("writer");
        let (peak_kib, _) = memory_kib(pid);
        assert!(
            peak_kib < before_kib + BOUND_KIB,
            "{transport}: server peak memory {peak_kib} KiB, from {before_kib} KiB before a \
             {} MiB transfer",
            SIZE >> 20
        );
    }
}
