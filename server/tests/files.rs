//! File transfers through a real server: bytes arrive intact on every transport, chat keeps
//! flowing beside them, limits refuse with typed codes, and either side going away ends the
//! transfer on the other without a hang.

mod util;

use imbench_proto::{ErrorCode, Frame};
use imbench_server::Limits;
use imbench_transport::framed::FramedConnection;
use imbench_transport::Transport;
use util::{
    file_cancel, file_content, offer, read, send, start_over, FileIn, FileOut, Received, TestServer,
};

async fn a_file_arrives_whole_and_chat_passes_beside_it(transport: Transport) {
    let t = start_over(transport, Limits::default()).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    let mut bob_files = FileIn::new(&bob);
    // Not a multiple of the chunk size, and several chunks and stream windows long.
    let content = file_content(3 * 1024 * 1024 + 13);
    offer(&mut alice, 7, 2, content.len() as u64)
        .await
        .expect("accepted");
    // Written from a task of its own: the file is larger than the flow-control windows, so
    // the writes wait for Bob to read.
    let to_send = content.clone();
    let writer = tokio::spawn(async move {
        let mut out = FileOut::open(&alice.link, 7).await;
        let (head, tail) = to_send.split_at(to_send.len() / 2);
        out.write(&mut alice, head).await.expect("first half");
        alice
            .writer
            .write_frame(&send(1, 2, b"while the file flows"))
            .await
            .unwrap();
        out.write(&mut alice, tail).await.expect("second half");
        out.finish();
        alice
    });

    let mut chat_seen = false;
    let received = match transport {
        // Over QUIC the file has its own stream: read it and the chat connection at once.
        Transport::Quic => {
            let (header, stream) = bob_files.next_header(&mut bob).await;
            let reader = tokio::spawn(async move {
                let mut recv = stream.expect("a stream");
                let bytes = tokio::time::timeout(util::READ_LIMIT, recv.read_to_end(1 << 30))
                    .await
                    .expect("the stream ends within the limit")
                    .expect("whole stream");
                (header, bytes)
            });
            loop {
                if let Some(Frame::Deliver { .. }) = read(&mut bob).await {
                    chat_seen = true;
                    break;
                }
            }
            let (header, bytes) = reader.await.unwrap();
            Received::Whole(header, bytes)
        }
        _ => {
            // On one connection the chat frame comes between chunks.
            let got = bob_files.receive(&mut bob).await;
            chat_seen |= bob_files
                .skipped
                .iter()
                .any(|f| matches!(f, Frame::Deliver { from: 1, .. }));
            got
        }
    };
    let Received::Whole(header, bytes) = received else {
        panic!("expected the whole file, got {received:?}")
    };
    let Frame::FileIncoming {
        transfer_id,
        from,
        size,
        name,
        ..
    } = header
    else {
        panic!("expected FileIncoming, got {header:?}")
    };
    assert_eq!(from, 1);
    assert_eq!(size, content.len() as u64);
    assert_eq!(name, "test-7.bin");
    assert_ne!(
        transfer_id & imbench_proto::RELAY_ID_BIT,
        0,
        "relay ids are marked"
    );
    assert_eq!(bytes.len(), content.len());
    assert!(bytes == content, "every byte arrives, in order, unchanged");
    assert!(chat_seen, "the chat message arrived beside the file");
    let _alice = writer.await.unwrap();
    let stats = t.server.stats();
    assert_eq!(stats.transfers_started, 1);
    assert_eq!(stats.file_bytes, content.len() as u64);
    t.server.shutdown().await;
}
over_every_transport!(a_file_arrives_whole_and_chat_passes_beside_it);

/// On the byte-stream transports the chat message sent between the two halves of a file
/// reaches the recipient before the file's last chunk: chat is not queued behind the file.
#[tokio::test]
async fn on_one_connection_chat_overtakes_the_rest_of_a_file() {
    let t = start_over(Transport::Tcp, Limits::default()).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    let content = file_content(4 * 1024 * 1024);
    offer(&mut alice, 1, 2, content.len() as u64)
        .await
        .expect("accepted");
    let writer = tokio::spawn(async move {
        let mut out = FileOut::open(&alice.link, 1).await;
        out.write(&mut alice, &content[..64 * 1024]).await.unwrap();
        alice.writer.write_frame(&send(5, 2, b"hi")).await.unwrap();
        out.write(&mut alice, &content[64 * 1024..]).await.unwrap();
        alice
    });
    let mut file_bytes = 0usize;
    let mut chat_at = None;
    while file_bytes < 4 * 1024 * 1024 {
        match read(&mut bob).await {
            Some(Frame::FileChunk { data, .. }) => file_bytes += data.len(),
            Some(Frame::Deliver { .. }) => chat_at = Some(file_bytes),
            Some(_) => {}
            None => panic!("connection ended"),
        }
    }
    let chat_at = chat_at.expect("the chat message arrived");
    assert!(
        chat_at < 4 * 1024 * 1024,
        "chat arrived after {chat_at} file bytes, not after the whole file"
    );
    writer.await.unwrap();
    t.server.shutdown().await;
}

#[tokio::test]
async fn offers_over_the_limits_are_refused_with_typed_codes() {
    let limits = Limits {
        max_file_size: 1024 * 1024,
        transfers_per_user: 1,
        ..Limits::default()
    };
    let t = start_over(Transport::Tcp, limits).await;
    let mut alice = t.client(1).await;
    let _bob = t.client(2).await;
    assert_eq!(
        offer(&mut alice, 1, 99, 10).await,
        Err(ErrorCode::RECIPIENT_OFFLINE)
    );
    assert_eq!(
        offer(&mut alice, 2, 2, 1024 * 1024 + 1).await,
        Err(ErrorCode::FILE_TOO_LARGE)
    );
    // Ids with the top bit are the server's: the sender's own cancel of such a transfer would
    // be taken for a recipient's.
    assert_eq!(
        offer(&mut alice, imbench_proto::RELAY_ID_BIT | 6, 2, 10).await,
        Err(ErrorCode::UNKNOWN_TRANSFER)
    );
    alice
        .writer
        .write_frame(&Frame::FileOffer {
            transfer_id: 3,
            to: imbench_proto::Dest::Group(5),
            size: 10,
            sha256: [0; 32],
            name: "g".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        file_cancel(&mut alice, 3).await,
        ErrorCode::UNSUPPORTED_DEST
    );
    offer(&mut alice, 4, 2, 100).await.expect("first accepted");
    assert_eq!(
        offer(&mut alice, 5, 2, 100).await,
        Err(ErrorCode::TOO_MANY_TRANSFERS),
        "one transfer at a time"
    );
    // A chunk for a transfer that does not exist is answered, not fatal.
    alice
        .writer
        .write_frame(&Frame::FileChunk {
            transfer_id: 42,
            data: bytes::Bytes::from_static(b"x"),
        })
        .await
        .unwrap();
    assert_eq!(
        file_cancel(&mut alice, 42).await,
        ErrorCode::UNKNOWN_TRANSFER
    );
    assert_eq!(t.server.stats().transfers_refused, 5, "offers refused");
    t.server.shutdown().await;
}

/// Alice (user 1) half way through sending Bob (user 2) a file (transfer 1) of twice `half`
/// bytes, on a server with `limits`.
struct HalfWay {
    t: TestServer,
    alice: FramedConnection,
    bob: FramedConnection,
    bob_files: FileIn,
    out: FileOut,
    sent: usize,
}

async fn half_way(transport: Transport, limits: Limits, half: usize) -> HalfWay {
    let t = start_over(transport, limits).await;
    let mut alice = t.client(1).await;
    let bob = t.client(2).await;
    let bob_files = FileIn::new(&bob);
    let content = file_content(half);
    offer(&mut alice, 1, 2, 2 * content.len() as u64)
        .await
        .expect("accepted");
    let mut out = FileOut::open(&alice.link, 1).await;
    out.write(&mut alice, &content).await.unwrap();
    HalfWay {
        t,
        alice,
        bob,
        bob_files,
        out,
        sent: half,
    }
}

async fn a_sender_that_vanishes_ends_the_transfer_at_the_recipient(transport: Transport) {
    let HalfWay {
        t,
        alice,
        mut bob,
        mut bob_files,
        out,
        sent,
    } = half_way(transport, Limits::default(), 1024 * 1024).await;
    // Gone without a word, half way through.
    alice.link.abort(0, "vanishing");
    drop(out);
    drop(alice);
    match bob_files.receive(&mut bob).await {
        Received::Cancelled(code, got) => {
            assert_eq!(code, ErrorCode::TRANSFER_ABORTED);
            assert!(got <= sent);
        }
        other => panic!("expected the transfer to be cut short, got {other:?}"),
    }
    // Bob is still served.
    let mut carol = t.client(3).await;
    carol
        .writer
        .write_frame(&send(1, 2, b"still here"))
        .await
        .unwrap();
    loop {
        match read(&mut bob).await {
            Some(Frame::Deliver { from: 3, .. }) => break,
            Some(_) => continue,
            None => panic!("bob was disconnected"),
        }
    }
    t.server.shutdown().await;
}
over_every_transport!(a_sender_that_vanishes_ends_the_transfer_at_the_recipient);

/// A sender that stops sending half way is told its transfer stalled, as the recipient is: on
/// a byte stream it used to hear nothing, and its later chunks were dropped without a word.
async fn a_sender_that_stalls_is_told_so(transport: Transport) {
    let limits = Limits {
        file_idle_timeout: std::time::Duration::from_millis(500),
        ..Limits::default()
    };
    let HalfWay {
        t,
        mut alice,
        mut bob,
        mut bob_files,
        out,
        ..
    } = half_way(transport, limits, 64 * 1024).await;
    match bob_files.receive(&mut bob).await {
        Received::Cancelled(code, _) => assert_eq!(code, ErrorCode::TRANSFER_STALLED),
        other => panic!("expected the transfer to stall, got {other:?}"),
    }
    let told = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        file_cancel(&mut alice, 1),
    )
    .await
    .expect("the sender was not told");
    assert_eq!(told, ErrorCode::TRANSFER_STALLED);
    drop(out);
    t.server.shutdown().await;
}
over_every_transport!(a_sender_that_stalls_is_told_so);

async fn a_recipient_that_vanishes_frees_the_sender(transport: Transport) {
    let limits = Limits {
        transfers_per_user: 1,
        ..Limits::default()
    };
    let t = start_over(transport, limits).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    let mut bob_files = FileIn::new(&bob);
    let content = file_content(256 * 1024);
    offer(&mut alice, 1, 2, 64 * 1024 * 1024)
        .await
        .expect("accepted");
    let mut out = FileOut::open(&alice.link, 1).await;
    out.write(&mut alice, &content).await.unwrap();
    let _ = bob_files.next_header(&mut bob).await;
    bob.link.abort(0, "vanishing");
    drop(bob_files);
    drop(bob);
    // Alice keeps writing until the server tells her; she must not hang.
    let told = tokio::time::timeout(util::READ_LIMIT, async {
        let mut alice_writes = true;
        loop {
            if alice_writes && out.write(&mut alice, &content).await.is_err() {
                // Over QUIC the server stopped her stream; the FileCancel comes on the
                // connection.
                alice_writes = false;
            }
            let pause = std::time::Duration::from_millis(1);
            match tokio::time::timeout(pause, alice.reader.read_frame()).await {
                Ok(Ok(Some(Frame::FileCancel {
                    transfer_id: 1,
                    code,
                }))) => return code,
                Ok(Ok(Some(_))) | Err(_) => {}
                Ok(Ok(None)) | Ok(Err(_)) => panic!("alice was disconnected"),
            }
        }
    })
    .await
    .expect("the sender is told within the limit");
    assert_eq!(told, ErrorCode::TRANSFER_ABORTED);
    // The transfer's slot is free again.
    let _bob = t.client(2).await;
    offer(&mut alice, 2, 2, 10)
        .await
        .expect("a new transfer is accepted");
    t.server.shutdown().await;
}
over_every_transport!(a_recipient_that_vanishes_frees_the_sender);

async fn a_recipient_may_cancel(transport: Transport) {
    let t = start_over(transport, Limits::default()).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    let mut bob_files = FileIn::new(&bob);
    offer(&mut alice, 9, 2, 1 << 30).await.expect("accepted");
    let mut out = FileOut::open(&alice.link, 9).await;
    out.write(&mut alice, &file_content(64 * 1024))
        .await
        .unwrap();
    let (header, _stream) = bob_files.next_header(&mut bob).await;
    let Frame::FileIncoming { transfer_id, .. } = header else {
        panic!("expected FileIncoming")
    };
    bob.writer
        .write_frame(&Frame::FileCancel {
            transfer_id,
            code: ErrorCode::TRANSFER_ABORTED,
        })
        .await
        .unwrap();
    assert_eq!(
        file_cancel(&mut alice, 9).await,
        ErrorCode::TRANSFER_ABORTED
    );
    assert_eq!(t.server.stats().transfers_aborted, 1);
    t.server.shutdown().await;
}
over_every_transport!(a_recipient_may_cancel);

#[tokio::test]
async fn a_sender_that_sends_too_much_is_refused_and_the_recipient_told() {
    let t = start_over(Transport::Tcp, Limits::default()).await;
    let mut alice = t.client(1).await;
    let mut bob = t.client(2).await;
    let mut bob_files = FileIn::new(&bob);
    offer(&mut alice, 1, 2, 100).await.expect("accepted");
    let mut out = FileOut::open(&alice.link, 1).await;
    out.write(&mut alice, &file_content(101)).await.unwrap();
    assert_eq!(file_cancel(&mut alice, 1).await, ErrorCode::SIZE_MISMATCH);
    match bob_files.receive(&mut bob).await {
        Received::Cancelled(code, _) => assert_eq!(code, ErrorCode::TRANSFER_ABORTED),
        other => panic!("expected a cancelled transfer, got {other:?}"),
    }
    t.server.shutdown().await;
}
