//! Shards: several replicas sharing one fleet. Pipelines are partitioned
//! by a stable hash of their namespace into `SLUICE_SHARDS` shards; each
//! shard is held by one replica through a Lease of its own
//! (`<lease>-shard-<i>`, the leader election of [`crate::leader`] per
//! shard), and a replica reconciles, polls and writes only for the
//! pipelines of the shards it holds, each behind that shard's write fence:
//! a replica that lost a shard's Lease (or stopped renewing it) sends no
//! AWS write and no status for its pipelines, and the next holder takes it
//! only a lease duration after the last renewal it saw.
//!
//! Which replica should hold which shard is rendezvous hashing over the
//! live replicas ([`owner`]): every replica renews a member Lease
//! (`<lease>-member-<identity>`) and reads the others'; each shard goes to
//! the member with the highest hash of (shard, member). A replica contends
//! only for the shards it should hold and hands back (releases) those it
//! should not, after closing their fence and a grace for calls in flight;
//! so a new replica takes about 1/N of the shards from the others, and a
//! dead one's shards go to the survivors once its member Lease and its
//! shard Leases expire. Balance is advisory (replicas may briefly disagree
//! about who is live); safety is the Leases' and the fences'.
//!
//! With one shard (the default) this is the single leader of before.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::fence::Fence;

pub mod quota;
pub mod run;

/// The shards of this replica: each one's write fence, open while this
/// replica holds the shard's Lease.
#[derive(Debug)]
pub struct Shards {
    fences: Vec<Fence>,
}

impl Shards {
    /// One shard behind `fence` (the leader's, or always open without
    /// leader election).
    pub fn single(fence: Fence) -> Self {
        Shards {
            fences: vec![fence],
        }
    }

    /// `count` shards, none held yet.
    pub fn closed(count: usize) -> Self {
        Shards {
            fences: (0..count.max(1)).map(|_| Fence::closed()).collect(),
        }
    }

    /// How many shards there are.
    pub fn count(&self) -> usize {
        self.fences.len()
    }

    /// The shard of the pipelines of `namespace`.
    pub fn of(&self, namespace: &str) -> usize {
        shard_of(namespace, self.count())
    }

    /// The write fence of shard `index`.
    pub fn fence(&self, index: usize) -> &Fence {
        &self.fences[index % self.fences.len()]
    }

    /// The write fence of the pipelines of `namespace`.
    pub fn fence_for(&self, namespace: &str) -> &Fence {
        self.fence(self.of(namespace))
    }

    /// Whether this replica may write for the pipelines of `namespace` now.
    pub fn holds(&self, namespace: &str) -> bool {
        self.fence_for(namespace).is_open()
    }

    /// The shards held now.
    pub fn held(&self) -> BTreeSet<usize> {
        (0..self.count())
            .filter(|i| self.fence(*i).is_open())
            .collect()
    }
}

/// A stable hash: SHA-256's first eight bytes (the same on every replica,
/// whatever its build).
fn stable_hash(parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The shard of `namespace` among `count`.
pub fn shard_of(namespace: &str, count: usize) -> usize {
    (stable_hash(&[namespace]) % count.max(1) as u64) as usize
}

/// The member that should hold `shard`: the highest hash of (shard,
/// member) among `members` (rendezvous hashing: a member joining or
/// leaving moves only the shards it takes or held).
pub fn owner<'a>(shard: usize, members: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let shard = shard.to_string();
    members
        .into_iter()
        .max_by_key(|m| (stable_hash(&[&shard, m]), *m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("sluice-operator-{i}")).collect()
    }

    fn assignment(shards: usize, members: &[String]) -> Vec<String> {
        (0..shards)
            .map(|s| {
                owner(s, members.iter().map(String::as_str))
                    .expect("a member")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn namespaces_spread_over_the_shards_and_keep_theirs() {
        let mut counts = [0u32; 6];
        for i in 0..6000 {
            counts[shard_of(&format!("team-{i}"), 6)] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(shard_of("team-a", 6), shard_of("team-a", 6));
        assert_eq!(shard_of("team-a", 1), 0);
    }

    #[test]
    fn shards_spread_over_the_members() {
        let m = members(3);
        let a = assignment(48, &m);
        for member in &m {
            let held = a.iter().filter(|x| *x == member).count();
            assert!((8..=24).contains(&held), "{member} holds {held} of 48");
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_shards_and_joining_takes_only_some() {
        let three = members(3);
        let before = assignment(48, &three);
        // sluice-operator-1 dies: its shards move, no other does.
        let two: Vec<String> = three
            .iter()
            .filter(|m| *m != "sluice-operator-1")
            .cloned()
            .collect();
        let after = assignment(48, &two);
        for (b, a) in before.iter().zip(&after) {
            if b != "sluice-operator-1" {
                assert_eq!(a, b, "a survivor's shard stayed");
            } else {
                assert_ne!(a, "sluice-operator-1");
            }
        }
        // A fourth joins: the shards that move all go to it.
        let four = members(4);
        let joined = assignment(48, &four);
        let moved: Vec<_> = before.iter().zip(&joined).filter(|(b, a)| b != a).collect();
        assert!(!moved.is_empty());
        assert!(
            moved.iter().all(|(_, a)| *a == "sluice-operator-3"),
            "{moved:?}"
        );
    }

    #[test]
    fn a_replica_holds_what_its_fences_say() {
        let shards = Shards::closed(4);
        assert!(shards.held().is_empty());
        let ns = "team-a";
        assert!(!shards.holds(ns));
        shards
            .fence(shards.of(ns))
            .open_until(tokio::time::Instant::now() + std::time::Duration::from_secs(10));
        assert!(shards.holds(ns));
        assert_eq!(shards.held(), [shards.of(ns)].into());
        let single = Shards::single(Fence::always_open());
        assert!(single.holds("any") && single.count() == 1);
    }
}
