//! One client's agenda: its direct, group and file schedules merged into one sequence of
//! actions, earliest first (on a tie: direct, then group, then file). Connection churn is not
//! here: it belongs to the client's connection and interrupts the agenda.

use crate::config::scenario::Scenario;
use crate::workload::files::{FileDue, FileSchedule};
use crate::workload::groups::{GroupEvent, GroupPlan, GroupSchedule};
use crate::workload::schedule::{Due, Schedule};

/// The client's next scheduled action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// A direct message.
    Direct(Due),
    /// A group message or a membership change, at its time.
    Group(u64, GroupEvent),
    /// A file transfer to start.
    File(FileDue),
}

impl Action {
    /// When it is due (µs since run start).
    pub fn at_us(&self) -> u64 {
        match self {
            Action::Direct(d) => d.at_us,
            Action::Group(at, _) => *at,
            Action::File(f) => f.at_us,
        }
    }
}

/// The merged schedules of one client.
pub struct Agenda {
    direct: Option<Schedule>,
    next_direct: Option<Due>,
    group: Option<GroupSchedule>,
    files: Option<FileSchedule>,
}

impl Agenda {
    /// Client `index`'s agenda from `start_us`.
    pub fn new(s: &Scenario, plan: &GroupPlan, index: usize, start_us: u64) -> Self {
        let mut direct = Schedule::new(s, index, start_us);
        let next_direct = direct.as_mut().map(Schedule::next_due);
        Self {
            direct,
            next_direct,
            group: GroupSchedule::new(s, plan, index, start_us),
            files: FileSchedule::new(s, index, start_us),
        }
    }

    /// Whether the client has nothing to do at all.
    pub fn is_empty(&self) -> bool {
        self.direct.is_none() && self.group.is_none() && self.files.is_none()
    }

    /// The user ids of the client's direct-chat partners, by [`Due::partner`].
    pub fn partners(&self) -> &[u64] {
        self.direct.as_ref().map_or(&[], |d| &d.partners)
    }

    /// When the next action is due; `u64::MAX` when there is none.
    pub fn next_at(&self) -> u64 {
        let (direct, group, file) = self.due_times();
        direct.min(group).min(file)
    }

    /// When each schedule's next action is due (`u64::MAX` for none): direct, group, file.
    fn due_times(&self) -> (u64, u64, u64) {
        (
            self.next_direct.map_or(u64::MAX, |d| d.at_us),
            self.group.as_ref().map_or(u64::MAX, GroupSchedule::next_at),
            self.files.as_ref().map_or(u64::MAX, FileSchedule::next_at),
        )
    }

    /// The next action, taken off the agenda.
    pub fn take(&mut self) -> Option<Action> {
        let (direct, group, file) = self.due_times();
        if direct <= group && direct <= file {
            let due = self.next_direct?;
            self.next_direct = self.direct.as_mut().map(Schedule::next_due);
            Some(Action::Direct(due))
        } else if group <= file {
            let (at, e) = self.group.as_mut()?.take_next();
            Some(Action::Group(at, e))
        } else {
            Some(Action::File(self.files.as_mut()?.take_next()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_come_in_time_order_from_every_schedule() {
        let text = format!(
            "{}\n[groups]\ncount = 2\nmembers = {{ dist = \"fixed\", size = 5 }}\nrate = 20.0\n\
             [files]\nrate = 2.0\nsize = {{ dist = \"fixed\", bytes = \"4KiB\" }}\n",
            crate::config::scenario::DEFAULT_SCENARIO
        );
        let mut s = Scenario::from_toml(&text, "t").expect("scenario");
        s.clients = 10;
        let plan = GroupPlan::new(&s);
        let sender = plan.groups[0].members[0] as usize;
        let mut agenda = Agenda::new(&s, &plan, sender, 1_000);
        assert!(!agenda.is_empty());
        let (mut last, mut kinds) = (0, [0usize; 3]);
        for _ in 0..2_000 {
            let at = agenda.next_at();
            let action = agenda.take().expect("the schedules never run dry");
            assert_eq!(action.at_us(), at, "next_at names the action take gives");
            assert!(at >= last.max(1_000), "{at} after {last}");
            last = at;
            kinds[match action {
                Action::Direct(_) => 0,
                Action::Group(..) => 1,
                Action::File(_) => 2,
            }] += 1;
        }
        assert!(kinds.iter().all(|&k| k > 0), "{kinds:?}");
    }
}
