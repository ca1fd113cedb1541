//! Groups the embedded server would refuse, refused before the run: a client in more groups
//! than a user may be in there, or a group larger than it takes. Every Join past a limit would
//! be refused, the clients would wait on them, and the run would measure nothing it was asked
//! to (a million groups among 50 clients ran 15 s into 2.5 million errors). A server of the
//! user's own has limits of its own, which its refusals name.

use crate::config::scenario::{Scenario, ScenarioError};
use crate::workload::groups::GroupPlan;

use super::RunError;

/// Before the plan is drawn, on what every plan of the scenario has: memberships past the
/// limit on average (a plan of 16 million groups takes gigabytes and seconds to draw, only to
/// be refused).
pub(super) fn check_memberships(s: &Scenario) -> Result<(), RunError> {
    if s.groups.count == 0 || s.clients == 0 {
        return Ok(());
    }
    let limit = imbench_server::Limits::default().groups_per_user;
    let smallest = s.groups.members.bounds().0.min(s.clients);
    let average = (s.groups.count as f64 * smallest as f64 / s.clients as f64).ceil();
    if average <= limit as f64 {
        return Ok(());
    }
    Err(refusal(format!(
        "{} groups of at least {smallest} members among {} clients put each client in {average:.0} groups or more, and the embedded server lets a user be in {limit} (imbench-server --groups-per-user)",
        s.groups.count, s.clients
    )))
}

/// On the plan drawn: the client in most groups, and the largest group.
pub(super) fn check_plan(plan: &GroupPlan) -> Result<(), RunError> {
    let limits = imbench_server::Limits::default();
    let most_groups = plan.roles.iter().map(Vec::len).max().unwrap_or(0);
    let largest = plan
        .groups
        .iter()
        .map(|g| g.members.len())
        .max()
        .unwrap_or(0);
    if most_groups > limits.groups_per_user {
        return Err(refusal(format!(
            "a client is in {most_groups} of the scenario's groups, and the embedded server lets a user be in {} (imbench-server --groups-per-user)",
            limits.groups_per_user
        )));
    }
    if largest > limits.max_group_members {
        return Err(refusal(format!(
            "a group has {largest} members, and the embedded server takes {} (imbench-server --max-group-members)",
            limits.max_group_members
        )));
    }
    Ok(())
}

fn refusal(why: String) -> RunError {
    RunError::Scenario(ScenarioError::Invalid(format!(
        "groups: {why}: give fewer or smaller groups, or more clients, or run a server of your own with a higher limit (--server)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(count: usize, clients: usize) -> GroupPlan {
        let mut s = Scenario::builtin_default();
        s.clients = clients;
        s.groups.count = count;
        s.groups.rate = 1.0;
        GroupPlan::new(&s)
    }

    #[test]
    fn groups_past_the_embedded_servers_limits_are_refused_before_the_run() {
        assert!(check_plan(&plan(20, 1000)).is_ok());
        // Refused before a plan is drawn when the average alone is past the limit.
        let mut huge = Scenario::builtin_default();
        (huge.clients, huge.groups.count, huge.groups.rate) = (50, 16_000_000, 1.0);
        let err = check_memberships(&huge).unwrap_err().to_string();
        assert!(err.contains("groups or more"), "{err}");
        let mut fine = huge.clone();
        fine.groups.count = 20;
        assert!(check_memberships(&fine).is_ok());
        let err = check_plan(&plan(50_000, 50)).unwrap_err().to_string();
        assert!(
            err.contains("the embedded server lets a user be in 1000"),
            "{err}"
        );
    }

    #[test]
    fn a_group_larger_than_the_embedded_server_takes_is_refused() {
        let mut s = Scenario::builtin_default();
        (s.clients, s.groups.count, s.groups.rate) = (20_000, 1, 1.0);
        s.groups.members = crate::config::scenario::GroupSize::Fixed { size: 20_000 };
        let err = check_plan(&GroupPlan::new(&s)).unwrap_err().to_string();
        assert!(err.contains("a group has 20000 members"), "{err}");
    }
}
