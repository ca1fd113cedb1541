//! What tells the loads of two reports apart beyond their names, clients and rates: the
//! settings of the workload sections (bodies, partners, group sizes, file sizes, churn) that
//! differ between them. `imbench compare` names them, and does not gate one load against
//! another.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::scenario::Scenario;

/// A workload section of the scenario, and whether a scenario runs it: the settings of a
/// section that is off change nothing that runs.
type Section = (&'static str, fn(&Scenario) -> bool);

/// The sections that make the load.
const SECTIONS: [Section; 4] = [
    ("direct", |s| s.direct.rate > 0.0),
    ("groups", |s| s.groups.count > 0),
    ("files", |s| s.files.rate > 0.0),
    ("churn", |s| s.churn.enabled()),
];

/// Settings a load's description names already (its rates and the number of groups).
const DESCRIBED: [&str; 4] = ["direct.rate", "groups.rate", "groups.count", "files.rate"];

/// The workload settings whose values differ among `scenarios`, each as `name VALUE against
/// VALUE…` in the scenarios' order (`-` where one lacks the setting); a section is compared
/// among the scenarios that run it, and whether churn runs at all is a setting of its own.
pub fn differences(scenarios: &[&Scenario]) -> Vec<String> {
    let each: Vec<BTreeMap<String, String>> = scenarios.iter().map(|s| settings(s)).collect();
    let names: BTreeSet<&String> = each.iter().flat_map(BTreeMap::keys).collect();
    names
        .into_iter()
        .filter(|name| !DESCRIBED.contains(&name.as_str()))
        .filter_map(|name| {
            // A section's setting among the scenarios that run it; `churn` among all.
            let section = name.split_once('.').map(|(section, _)| section);
            let values: Vec<&str> = scenarios
                .iter()
                .zip(&each)
                .filter(|(s, _)| section.is_none_or(|section| runs(section, s)))
                .map(|(_, m)| m.get(name).map_or("-", String::as_str))
                .collect();
            let distinct: BTreeSet<&str> = values.iter().copied().collect();
            (distinct.len() > 1).then(|| {
                let mut shown = values.clone();
                shown.dedup();
                format!("{name} {}", shown.join(" against "))
            })
        })
        .collect()
}

/// Whether `scenario` runs `section`.
fn runs(section: &str, scenario: &Scenario) -> bool {
    SECTIONS
        .iter()
        .find(|(name, _)| *name == section)
        .is_none_or(|(_, on)| on(scenario))
}

/// The settings of the sections `scenario` runs, by dotted name (`direct.size.bytes`), and
/// `churn`: `on` or `off`.
fn settings(scenario: &Scenario) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let json = serde_json::to_value(scenario).unwrap_or_default();
    for (name, on) in SECTIONS {
        if on(scenario) {
            flatten(name, &json[name], &mut out);
        }
    }
    let churn = if scenario.churn.enabled() {
        "on"
    } else {
        "off"
    };
    out.insert("churn".to_string(), churn.to_string());
    out
}

/// Each leaf of `value` under `prefix`, as text.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, v) in fields {
                flatten(&format!("{prefix}.{key}"), v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::differences;
    use crate::config::scenario::Scenario;

    #[test]
    fn bodies_of_another_size_are_another_load_and_a_seed_is_not() {
        let base = Scenario::builtin_default();
        let mut other = base.clone();
        assert!(differences(&[&base, &other]).is_empty());
        other.seed = 99;
        other.quic.idle_timeout = std::time::Duration::from_secs(120);
        assert!(differences(&[&base, &other]).is_empty(), "not the load");
        other.direct.size = crate::config::scenario::SizeDist::Fixed { bytes: 61_440 };
        assert_eq!(
            differences(&[&base, &base, &other]),
            ["direct.size.bytes 100 against 61440"]
        );
        // A rate is in the load's description already.
        let mut faster = base.clone();
        faster.direct.rate = 2.0;
        assert!(differences(&[&base, &faster]).is_empty());
    }

    #[test]
    fn a_section_is_compared_among_the_scenarios_that_run_it() {
        let base = Scenario::builtin_default();
        let mut churning = base.clone();
        churning.churn.fraction = 0.5;
        churning.churn.rate = 1.0;
        assert_eq!(differences(&[&base, &churning]), ["churn off against on"]);
        // Group settings of a scenario without groups change nothing; with groups, they do.
        let mut no_groups = base.clone();
        no_groups.groups.senders = 7;
        assert!(differences(&[&base, &no_groups]).is_empty());
        let mut groups = base.clone();
        groups.groups.count = 5;
        let mut other_groups = groups.clone();
        other_groups.groups.senders = 7;
        assert_eq!(
            differences(&[&base, &groups, &other_groups]),
            ["groups.senders 0 against 7"]
        );
    }
}
