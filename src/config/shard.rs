//! Sharding (`--shard`, `--total-shards`): which of the account's numbers this replica walks.
//!
//! A number belongs to shard `fnv1a64(number) % total_shards`, where `number` is the E.164
//! string exactly as the API lists it or `--linq.from` gives it (`+` and digits, UTF-8 bytes) and
//! `fnv1a64` is 64-bit FNV-1a (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`,
//! wrapping multiplication). The hash is specified here, not taken from a library or from
//! Rust's `Hash`, so it is the same on every platform and in every version: replicas of
//! different versions still agree during a rollout. Worked example: `fnv1a64("+12025550101")`
//! is `0xb2c5eb01e472dcb0` (12881960702523399344), which is 2 modulo 3: with
//! `--total-shards 3`, the number belongs to `--shard 2`.

/// This replica's shard and the total, validated (`shard < total`, `total >= 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sharding {
    shard: u32,
    total: u32,
}

impl Default for Sharding {
    fn default() -> Self {
        Sharding::ONE
    }
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The shard (of `total`) that owns `number`.
pub fn shard_of(number: &str, total: u32) -> u32 {
    (fnv1a64(number.as_bytes()) % u64::from(total.max(1))) as u32
}

impl Sharding {
    /// Not sharded: one replica owns every number.
    pub const ONE: Sharding = Sharding { shard: 0, total: 1 };

    /// `shard` of `total`, or why not (the message names neither flag: the caller does).
    pub fn new(shard: u32, total: u32) -> Option<Self> {
        (total >= 1 && shard < total).then_some(Sharding { shard, total })
    }

    /// This replica's index, from 0.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// How many shards there are.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Whether there is more than one shard.
    pub fn is_sharded(&self) -> bool {
        self.total > 1
    }

    /// Whether this replica owns `number`.
    pub fn owns(&self, number: &str) -> bool {
        !self.is_sharded() || shard_of(number, self.total) == self.shard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        // The FNV reference vectors (draft-eastlake-fnv): the empty string and "a".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn numbers_map_to_fixed_shards() {
        // Fixed vectors: changing any of these moves numbers between shards on upgrade.
        let cases: [(&str, u64, [u32; 3]); 6] = [
            ("+12025550101", 0xb2c5_eb01_e472_dcb0, [0, 2, 4]),
            ("+12025550102", 0xb2c5_ee01_e472_e1c9, [1, 2, 2]),
            ("+12025550103", 0xb2c5_ed01_e472_e016, [0, 1, 1]),
            ("+12025550105", 0xb2c5_ef01_e472_e37c, [0, 0, 3]),
            ("+14155550100", 0xdb7b_cc5b_312f_15b1, [1, 1, 1]),
            ("+447700900123", 0x7f98_8318_911e_ed4d, [1, 2, 3]),
        ];
        for (number, hash, [of2, of3, of5]) in cases {
            assert_eq!(fnv1a64(number.as_bytes()), hash, "{number}");
            assert_eq!(
                [
                    shard_of(number, 2),
                    shard_of(number, 3),
                    shard_of(number, 5)
                ],
                [of2, of3, of5],
                "{number}"
            );
        }
    }

    #[test]
    fn every_number_has_exactly_one_owner() {
        for total in 1..=7 {
            for i in 0..200 {
                let number = format!("+1202555{i:04}");
                let owners = (0..total)
                    .filter(|&s| Sharding::new(s, total).is_some_and(|sh| sh.owns(&number)))
                    .count();
                assert_eq!(owners, 1, "{number} of {total}");
            }
        }
    }

    #[test]
    fn invalid_specs_are_none() {
        assert_eq!(Sharding::new(0, 0), None);
        assert_eq!(Sharding::new(3, 3), None);
        assert_eq!(Sharding::new(0, 1), Some(Sharding::ONE));
        assert!(Sharding::ONE.owns("+12025550101"));
        assert!(!Sharding::ONE.is_sharded());
    }
}
