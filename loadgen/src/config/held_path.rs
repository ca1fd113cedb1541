//! The path `imbench path` holds, recorded beside its namespaces: a run that joins the path's
//! client side (`imbench run --namespace`) names that path in its report, not whatever its
//! scenario's `[network]` says. One JSON file per held path under [`DIR`], named after the
//! client namespace, removed when the path goes down.

use std::path::PathBuf;

use super::network::NetworkSection;

/// Where the records live: a tmpfs only root writes, as the namespaces need root anyway.
pub const DIR: &str = "/run/imbench";

fn file_of(client_namespace: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("{client_namespace}.json"))
}

/// The record of a held path; dropping it removes the file.
#[derive(Debug)]
pub struct HeldPath {
    file: PathBuf,
}

impl HeldPath {
    /// Records that `section` is the path whose client side is `client_namespace`.
    pub fn record(client_namespace: &str, section: &NetworkSection) -> std::io::Result<Self> {
        std::fs::create_dir_all(DIR)?;
        let file = file_of(client_namespace);
        let text = serde_json::to_string_pretty(section).map_err(std::io::Error::other)?;
        std::fs::write(&file, text)?;
        Ok(Self { file })
    }

    /// The path held with its client side in `client_namespace`, if `imbench path` recorded
    /// one (a path held by a killed process may be gone with its namespace: the caller checks
    /// that the namespace exists).
    pub fn read(client_namespace: &str) -> Option<NetworkSection> {
        let text = std::fs::read_to_string(file_of(client_namespace)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

impl Drop for HeldPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}
