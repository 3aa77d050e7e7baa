//! The ids of events already counted, so a delivery Linq retries (for up to 30 minutes) is
//! answered 2xx but counted once. Pure: the clock is passed in.
//!
//! Memory is bounded: one id per event (the receiver passes the `webhook-id`, else the
//! `event_id`), kept as a 64-bit keyed hash (SipHash with a per-process random key, so a sender
//! cannot aim collisions), for [`WINDOW`] (35 minutes), and at most [`CAPACITY`] of them
//! (500,000: about 25 MiB at worst, enough for 238 events a second sustained over the whole
//! window). Past the capacity the oldest ids are forgotten first and counted in
//! `linq_webhook_dedupe_evictions_total`; a retry of a forgotten event would be counted again.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How long an id is remembered: Linq retries for up to 30 minutes, plus a margin.
pub const WINDOW: Duration = Duration::from_secs(35 * 60);
/// The most ids remembered at once.
pub const CAPACITY: usize = 500_000;

/// The ids seen within the window.
#[derive(Debug)]
pub struct SeenIds {
    hasher: std::collections::hash_map::RandomState,
    /// Hash → when it was seen (seconds).
    seen: HashMap<u64, i64>,
    /// (when, hash) in arrival order, for expiry.
    order: VecDeque<(i64, u64)>,
    window: i64,
    capacity: usize,
}

impl Default for SeenIds {
    fn default() -> Self {
        Self::new(WINDOW, CAPACITY)
    }
}

impl SeenIds {
    /// An empty set with the given window and capacity.
    pub fn new(window: Duration, capacity: usize) -> Self {
        SeenIds {
            hasher: std::collections::hash_map::RandomState::new(),
            seen: HashMap::new(),
            order: VecDeque::new(),
            window: i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
            capacity: capacity.max(1),
        }
    }

    fn hash(&self, id: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(id.as_bytes());
        h.finish()
    }

    fn expire(&mut self, now: i64) -> u64 {
        let mut evicted = 0;
        while let Some(&(at, key)) = self.order.front() {
            let too_many = self.order.len() > self.capacity;
            if now.saturating_sub(at) <= self.window && !too_many {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
            }
            if too_many {
                evicted += 1;
            }
        }
        evicted
    }

    /// Records the event known by any of `ids` at `now`; returns whether it was seen before
    /// within the window, and how many ids were forgotten early to stay within the capacity.
    pub fn check_and_insert(&mut self, ids: &[&str], now: i64) -> (bool, u64) {
        let mut evicted = self.expire(now);
        let keys: Vec<u64> = ids.iter().map(|id| self.hash(id)).collect();
        let duplicate = keys.iter().any(|k| self.seen.contains_key(k));
        if !duplicate {
            for key in keys {
                self.seen.insert(key, now);
                self.order.push_back((now, key));
            }
            evicted += self.expire(now);
        }
        (duplicate, evicted)
    }

    /// Ids remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_within_the_window_is_a_duplicate_and_after_it_is_not() {
        let mut s = SeenIds::default();
        assert_eq!(s.check_and_insert(&["msg_1", "evt_1"], 1000), (false, 0));
        // Either id recognises the event (a retry verified by the other header set).
        assert!(s.check_and_insert(&["evt_1"], 1000 + 30 * 60).0);
        assert!(s.check_and_insert(&["msg_1"], 1000 + 35 * 60).0);
        assert!(!s.check_and_insert(&["msg_1"], 1000 + 35 * 60 + 1).0);
    }

    #[test]
    fn memory_stays_within_the_capacity_oldest_first() {
        let mut s = SeenIds::new(WINDOW, 3);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(s.check_and_insert(&[id], i as i64), (false, 0));
        }
        assert_eq!(s.check_and_insert(&["d"], 3), (false, 1));
        assert_eq!(s.len(), 3);
        assert!(!s.check_and_insert(&["a"], 4).0, "the oldest was forgotten");
        assert!(s.check_and_insert(&["d"], 5).0);
    }
}
