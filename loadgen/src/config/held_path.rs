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
        remove_stale(std::path::Path::new(DIR), imbench_netpath::netns::exists);
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

/// The client namespaces of the paths `imbench path` holds now (those recorded whose
/// namespace exists), in name order.
pub fn held_client_namespaces() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(DIR) else {
        return Vec::new();
    };
    let mut held: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let ns = path.file_stem()?.to_str()?.to_string();
            (path.extension()? == "json" && imbench_netpath::netns::exists(&ns)).then_some(ns)
        })
        .collect();
    held.sort();
    held
}

/// Removes the records of held paths whose client namespace is gone, as a run's own path
/// coming up removes their namespaces: nothing of a killed `imbench path` is left behind.
pub fn remove_stale_records() {
    remove_stale(std::path::Path::new(DIR), imbench_netpath::netns::exists);
}

/// Removes the records of paths whose client namespace is gone: a path whose process was
/// killed outright could not remove its record (its namespaces are removed by the next path
/// to come up), and a record must not name the path of a later namespace that happens to be
/// given the same name.
fn remove_stale(dir: &std::path::Path, namespace_exists: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = path.extension().is_some_and(|e| e == "json")
            && path
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|ns| !namespace_exists(ns));
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

impl Drop for HeldPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::remove_stale;

    #[test]
    fn a_record_whose_namespace_is_gone_is_removed_and_no_other_file() {
        let dir = std::env::temp_dir().join(format!("imbench-held-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        for name in [
            "imbench-1-0-client.json",
            "imbench-2-0-client.json",
            "notes.txt",
        ] {
            std::fs::write(dir.join(name), "{}").expect("a file");
        }
        remove_stale(&dir, |ns| ns == "imbench-2-0-client");
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .expect("the folder")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["imbench-2-0-client.json", "notes.txt"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
