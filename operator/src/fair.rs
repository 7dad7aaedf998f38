//! Fair shares between tenants (namespaces) of what the operator has a
//! fixed amount of: reconcile slots ([`Slots`]) and each AWS quota
//! bucket's calls ([`crate::aws::ratelimit::RateLimiter`]). Waiters queue
//! per tenant and are served one tenant at a time in turn, so one
//! namespace applying 500 pipelines does not put another namespace's single
//! change behind all of them: each waiting namespace gets the next turn in
//! rotation, whatever the others have queued.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::oneshot;

/// Waiters by tenant, served round-robin: [`FairQueue::pop`] takes the
/// oldest waiter of the tenant whose turn it is, then that tenant goes to
/// the back of the rotation. Within a tenant, first come, first served.
#[derive(Debug)]
pub struct FairQueue<T> {
    queues: BTreeMap<String, VecDeque<T>>,
    turns: VecDeque<String>,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        FairQueue {
            queues: BTreeMap::new(),
            turns: VecDeque::new(),
        }
    }
}

impl<T> FairQueue<T> {
    /// Queues `waiter` for `tenant`.
    pub fn push(&mut self, tenant: &str, waiter: T) {
        let queue = self.queues.entry(tenant.to_owned()).or_default();
        if queue.is_empty() {
            self.turns.push_back(tenant.to_owned());
        }
        queue.push_back(waiter);
    }

    /// The next waiter in turn, if any.
    pub fn pop(&mut self) -> Option<T> {
        let tenant = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&tenant)?;
        let waiter = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&tenant);
        } else {
            self.turns.push_back(tenant);
        }
        waiter
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

/// A fixed number of slots shared fairly between tenants: a freed slot goes
/// to the next tenant in turn, not to whoever asked first.
#[derive(Debug)]
pub struct Slots {
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    free: usize,
    waiters: FairQueue<oneshot::Sender<Slot>>,
}

/// One slot, held until dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    /// False for a slot that was never handed out (its release is the
    /// caller's), so dropping it frees nothing.
    armed: bool,
}

impl Slots {
    /// `count` slots.
    pub fn new(count: usize) -> Arc<Self> {
        Arc::new(Slots {
            state: Mutex::new(SlotState {
                free: count,
                waiters: FairQueue::default(),
            }),
        })
    }

    /// Waits for a slot for `tenant`.
    pub async fn acquire(self: &Arc<Self>, tenant: &str) -> Slot {
        let receiver = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.free > 0 && state.waiters.is_empty() {
                state.free -= 1;
                return Slot {
                    slots: self.clone(),
                    armed: true,
                };
            }
            let (sender, receiver) = oneshot::channel();
            state.waiters.push(tenant, sender);
            receiver
        };
        // The sender is dropped only with `self`, which this holds.
        match receiver.await {
            Ok(slot) => slot,
            Err(_) => Slot {
                slots: self.clone(),
                armed: true,
            },
        }
    }

    fn release(self: &Arc<Self>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(waiter) = state.waiters.pop() {
            // A slot sent to a waiter that gave up comes back through its
            // own drop, so none is lost.
            match waiter.send(Slot {
                slots: self.clone(),
                armed: true,
            }) {
                Ok(()) => return,
                Err(mut slot) => slot.armed = false,
            }
        }
        state.free += 1;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.slots.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn tenants_take_turns_and_each_keeps_its_order() {
        let mut q = FairQueue::default();
        for i in 0..5 {
            q.push("big", format!("big-{i}"));
        }
        q.push("small", "small-0".to_owned());
        q.push("other", "other-0".to_owned());
        let order: Vec<String> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            [
                "big-0", "small-0", "other-0", "big-1", "big-2", "big-3", "big-4"
            ]
        );
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_goes_to_the_tenant_whose_turn_it_is() {
        let slots = Slots::new(1);
        let held = slots.acquire("big").await;
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // 20 of one namespace queue first, then one of another.
        for i in 0..20 {
            let (slots, served) = (slots.clone(), served.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire("big").await;
                served.lock().expect("lock").push(format!("big-{i}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            tokio::task::yield_now().await;
        }
        let (s, log) = (slots.clone(), served.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = s.acquire("small").await;
            log.lock().expect("lock").push("small".to_owned());
        }));
        tokio::task::yield_now().await;
        drop(held);
        for t in tasks {
            t.await.expect("task");
        }
        let served = served.lock().expect("lock").clone();
        let small = served.iter().position(|s| s == "small").expect("served");
        assert_eq!(small, 1, "second in line, not 21st: {served:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_loses_no_slot() {
        let slots = Slots::new(1);
        let held = slots.acquire("a").await;
        let gives_up = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("b").await }
        });
        tokio::task::yield_now().await;
        gives_up.abort();
        let _ = gives_up.await;
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(1), slots.acquire("c")).await;
        assert!(again.is_ok(), "the slot came back");
    }
}
