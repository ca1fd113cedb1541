//! The imbench-server binary as a child process of a test, stopped by PID when the test ends.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imbench_transport::Transport;

/// A running imbench-server process and what it printed.
pub struct Server {
    pub child: Child,
    pub dir: std::path::PathBuf,
    pub addrs: Vec<(Transport, SocketAddr)>,
    /// What it printed before it was ready.
    pub banner: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stop only the process this test started, if it is still there.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn start(name: &str) -> Server {
    start_with_args(name, &[])
}

/// [`start`] with more flags for the server.
pub fn start_with_args(name: &str, more: &[&str]) -> Server {
    start_limited(name, more, None)
}

/// [`start_with_args`] in a process whose hard limit on open files is `files`.
pub fn start_limited(name: &str, more: &[&str], files: Option<u64>) -> Server {
    start_in(name, more, files, &[])
}

/// [`start`] with `env` added to the server's environment.
pub fn start_with_env(name: &str, env: &[(&str, &str)]) -> Server {
    start_in(name, &[], None, env)
}

fn start_in(name: &str, more: &[&str], files: Option<u64>, env: &[(&str, &str)]) -> Server {
    let dir =
        std::env::temp_dir().join(format!("imbench-server-bin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A file limit is set by the shell that then becomes the server (same PID): hard `files`,
    // soft half of it, so that the server has to raise it.
    let mut command = match files {
        None => Command::new(env!("CARGO_BIN_EXE_imbench-server")),
        Some(files) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!(
                    "ulimit -S -n {} && ulimit -H -n {files} && exec \"$0\" \"$@\"",
                    files / 2
                ))
                .arg(env!("CARGO_BIN_EXE_imbench-server"));
            sh
        }
    };
    let mut child = command
        .args([
            "--quic",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--client-dir",
        ])
        .arg(&dir)
        .args(more)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("imbench-server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut addrs = Vec::new();
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        banner.push(line.clone());
        let mut words = line.split_whitespace();
        if let (Some(t), Some(a)) = (words.next(), words.next()) {
            if let (Ok(t), Ok(a)) = (t.parse::<Transport>(), a.parse::<SocketAddr>()) {
                addrs.push((t, a));
            }
        }
        if line.starts_with("run a load") {
            break;
        }
    }
    Server {
        child,
        dir,
        addrs,
        banner,
    }
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Peak and current resident memory of process `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .expect("a memory field")
    };
    (field("VmHWM:"), field("VmRSS:"))
}

impl Server {
    /// The address the server listens on for `transport`.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|&(_, a)| a)
            .unwrap_or_else(|| panic!("no {transport} address"))
    }

    /// The token secret the server wrote for its clients.
    pub fn secret(&self) -> imbench_server::Secret {
        imbench_server::Secret::from_file(&self.dir.join("secret")).expect("secret")
    }

    /// A connector for `transport` that trusts the server's certificate.
    pub fn connector(&self, transport: Transport) -> imbench_transport::Connector {
        self.connector_with(transport, &imbench_transport::QuicOptions::default())
    }

    /// [`Server::connector`] with QUIC settings of the client's choosing.
    pub fn connector_with(
        &self,
        transport: Transport,
        quic: &imbench_transport::QuicOptions,
    ) -> imbench_transport::Connector {
        let trust = imbench_transport::ClientTrust::from_pem_file(&self.dir.join("cert.pem"))
            .expect("cert.pem");
        imbench_transport::Connector::new(
            transport,
            &trust,
            quic,
            1,
            self.addr(transport),
            imbench_proto::Codec::default(),
        )
        .expect("connector")
    }

    /// The rest of the banner line that starts with `prefix`; fails the test, showing the
    /// banner, when there is none.
    pub fn banner_line(&self, prefix: &str) -> &str {
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in {:?}", self.banner))
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        memory_kib(self.child.id()).1
    }
}
