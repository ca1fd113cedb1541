//! Measures the emulated path itself: UDP round trips through it at several configured
//! delays, beside the same pings over loopback, so the emulator's own cost and precision are
//! figures, not guesses. Needs root.
//!
//! `cargo run --release -p imbench-netpath --example precision`

use std::net::{SocketAddr, UdpSocket};
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
        let path = NetPath::up(
            &PathSpec {
                up: link.clone(),
                down: link,
                shared: false,
            },
            ms,
        )?;
        let server = path
            .server_namespace()
            .run(move || UdpSocket::bind((SERVER_ADDR, 0)).map_err(io))?;
        let client = path
            .client_namespace()
            .run(move || UdpSocket::bind((CLIENT_ADDR, 0)).map_err(io))?;
        show(&format!("path {ms} ms"), &measure(server, client)?);
    }
    Ok(())
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
