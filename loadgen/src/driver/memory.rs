//! The in-memory driver: an instant-messaging hub inside the generator's process, with no
//! transport. A message to an online user is delivered to it and acked at once; a group
//! message goes to every other member online; Join and Leave take effect at once. A message to
//! a user who is not online is refused (`hold_full`: the hub holds nothing). Files are not
//! carried.
//!
//! It exists to prove that a client runs on the driver seam alone, and to test the client
//! layer without sockets.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use imbench_proto::{Dest, ErrorCode};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::{Event, Events, Op, Sender, Session, SessionError};

/// The hub's state: who is online, and who is in which group.
#[derive(Default)]
struct State {
    online: HashMap<u64, UnboundedSender<Event>>,
    groups: HashMap<u64, BTreeSet<u64>>,
}

/// The in-memory hub clients log in to.
#[derive(Clone, Default)]
pub struct Hub {
    state: Arc<Mutex<State>>,
}

impl Hub {
    /// A hub with no one online.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs `user` in; a session it already had ends.
    pub fn connect(&self, user: u64) -> Session {
        let (tx, rx) = unbounded_channel();
        if let Some(old) = self.lock().online.insert(user, tx.clone()) {
            let _ = old.send(Event::Closed {
                reason: "replaced by a new session".into(),
            });
        }
        Session {
            sender: Sender::Memory(MemorySender {
                hub: self.clone(),
                user,
                own: tx,
            }),
            events: Events::Memory(MemoryEvents { rx }),
            side_streams: None,
            login: super::Login::Full,
            migrator: None,
        }
    }

    /// Users online now.
    pub fn online(&self) -> usize {
        self.lock().online.len()
    }
}

/// A session's operations, applied to the hub as they are queued.
pub struct MemorySender {
    hub: Hub,
    user: u64,
    /// This session's own events, which a later session of the same user must not end.
    own: UnboundedSender<Event>,
}

impl MemorySender {
    /// Applies `op` at once.
    pub fn apply(&mut self, op: Op) -> Result<(), SessionError> {
        if self.own.is_closed() {
            return Err(SessionError::Closed);
        }
        let mut state = self.hub.lock();
        let me = self.user;
        let answer = |state: &State, event: Event| {
            if let Some(tx) = state.online.get(&me) {
                let _ = tx.send(event);
            }
        };
        match op {
            Op::Send {
                msg_id,
                to: Dest::User(to),
                body,
            } => match state.online.get(&to) {
                Some(tx) => {
                    let _ = tx.send(Event::Delivered {
                        msg_id,
                        from: me,
                        to: Dest::User(to),
                        body,
                    });
                    answer(&state, Event::Acked { msg_id });
                }
                None => answer(
                    &state,
                    Event::Rejected {
                        msg_id,
                        code: ErrorCode::HOLD_FULL,
                    },
                ),
            },
            Op::Send {
                msg_id,
                to: Dest::Group(group),
                body,
            } => {
                let members = state.groups.get(&group);
                if !members.is_some_and(|m| m.contains(&me)) {
                    answer(
                        &state,
                        Event::Rejected {
                            msg_id,
                            code: ErrorCode::NOT_A_MEMBER,
                        },
                    );
                    return Ok(());
                }
                for member in members.into_iter().flatten().filter(|&&m| m != me) {
                    if let Some(tx) = state.online.get(member) {
                        let _ = tx.send(Event::Delivered {
                            msg_id,
                            from: me,
                            to: Dest::Group(group),
                            body: body.clone(),
                        });
                    }
                }
                answer(&state, Event::Acked { msg_id });
            }
            Op::Join { group } => {
                state.groups.entry(group).or_default().insert(me);
                answer(&state, Event::Joined { group });
            }
            Op::Leave { group } => {
                if let Some(members) = state.groups.get_mut(&group) {
                    members.remove(&me);
                }
                answer(&state, Event::Left { group });
            }
            Op::Receipt { .. } => {}
            Op::FileOffer { .. } | Op::FileChunk { .. } => {
                return Err(SessionError::Unsupported(
                    "the in-memory hub carries no files",
                ))
            }
        }
        Ok(())
    }

    /// Goes offline: this session's events end (a newer session of the user stays).
    pub fn leave(&mut self) {
        let mut state = self.hub.lock();
        if state
            .online
            .get(&self.user)
            .is_some_and(|tx| tx.same_channel(&self.own))
        {
            state.online.remove(&self.user);
        }
        drop(state);
        let _ = self.own.send(Event::Closed {
            reason: "left".into(),
        });
    }
}

/// A session's events.
pub struct MemoryEvents {
    rx: UnboundedReceiver<Event>,
}

impl MemoryEvents {
    /// The next event; `None` once the session ended and everything was read.
    pub async fn next(&mut self) -> Option<Event> {
        let event = self.rx.recv().await?;
        if matches!(event, Event::Closed { .. }) {
            // Nothing follows a goodbye.
            self.rx.close();
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn direct_and_group_messages_reach_who_is_online() {
        let hub = Hub::new();
        let mut a = hub.connect(1);
        let mut b = hub.connect(2);
        let body = Bytes::from_static(b"hi");
        let to_b = Op::Send {
            msg_id: 7,
            to: Dest::User(2),
            body: body.clone(),
        };
        a.sender.send(to_b).await.unwrap();
        assert!(matches!(
            b.events.next().await.unwrap(),
            Some(Event::Delivered {
                msg_id: 7,
                from: 1,
                ..
            })
        ));
        assert!(matches!(
            a.events.next().await.unwrap(),
            Some(Event::Acked { msg_id: 7 })
        ));
        let to_nobody = Op::Send {
            msg_id: 8,
            to: Dest::User(3),
            body: body.clone(),
        };
        a.sender.send(to_nobody).await.unwrap();
        assert!(matches!(
            a.events.next().await.unwrap(),
            Some(Event::Rejected { msg_id: 8, .. })
        ));

        for s in [&mut a, &mut b] {
            s.sender.send(Op::Join { group: 9 }).await.unwrap();
            assert!(matches!(
                s.events.next().await.unwrap(),
                Some(Event::Joined { group: 9 })
            ));
        }
        let to_group = Op::Send {
            msg_id: 10,
            to: Dest::Group(9),
            body,
        };
        a.sender.send(to_group).await.unwrap();
        assert!(matches!(
            b.events.next().await.unwrap(),
            Some(Event::Delivered {
                msg_id: 10,
                to: Dest::Group(9),
                ..
            })
        ));

        b.sender.close("bye").await;
        assert!(matches!(
            b.events.next().await.unwrap(),
            Some(Event::Closed { .. })
        ));
        assert!(b.events.next().await.unwrap().is_none());
        assert_eq!(hub.online(), 1);
        assert!(b.sender.queue(Op::Join { group: 9 }).is_err());
    }
}
