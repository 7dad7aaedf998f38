//! The write fence: whether this replica may write to AWS right now. The
//! leader ([`crate::leader`]) opens it until the renew deadline of each
//! successful renewal and closes it when it stops leading;
//! [`crate::aws::Aws::call`] refuses every write, unsent, while it is
//! closed. Its own module so the AWS layer and the leader depend on it, not
//! on each other.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

/// Whether this replica may write right now: open while it leads, until
/// the renew deadline of its last successful renewal. Cheap to clone; one
/// atomic load to check.
#[derive(Clone, Debug)]
pub struct Fence(Arc<FenceState>);

#[derive(Debug)]
struct FenceState {
    /// The instant deadlines are counted from.
    base: Instant,
    /// Nanoseconds after `base` until which the fence is open: 0 closed,
    /// `u64::MAX` always open.
    open_until: AtomicU64,
}

const CLOSED: u64 = 0;
const ALWAYS: u64 = u64::MAX;

impl Fence {
    fn with(open_until: u64) -> Self {
        Fence(Arc::new(FenceState {
            base: Instant::now(),
            open_until: AtomicU64::new(open_until),
        }))
    }

    /// A fence that never closes: leader election is off, the only process
    /// always leads.
    pub fn always_open() -> Self {
        Self::with(ALWAYS)
    }

    /// A closed fence, for a replica that has not acquired the Lease yet.
    pub fn closed() -> Self {
        Self::with(CLOSED)
    }

    /// Opens the fence until `deadline` (or moves its deadline there); a
    /// deadline past closes it.
    pub fn open_until(&self, deadline: Instant) {
        let nanos = deadline.saturating_duration_since(self.0.base).as_nanos();
        let until = u64::try_from(nanos).map_or(ALWAYS - 1, |n| n.min(ALWAYS - 1));
        self.0.open_until.store(until, Ordering::SeqCst);
    }

    /// Closes the fence until it is opened again.
    pub fn close(&self) {
        self.0.open_until.store(CLOSED, Ordering::SeqCst);
    }

    /// Whether this replica may write now.
    pub fn is_open(&self) -> bool {
        self.is_open_at(Instant::now())
    }

    /// Whether this replica may write at `now`.
    pub fn is_open_at(&self, now: Instant) -> bool {
        let until = self.0.open_until.load(Ordering::SeqCst);
        let elapsed = now.saturating_duration_since(self.0.base).as_nanos();
        until == ALWAYS || elapsed < u128::from(until)
    }

    /// When the fence closes unless moved: `None` when it is closed or
    /// never closes.
    pub fn deadline(&self) -> Option<Instant> {
        match self.0.open_until.load(Ordering::SeqCst) {
            CLOSED | ALWAYS => None,
            nanos => Some(self.0.base + Duration::from_nanos(nanos)),
        }
    }
}
