//! `imbench path`: brings up an emulated network path and holds it until Ctrl-C (or `--for`),
//! so that a server started by hand (imbench-server, nats-server, mosquitto) and `imbench run
//! --namespace` meet over it: the standalone setup, where `imbench run --network` puts the
//! embedded server on a path it makes itself.

use std::path::PathBuf;
use std::time::Duration;

use imbench_loadgen::config::held_path::{self, HeldPath};
use imbench_loadgen::config::network::NetworkSection;
use imbench_loadgen::{exit_code, Scenario};
use imbench_netpath::{NetPath, PathError, CLIENT_ADDR, SERVER_ADDR};

/// Holds the path asked for by `profile` or `scenario`'s `[network]`.
pub(crate) fn hold(
    profile: Option<&str>,
    scenario: Option<&PathBuf>,
    hold: Option<Duration>,
) -> u8 {
    if hold.is_some_and(|d| d.is_zero()) {
        imbench_loadgen::errln!("imbench: --for 0s would take the path down as it comes up: give a time to hold it (e.g. 10m), or leave --for out to hold it until Ctrl-C");
        return exit_code::USAGE;
    }
    let section = match (profile, scenario) {
        (Some(name), _) => NetworkSection::named(name),
        (None, Some(path)) => match Scenario::from_file(path) {
            Ok(s) => match s.network {
                Some(n) => n,
                None => {
                    imbench_loadgen::errln!(
                        "imbench: {} has no [network] section; give one, or --network PROFILE",
                        path.display()
                    );
                    return exit_code::USAGE;
                }
            },
            Err(e) => {
                // The scenario lists the profiles a run takes, loopback among them; a path to
                // hold is one of the others.
                use imbench_loadgen::config::network::{path_profile_names, profile_names};
                let said = e.to_string().replace(
                    &format!("known: {}", profile_names()),
                    &format!("known paths: {}", path_profile_names()),
                );
                imbench_loadgen::errln!("imbench: {said}");
                return exit_code::USAGE;
            }
        },
        (None, None) => {
            imbench_loadgen::errln!("imbench: give --network PROFILE or a scenario with [network]");
            return exit_code::USAGE;
        }
    };
    let spec = match section.path() {
        Ok(Some(spec)) => spec,
        // A scenario's [network] of profile loopback (--network's is refused as it is read).
        Ok(None) => {
            imbench_loadgen::errln!(
                "imbench: loopback is no path to hold; one of: {}",
                imbench_loadgen::config::network::path_profile_names()
            );
            return exit_code::USAGE;
        }
        Err(e) => {
            imbench_loadgen::errln!("imbench: {e}");
            return exit_code::USAGE;
        }
    };
    // A Ctrl-C while the path comes up is noted and taken once the path is held.
    let early = super::EarlyInterrupt::catch();
    sweep_leftovers();
    let path = match NetPath::up(&spec, 1) {
        Ok(path) => path,
        Err(e @ (PathError::NotRoot | PathError::Spec(_) | PathError::Tool(_))) => {
            imbench_loadgen::errln!("imbench: {e}");
            return exit_code::USAGE;
        }
        Err(e) => {
            imbench_loadgen::errln!("imbench: bringing up the network path: {e}");
            return exit_code::INVALID;
        }
    };
    let (server, client) = (
        path.server_namespace().name(),
        path.client_namespace().name(),
    );
    // Read by `imbench run --namespace`, whose report then names this path.
    let _record = match HeldPath::record(client, &section) {
        Ok(record) => Some(record),
        Err(e) => {
            imbench_loadgen::errln!(
                "imbench: warning: recording the path in {}: {e}; a run with --namespace will not name it in its report",
                held_path::DIR
            );
            None
        }
    };
    outln!(
        "network path {} is up: the server side is {SERVER_ADDR} in namespace {server}, the \
         clients {CLIENT_ADDR} in {client}\n\
         start a server on it:\n  ip netns exec {server} imbench-server --quic {SERVER_ADDR}:4433 --tcp {SERVER_ADDR}:4434 --tls {SERVER_ADDR}:4435\n\
         load it over the path:\n  imbench run {}--namespace {client} --server quic={SERVER_ADDR}:4433 --server tcp={SERVER_ADDR}:4434 --server tls={SERVER_ADDR}:4435 --secret-file imbench-server-files/secret --cert imbench-server-files/cert.pem\n\
         {}",
        section.describe(),
        scenario.map_or(String::new(), |p| format!("{} ", p.display())),
        match hold {
            Some(d) => format!(
                "the path stays up for {} or until Ctrl-C",
                humantime::format_duration(d)
            ),
            None => "Ctrl-C takes the path down".to_string(),
        }
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            imbench_loadgen::errln!("imbench: starting the tokio runtime: {e}");
            return exit_code::INVALID;
        }
    };
    runtime.block_on(async {
        let held = async {
            match hold {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = super::ctrl_c_or_term(&early) => {}
            _ = held => {}
        }
    });
    for side in [path.server_namespace(), path.client_namespace()] {
        let inside = side.other_processes();
        if !inside.is_empty() {
            // Their namespace outlives its name while they run, but no packet reaches them.
            imbench_loadgen::errln!(
                "imbench: warning: process {} still runs in {}; taking the path down cuts it off: stop it",
                pid_list(&inside),
                side.name()
            );
        }
    }
    let (up, down) = path.stats();
    drop(path);
    outln!(
        "network path down: clients to server {}; server to clients {}",
        up.summary(),
        down.summary()
    );
    exit_code::OK
}

/// Removes the namespaces of killed imbench processes before a path comes up (which would
/// remove them too, without a word), naming any process still running in one: cut off since
/// the process that held its path went, and still running.
pub(super) fn sweep_leftovers() {
    for swept in imbench_netpath::netns::remove_orphans() {
        let (which, runs, them) = match swept.pids.as_slice() {
            [_] => ("process", "runs", "it"),
            _ => ("processes", "run", "them"),
        };
        imbench_loadgen::errln!(
            "imbench: warning: removed {}, left by an imbench process that is gone, in which {which} {} still {runs}, cut off since that imbench process went: stop {them}",
            swept.name,
            pid_list(&swept.pids)
        );
    }
}

/// Process ids as a warning names them: `12, 34`.
fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
