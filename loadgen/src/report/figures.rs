//! Every figure a report holds, declared once: the latency metrics in table order with the
//! views that show them, and the message counters. The terminal table, summary.md, report.html,
//! the comparison, the SLO lookup and `imbench merge` all take their names, order and sums
//! from here, so they cannot disagree.

use serde::{Deserialize, Serialize};

use crate::measure::counters::counters;
use crate::measure::metrics::Metric;
use crate::workload::groups::Bucket;

/// `fanout`: intended send → the last owed member received it (from the group ledger).
pub const FANOUT: &str = "fanout";
/// `fanout_spread`: first → last owed member receiving one group message.
pub const FANOUT_SPREAD: &str = "fanout_spread";

/// A latency figure and where it is shown.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// Its name in reports and SLOs.
    pub name: &'static str,
    /// Shown in the table even with no samples (the figures every run should have).
    pub always: bool,
    /// A row of the transport comparison.
    pub compared: bool,
    /// Drawn in report.html's latency-distribution plot.
    pub plotted: bool,
}

const fn figure(name: &'static str, always: bool, compared: bool, plotted: bool) -> Figure {
    Figure {
        name,
        always,
        compared,
        plotted,
    }
}

/// The latency figures every report lists, in table order. Those a run did not produce (group
/// and fanout without groups, the file ones without files) have count 0. Runs with groups add
/// the group figures per size bucket ([`bucket_names`]).
pub const FIGURES: [Figure; 14] = [
    figure(Metric::Connect.name(), true, true, true),
    figure(Metric::Reconnect.name(), false, true, true),
    figure(Metric::Ack.name(), true, true, true),
    figure(Metric::Direct.name(), true, true, true),
    figure(Metric::DirectUncorrected.name(), false, true, false),
    figure(Metric::DirectDuringFiles.name(), false, true, true),
    figure(Metric::DirectWithoutFiles.name(), false, true, false),
    figure(Metric::Group.name(), false, true, true),
    figure(FANOUT, false, true, true),
    figure(FANOUT_SPREAD, false, false, false),
    figure(Metric::File.name(), false, true, true),
    figure(Metric::ScheduleLag.name(), false, false, false),
    figure(Metric::SendDelay.name(), false, false, false),
    figure(Metric::Hiccup.name(), false, false, false),
];

/// The per-bucket figure names of `bucket`, in table order: `group_le10`, `fanout_le10`,
/// `fanout_spread_le10` and so on.
pub fn bucket_names(bucket: Bucket) -> [String; 3] {
    let b = bucket.suffix();
    [
        format!("{}_{b}", Metric::Group.name()),
        format!("{FANOUT}_{b}"),
        format!("{FANOUT_SPREAD}_{b}"),
    ]
}

/// The figures only planned disconnects (`[churn]`) give: counters, and the `reconnect`
/// latency.
pub const CHURN_FIGURES: [&str; 10] = [
    "reconnects",
    "redeliveries",
    "resent",
    "dropped_unanswered",
    "resumed",
    "zero_rtt",
    "zero_rtt_refused",
    "handovers",
    "migrations",
    "reconnect",
];

counters! {
    /// Message accounting after the drain.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Counters {
        /// Clients that connected.
        clients,
        /// Clients that could not connect.
        connect_failures,
        /// Clients whose connection ended before the run did.
        disconnects,
        /// Send frames written.
        sent,
        /// Acks received.
        acked,
        /// Sends refused by the server (Reject).
        rejected,
        /// Of `rejected`, those refused with `busy`: the server's queues were full (overload).
        #[serde(default)]
        rejected_busy,
        /// Deliveries expected: sent − rejected.
        expected,
        /// Distinct messages delivered intact.
        delivered,
        /// expected − delivered.
        lost,
        /// Deliveries of a message already delivered.
        duplicated,
        /// Deliveries that arrived after a later message of the same pair.
        reordered,
        /// Deliveries with a bad checksum or the wrong sender.
        corrupted,
        /// Error frames and transport failures.
        errors,
        /// Connections made again after a planned disconnect (`[churn]`).
        reconnects,
        /// Second copies that a reconnect explains, dropped by the recipient: the server sent
        /// again what the recipient had not confirmed when its connection dropped, or the
        /// sender sent again what it had no answer for.
        #[serde(default)]
        redeliveries,
        /// Messages sent again after a reconnect because no Ack or Reject had come for them.
        #[serde(default)]
        resent,
        /// Messages, direct and group, that a connection dropped on purpose (`[churn]`) took
        /// unanswered where nothing is sent again (at most once: MQTT at QoS 0): no Ack can
        /// come for them, and whether they arrived is in `delivered` and `lost`.
        #[serde(default)]
        dropped_unanswered,
        /// Connections whose TLS handshake offered the client's own session ticket from an
        /// earlier connection (`generator.resumption`); the server resumes unless it forgot the
        /// session.
        #[serde(default, deserialize_with = "null_as_zero")]
        resumed,
        /// Logins whose Hello went out as 0-RTT data and the server took (QUIC, `0rtt`).
        #[serde(default, deserialize_with = "null_as_zero")]
        zero_rtt,
        /// Logins whose Hello went out as 0-RTT data and the server refused: Hello was sent
        /// again once the handshake completed.
        #[serde(default, deserialize_with = "null_as_zero")]
        zero_rtt_refused,
        /// Planned disconnects that were handovers: the client changed networks and its
        /// address (`[churn] handover`).
        #[serde(default)]
        handovers,
        /// Handovers whose connection moved to the new address and carried on (QUIC
        /// connection migration); the others connected again.
        #[serde(default, deserialize_with = "null_as_zero")]
        migrations,
        /// File transfers offered.
        files_sent,
        /// Files that arrived whole with a matching SHA-256.
        files_verified,
        /// Offers the server refused (limits, recipient offline).
        #[serde(default)]
        files_refused,
        /// Files that arrived whole with a SHA-256 that does not match.
        #[serde(default)]
        files_corrupted,
        /// Transfers that ended early (cancelled, a side went away, a size mismatch).
        #[serde(default)]
        files_failed,
        /// Transfers still under way when the run ended.
        #[serde(default)]
        files_unfinished,
    }
}

/// Counters only imbench's own clients make: QUIC 0-RTT logins, TLS session resumption, QUIC
/// connection migration. Another system's clients make none, and their 0 means "not
/// measured", not "none happened": report.json writes them as `null` for such a run.
pub const OWN_CLIENTS_ONLY: [&str; 4] = ["zero_rtt", "zero_rtt_refused", "resumed", "migrations"];

/// A counter written as `null` where the run could not count it ([`OWN_CLIENTS_ONLY`] of
/// another system's run) reads back as 0, which the views show as not measured.
fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::Deserialize as _;
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

/// Which way a counter gets worse, for a regression gate (an SLO states its own direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worse {
    /// More is worse: a failure counted (`lost`, `errors`).
    Higher,
    /// Fewer is worse: work done (`delivered`, `clients`).
    Lower,
    /// Neither: what the scenario asked for, not how well it went (`handovers`).
    Neither,
}

/// Which way the counter `name` ([`Counters`] and the group ledger's counts) gets worse; `None`
/// for a name that is no counter. Every counter is named here: a test checks that none is
/// left out, so a new one cannot be gated the wrong way round by default.
pub fn counter_worse(name: &str) -> Option<Worse> {
    Some(match name {
        "connect_failures" | "disconnects" | "rejected" | "rejected_busy" | "lost"
        | "duplicated" | "reordered" | "corrupted" | "errors" | "resent" | "dropped_unanswered"
        | "zero_rtt_refused" | "files_refused" | "files_corrupted" | "files_failed"
        | "files_unfinished" | "incomplete" | "unexpected" => Worse::Higher,
        "clients" | "sent" | "acked" | "expected" | "delivered" | "delivered_expected"
        | "settled" | "resumed" | "zero_rtt" | "migrations" | "files_sent" | "files_verified" => {
            Worse::Lower
        }
        // Planned by the scenario's churn, or explained by it (a second copy after a
        // reconnect, a delivery to a member joining as the message was routed).
        "reconnects" | "handovers" | "redeliveries" | "race_delivered" => Worse::Neither,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_metric_is_a_figure_or_a_bucket() {
        let buckets: Vec<String> = Bucket::ALL.iter().flat_map(|&b| bucket_names(b)).collect();
        for m in Metric::ALL {
            let named = FIGURES.iter().any(|f| f.name == m.name());
            assert!(
                named || buckets.iter().any(|b| b == m.name()),
                "{} is recorded but no report shows it",
                m.name()
            );
        }
        let mut names: Vec<&str> = FIGURES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIGURES.len(), "a figure is declared twice");
    }

    #[test]
    fn every_counter_says_which_way_it_gets_worse() {
        let group = crate::measure::group_records::GroupCounts::NAMES;
        for name in Counters::NAMES.iter().chain(group) {
            assert!(counter_worse(name).is_some(), "{name} has no direction");
        }
        assert_eq!(counter_worse("lost"), Some(Worse::Higher));
        assert_eq!(counter_worse("delivered"), Some(Worse::Lower));
        assert_eq!(counter_worse("no_such_counter"), None);
    }

    #[test]
    fn counters_are_named_summed_and_looked_up_from_one_declaration() {
        let a = Counters {
            sent: 3,
            lost: 1,
            ..Counters::default()
        };
        let b = Counters {
            sent: 4,
            files_failed: 2,
            ..Counters::default()
        };
        let total = Counters::sum([&a, &b].into_iter());
        assert_eq!((total.sent, total.lost, total.files_failed), (7, 1, 2));
        assert_eq!(total.get("sent"), Some(7));
        assert_eq!(total.get("no_such_counter"), None);
        let json = serde_json::to_value(&total).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut names = Counters::NAMES.to_vec();
        names.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys, names,
            "report.json holds exactly the declared counters"
        );
        assert_eq!(total.each().len(), Counters::NAMES.len());
    }
}
