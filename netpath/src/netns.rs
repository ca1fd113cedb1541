//! Network namespaces made for a path and removed with it. They are named
//! `imbench-<pid>-<n>-<role>` and created with iproute2's `ip netns`, so that `ip netns list`
//! shows them and `ip netns exec` can start a standalone server inside one. A thread joins a
//! namespace with setns(2); a socket keeps the namespace it was created in.
//!
//! A process killed outright cannot remove its namespaces; the next path to come up removes
//! those whose process is gone.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{setns, CloneFlags};

use crate::PathError;

/// Where iproute2 keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// The start of every namespace name this crate makes.
pub const PREFIX: &str = "imbench-";

/// A named network namespace, removed when dropped.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates `imbench-<pid>-<n>-<role>` (n counts the namespaces this process made), with
    /// its loopback up.
    pub fn create(role: &str) -> Result<Self, PathError> {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Processes with a thread in this namespace (`ip netns pids`), this one left out: a
    /// server started there that taking the path down would cut off.
    pub fn other_processes(&self) -> Vec<u32> {
        other_processes_in(&self.name)
    }

    /// Moves the calling thread into this namespace: sockets it creates from now on live
    /// here, and so do threads it starts.
    pub fn enter(&self) -> Result<(), PathError> {
        enter(&self.name)
    }

    /// Runs `f` on a thread of its own inside this namespace and returns what it returns.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, PathError> + Send + 'static,
    ) -> Result<T, PathError> {
        let file = File::open(Path::new(NETNS_DIR).join(&self.name))
            .map_err(|e| PathError::Namespace(format!("opening namespace {}: {e}", self.name)))?;
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("netns {name}"))
            .spawn(move || {
                setns(file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| PathError::Namespace(format!("entering namespace {name}: {e}")))?;
                f()
            })
            .map_err(|e| PathError::Namespace(format!("starting a thread: {e}")))?
            .join()
            .map_err(|_| PathError::Namespace("a thread in the namespace panicked".into()))?
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Moves the calling thread into the namespace called `name` (see [`Namespace::enter`]); for
/// a thread-start hook, which holds a name rather than the namespace.
pub fn enter(name: &str) -> Result<(), PathError> {
    let file = File::open(Path::new(NETNS_DIR).join(name))
        .map_err(|e| PathError::Namespace(format!("opening namespace {name}: {e}")))?;
    setns(file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| PathError::Namespace(format!("entering namespace {name}: {e}")))
}

/// The processes other than this one that run in namespace `name`.
fn other_processes_in(name: &str) -> Vec<u32> {
    let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() else {
        return Vec::new();
    };
    let own = std::process::id();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p != own)
        .collect()
}

/// Removes every namespace this process made, for an exit that will not run destructors
/// (a second Ctrl-C).
pub fn remove_own() {
    let own = format!("{PREFIX}{}-", std::process::id());
    for name in existing().into_iter().filter(|n| n.starts_with(&own)) {
        let _ = ip(&["netns", "del", &name]);
    }
}

/// Whether a named network namespace (any, not only this crate's) exists.
pub fn exists(name: &str) -> bool {
    !name.contains('/') && Path::new(NETNS_DIR).join(name).exists()
}

/// Names of this crate's namespaces that exist now.
pub fn existing() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect()
}

/// Whether process `pid` runs: a killed one its parent has not reaped yet (a zombie, state
/// `Z` in /proc/PID/stat) holds nothing any more.
fn running(pid: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(PathBuf::from("/proc").join(pid).join("stat")) else {
        return false;
    };
    // "PID (COMMAND) STATE …": the command may hold spaces and parentheses, the state
    // follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

/// The PID of the imbench process whose namespace `name` is, when that process is gone (killed
/// before it could remove it); `None` for a namespace of a running process, or not imbench's.
pub fn orphaned(name: &str) -> Option<String> {
    let pid = name.strip_prefix(PREFIX)?.split('-').next().unwrap_or("");
    (pid.is_empty() || !running(pid)).then(|| pid.to_string())
}

/// A namespace left by an imbench process that is gone, removed while other processes still
/// ran in it (a server started on a path's server side): its path went with its holder, so
/// nothing reached them before either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptWithProcesses {
    /// The namespace's name.
    pub name: String,
    /// The processes that ran in it.
    pub pids: Vec<u32>,
}

/// Removes namespaces left by imbench processes that are gone (killed before they could);
/// returns those in which other processes still ran, for the caller to say so.
pub fn remove_orphans() -> Vec<SweptWithProcesses> {
    let mut swept = Vec::new();
    for name in existing() {
        if orphaned(&name).is_some() {
            let pids = other_processes_in(&name);
            if ip(&["netns", "del", &name]).is_ok() && !pids.is_empty() {
                swept.push(SweptWithProcesses { name, pids });
            }
        }
    }
    swept
}

/// Runs iproute2's `ip` with `args`.
pub(crate) fn ip(args: &[&str]) -> Result<(), PathError> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        PathError::Tool(format!(
            "running `ip` (iproute2; on Debian: apt-get install iproute2): {e}"
        ))
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(PathError::Namespace(format!(
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::{orphaned, running};

    #[test]
    fn a_namespace_is_orphaned_when_its_imbench_process_is_gone() {
        let me = std::process::id();
        assert_eq!(orphaned(&format!("imbench-{me}-1-client")), None);
        assert_eq!(orphaned("imbench-0-1-client"), Some("0".to_string()));
        // Not imbench's: not ours to judge.
        assert_eq!(orphaned("other-0-client"), None);
    }

    #[test]
    fn a_process_runs_until_it_is_reaped_or_a_zombie() {
        assert!(running(&std::process::id().to_string()));
        assert!(!running("0"), "no such process");
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("true starts");
        let pid = child.id().to_string();
        // Exited and not yet waited for: a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while running(&pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!running(&pid), "an exited child not yet reaped");
        let _ = child.wait();
    }
}
