//! A client's Acks and Rejects, held back while what they acknowledge is not yet on disk.
//!
//! With holds on disk (`--data-dir`), an Ack for a held message means the message is stored.
//! The reader does not wait for the disk itself: the client may have many messages in flight,
//! and the commit they wait for is shared by all of them. The answer waits here instead, and so
//! do the answers to the client's later messages, so that a client sees its Acks and Rejects in
//! the order it sent its messages. Without a data folder every answer goes at once.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;

use crate::router::Outbound;
use crate::store::HoldStore;

/// Answers waiting for the store, oldest first, each with the change it waits for.
pub(super) struct Answers {
    /// The number of the last change on disk; `None` without a data folder.
    durable: Option<watch::Receiver<u64>>,
    waiting: VecDeque<(u64, Outbound)>,
}

impl Answers {
    pub(super) fn new(store: Option<&HoldStore>) -> Self {
        Self {
            durable: store.map(HoldStore::durable),
            waiting: VecDeque::new(),
        }
    }

    /// Answers waiting.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Sends `answer` once change `stored` is on disk (0: nothing to wait for) and every
    /// earlier answer has gone.
    pub(super) fn answer(&mut self, stored: u64, answer: Outbound, reply: &impl Fn(Outbound)) {
        if self.waiting.is_empty() && (stored == 0 || self.is_durable(stored)) {
            reply(answer);
        } else {
            self.waiting.push_back((stored, answer));
        }
    }

    /// Completes when the oldest waiting answer may go; pending while there is none, or when
    /// the store has stopped (it failed: those answers never go).
    pub(super) async fn ready(&mut self) {
        let (Some(durable), Some(&(stored, _))) = (self.durable.as_mut(), self.waiting.front())
        else {
            return std::future::pending().await;
        };
        if durable.wait_for(|&d| d >= stored).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sends every answer whose change is on disk, in order.
    pub(super) fn release(&mut self, reply: &impl Fn(Outbound)) {
        let durable = self.durable.as_ref().map_or(u64::MAX, |d| *d.borrow());
        while let Some(&(stored, _)) = self.waiting.front() {
            if stored > durable {
                break;
            }
            if let Some((_, answer)) = self.waiting.pop_front() {
                reply(answer);
            }
        }
    }

    /// Waits up to `limit` for the waiting answers to be stored and sends those that are (at
    /// shutdown, so that what is on disk is acknowledged).
    pub(super) async fn settle(&mut self, limit: Duration, reply: &impl Fn(Outbound)) {
        let Some(&(last, _)) = self.waiting.back() else {
            return;
        };
        if let Some(durable) = self.durable.as_mut() {
            let _ = tokio::time::timeout(limit, durable.wait_for(|&d| d >= last)).await;
        }
        self.release(reply);
    }

    fn is_durable(&self, stored: u64) -> bool {
        self.durable.as_ref().is_none_or(|d| *d.borrow() >= stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn ids(sent: &RefCell<Vec<Outbound>>) -> Vec<u64> {
        sent.borrow()
            .iter()
            .map(|o| match o {
                Outbound::Ack(id) | Outbound::Reject(id, _) => *id,
                _ => u64::MAX,
            })
            .collect()
    }

    #[tokio::test]
    async fn answers_wait_for_the_disk_and_keep_their_order() {
        let (durable_tx, durable) = watch::channel(0);
        let mut answers = Answers {
            durable: Some(durable),
            waiting: VecDeque::new(),
        };
        let sent = RefCell::new(Vec::new());
        let reply = |o| sent.borrow_mut().push(o);
        answers.answer(0, Outbound::Ack(1), &reply);
        answers.answer(5, Outbound::Ack(2), &reply);
        // Needs nothing stored, but comes after one that does.
        answers.answer(0, Outbound::Ack(3), &reply);
        answers.answer(7, Outbound::Ack(4), &reply);
        assert_eq!(ids(&sent), vec![1]);
        durable_tx.send_replace(6);
        tokio::time::timeout(Duration::from_secs(10), answers.ready())
            .await
            .expect("ready once stored");
        answers.release(&reply);
        assert_eq!(ids(&sent), vec![1, 2, 3]);
        assert_eq!(answers.len(), 1);
        durable_tx.send_replace(7);
        answers.settle(Duration::from_secs(10), &reply).await;
        assert_eq!(ids(&sent), vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn without_a_store_every_answer_goes_at_once() {
        let mut answers = Answers::new(None);
        let sent = RefCell::new(Vec::new());
        let reply = |o| sent.borrow_mut().push(o);
        answers.answer(0, Outbound::Ack(1), &reply);
        answers.answer(3, Outbound::Ack(2), &reply);
        assert_eq!((ids(&sent), answers.len()), (vec![1, 2], 0));
    }
}
