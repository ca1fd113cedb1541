//! Measures the emulated path itself: UDP round trips through it at several configured
//! delays, beside the same pings over loopback, so the emulator's own cost and precision are
//! figures, not guesses; then TCP throughput through a bandwidth limit, and loss configured
//! against loss seen. Needs root.
//!
//! `cargo run --release -p imbench-netpath --example precision`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use imbench_netpath::{LinkSpec, NetPath, PathError, PathSpec, CLIENT_ADDR, SERVER_ADDR};

const PINGS: u32 = 400;

fn main() -> Result<(), PathError> {
    let io = |e: std::io::Error| PathError::Namespace(e.to_string());
    println!("one-way delay   pings   min       p50       p99       max   (round trip, µs)");
    let server = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    let client = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    show("loopback", &measure(server, client)?);
    for ms in [0u64, 1, 5, 20, 50] {
        let link = LinkSpec {
            delay: Duration::from_millis(ms),
            ..LinkSpec::default()
        };
        let path = NetPath::up(&PathSpec::symmetric(link), ms)?;
        let server = path
            .server_namespace()
            .run(move || UdpSocket::bind((SERVER_ADDR, 0)).map_err(io))?;
        let client = path
            .client_namespace()
            .run(move || UdpSocket::bind((CLIENT_ADDR, 0)).map_err(io))?;
        show(&format!("path {ms} ms"), &measure(server, client)?);
    }
    println!("\nbandwidth limit   TCP goodput over 4 MiB (no delay, no loss)");
    for mbit in [1u64, 10, 50] {
        let link = LinkSpec {
            rate_bps: Some(mbit * 1_000_000),
            ..LinkSpec::default()
        };
        let path = NetPath::up(&PathSpec::symmetric(link), mbit)?;
        let got = goodput(&path, if mbit == 1 { 1 << 20 } else { 4 << 20 })?;
        println!(
            "{mbit:>5} Mbit/s     {got:>8.2} Mbit/s ({:.1} %)",
            got * 100.0 / mbit as f64
        );
    }
    println!("\nloss configured   UDP packets lost one way, of 5,000 (path's own count)");
    for loss in [0.01, 0.03, 0.1] {
        let path = NetPath::up(
            &PathSpec {
                up: LinkSpec {
                    loss,
                    ..LinkSpec::default()
                },
                down: LinkSpec::default(),
                shared: false,
            },
            7,
        )?;
        let server = path
            .server_namespace()
            .run(move || UdpSocket::bind((SERVER_ADDR, 0)).map_err(io))?;
        let client = path
            .client_namespace()
            .run(move || UdpSocket::bind((CLIENT_ADDR, 0)).map_err(io))?;
        let to = server.local_addr().map_err(io)?;
        // Read as they come (a socket left unread would drop them itself), until 300 ms pass
        // without one.
        server
            .set_read_timeout(Some(Duration::from_millis(300)))
            .map_err(io)?;
        let counter = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let mut arrived = 0u32;
            while server.recv(&mut buf).is_ok() {
                arrived += 1;
            }
            arrived
        });
        for i in 0..5_000u32 {
            client.send_to(&i.to_be_bytes(), to).map_err(io)?;
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let arrived = counter
            .join()
            .map_err(|_| PathError::Namespace("the counter panicked".into()))?;
        let (up, _) = path.stats();
        println!(
            "{:>6.1} %          {:>5} lost ({:.2} %), path counted {}",
            loss * 100.0,
            5_000 - arrived,
            (5_000 - arrived) as f64 / 50.0,
            up.lost
        );
    }
    Ok(())
}

/// Sends `bytes` over TCP from the client side to the server side: Mbit/s of payload.
fn goodput(path: &NetPath, bytes: usize) -> Result<f64, PathError> {
    let io = |e: std::io::Error| PathError::Namespace(e.to_string());
    let listener = path
        .server_namespace()
        .run(move || TcpListener::bind((SERVER_ADDR, 0)).map_err(io))?;
    let addr = listener.local_addr().map_err(io)?;
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept()?;
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).map(|_| sink.len())
    });
    let mut stream = path
        .client_namespace()
        .run(move || TcpStream::connect(addr).map_err(io))?;
    let started = Instant::now();
    stream.write_all(&vec![7u8; bytes]).map_err(io)?;
    drop(stream);
    let got = reader
        .join()
        .map_err(|_| PathError::Namespace("the reader panicked".into()))?
        .map_err(io)?;
    Ok(got as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e6)
}

fn measure(server: UdpSocket, client: UdpSocket) -> Result<Vec<Duration>, PathError> {
    let to: SocketAddr = server
        .local_addr()
        .map_err(|e| PathError::Namespace(e.to_string()))?;
    server
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| PathError::Namespace(e.to_string()))?;
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..PINGS {
            match server.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let _ = server.send_to(&buf[..n], from);
                }
                Err(_) => return,
            }
        }
    });
    let _ = client.set_read_timeout(Some(Duration::from_secs(1)));
    let mut rtts = Vec::new();
    let mut buf = [0u8; 64];
    for i in 0..PINGS {
        let sent = Instant::now();
        if client.send_to(&i.to_be_bytes(), to).is_err() {
            break;
        }
        if client.recv(&mut buf).is_ok() {
            rtts.push(sent.elapsed());
        }
        // Spaced like light chat traffic, not back to back.
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = echo.join();
    rtts.sort();
    Ok(rtts)
}

fn show(what: &str, rtts: &[Duration]) {
    if rtts.is_empty() {
        println!("{what:<14} no answers");
        return;
    }
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize].as_micros();
    println!(
        "{what:<14} {:>6} {:>8} {:>9} {:>9} {:>9}",
        rtts.len(),
        at(0.0),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
