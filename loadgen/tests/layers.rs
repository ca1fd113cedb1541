//! The generator's layers, checked from its source: each module's `crate::` paths may only
//! point down the layers (`run` → `client` → {`driver`, `workload`, `measure`} → `config`;
//! `run` → `report` → {`measure`, `workload`, `config`}), and no chain of modules leads back
//! to where it started. A module's own tests and comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each layer may use besides itself.
const ALLOWED: &[(&str, &[&str])] = &[
    ("config", &[]),
    // Standard error's writer, under everything: `errln!` goes through it from any layer.
    ("stderr", &[]),
    ("workload", &["config"]),
    ("measure", &["workload", "config"]),
    ("driver", &["config"]),
    ("client", &["driver", "workload", "measure", "config"]),
    ("report", &["measure", "workload", "config"]),
    (
        "run",
        &[
            "client", "driver", "report", "measure", "workload", "config", "stderr", "",
        ],
    ),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `report/html.rs` → `report::html`; `report/mod.rs` → `report`; `lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its comments and its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b::…` path in `code`, as the longest module it names.
fn uses(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let tail = &rest[at + "crate::".len()..];
        assert!(
            !tail.starts_with('{'),
            "write `use crate::a::b` paths one by one, so this check sees them"
        );
        let path: String = tail
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut module = String::new();
        let mut candidate = String::new();
        for part in path.split("::").filter(|p| !p.is_empty()) {
            if !candidate.is_empty() {
                candidate.push_str("::");
            }
            candidate.push_str(part);
            if modules.contains(&candidate) {
                module = candidate.clone();
            }
        }
        found.insert(module);
        rest = tail;
    }
    found
}

fn layer(module: &str) -> &str {
    module.split("::").next().unwrap_or("")
}

#[test]
fn layers_point_one_way_and_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    // main.rs and cli/ are the imbench binary, a crate of its own on top of the library.
    let binary = src.join("cli");
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "main.rs") && !f.starts_with(&binary))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    assert!(modules.len() > 20, "{modules:?}");

    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let used: BTreeSet<String> = uses(&code(&text), &modules)
            .into_iter()
            .filter(|u| *u != module)
            .collect();
        if !module.is_empty() {
            let from = layer(&module);
            let allowed = ALLOWED
                .iter()
                .find(|(l, _)| *l == from)
                .map(|(_, a)| *a)
                .unwrap_or_else(|| panic!("{module}: in no layer"));
            for u in &used {
                let to = layer(u);
                if to != from && !allowed.contains(&to) {
                    wrong.push(format!("{module} uses {u}"));
                }
            }
        }
        graph.insert(module, used);
    }
    assert!(
        wrong.is_empty(),
        "uses against the layers:\n{}",
        wrong.join("\n")
    );

    // A cycle is a module reached again from itself.
    let mut cycles = Vec::new();
    for start in graph.keys().filter(|m| !m.is_empty()) {
        let mut stack: Vec<Vec<String>> = vec![vec![start.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for next in graph.get(last).into_iter().flatten() {
                if next.is_empty() {
                    continue;
                }
                if next == start {
                    cycles.push(format!("{} -> {start}", path.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_sees_a_use_against_the_layers() {
    let modules: BTreeSet<String> = ["run", "report", "report::html"]
        .into_iter()
        .map(String::from)
        .collect();
    let code = code("// crate::run in a comment\nuse crate::report::html::render;\nfn f() { crate::run::go() }\n#[cfg(test)]\nmod tests { use crate::run; }");
    let used = uses(&code, &modules);
    let expected: BTreeSet<String> = ["report::html", "run"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(used, expected);
    assert_eq!(layer("report::html"), "report");
}
