//! Dedup within one batch: the first occurrence of each trade id per (exchange, symbol).
//!
//! The reference is the engine's Python path (`CandleEngine._dedup`: `partition_by` the pair,
//! then `unique(subset="trade_id", keep="first", maintain_order=True)`). Here one pass over
//! the batch gives each pair's first-occurrence rows in arrival order, pairs in order of first
//! appearance; the check against earlier batches (the ledger) stays in Python.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// One multiply: the keys are trade ids, not attacker-chosen, and SipHash would cost more
/// than the rest of the pass.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

type IdSet = HashSet<i64, BuildHasherDefault<IdHasher>>;

/// One pair's ids seen so far in the batch. While ids only rise (a venue's stream in order),
/// `top` alone proves an id new and no set is built; the first id at or below `top` builds
/// the set from the rows kept so far, and from then on the set decides.
#[derive(Default)]
struct Seen {
    top: Option<i64>,
    set: Option<IdSet>,
    rows: Vec<i64>,
    delivered: i64,
}

impl Seen {
    fn offer(&mut self, row: usize, id: i64, ids: &[i64]) {
        self.delivered += 1;
        let new = match (self.top, &mut self.set) {
            (None, _) => true,
            (Some(_), Some(set)) => set.insert(id),
            (Some(top), None) if id > top => true,
            (Some(_), None) => {
                let mut set: IdSet = self.rows.iter().map(|&r| ids[r as usize]).collect();
                let new = set.insert(id);
                self.set = Some(set);
                new
            }
        };
        if new {
            if let Some(set) = &mut self.set {
                set.insert(id);
            }
            self.top = Some(self.top.map_or(id, |t| t.max(id)));
            self.rows.push(row as i64);
        }
    }
}

/// Each pair's first-occurrence rows: `rows` holds them pair after pair (pairs numbered
/// 0.. in `pair`, as `candles::trades_from_batches` numbers them: by first appearance), each
/// pair's in arrival order; pair `p`'s are `rows[starts[p]..starts[p + 1]]`, and
/// `delivered[p]` counts all its rows, duplicates included.
#[derive(Debug, PartialEq, Eq)]
pub struct FirstRows {
    pub rows: Vec<i64>,
    pub starts: Vec<i64>,
    pub delivered: Vec<i64>,
}

pub fn first_rows(pair: &[u32], ids: &[i64], pairs: usize) -> FirstRows {
    let mut seen: Vec<Seen> = (0..pairs).map(|_| Seen::default()).collect();
    for (row, (&p, &id)) in pair.iter().zip(ids).enumerate() {
        seen[p as usize].offer(row, id, ids);
    }
    let mut out = FirstRows {
        rows: Vec::with_capacity(seen.iter().map(|s| s.rows.len()).sum()),
        starts: Vec::with_capacity(pairs + 1),
        delivered: Vec::with_capacity(pairs),
    };
    out.starts.push(0);
    for s in seen {
        out.rows.extend_from_slice(&s.rows);
        out.starts.push(out.rows.len() as i64);
        out.delivered.push(s.delivered);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: a plain scan with one set per pair.
    fn scan(pair: &[u32], ids: &[i64], pairs: usize) -> FirstRows {
        let mut sets: Vec<HashSet<i64>> = vec![HashSet::new(); pairs];
        let mut rows: Vec<Vec<i64>> = vec![Vec::new(); pairs];
        let mut delivered = vec![0i64; pairs];
        for (row, (&p, &id)) in pair.iter().zip(ids).enumerate() {
            delivered[p as usize] += 1;
            if sets[p as usize].insert(id) {
                rows[p as usize].push(row as i64);
            }
        }
        let mut starts = vec![0i64];
        let mut flat = Vec::new();
        for r in rows {
            flat.extend(r);
            starts.push(flat.len() as i64);
        }
        FirstRows {
            rows: flat,
            starts,
            delivered,
        }
    }

    #[test]
    fn keeps_the_first_of_each_id_per_pair_in_arrival_order() {
        let pair = [0, 1, 0, 0, 1, 0, 0];
        let ids = [5, 5, 7, 5, 6, 6, 7];
        let got = first_rows(&pair, &ids, 2);
        assert_eq!(got.rows, vec![0, 2, 5, 1, 4]);
        assert_eq!(got.starts, vec![0, 3, 5]);
        assert_eq!(got.delivered, vec![5, 2]);
    }

    #[test]
    fn a_falling_id_after_a_rising_run_switches_to_the_set() {
        // 1, 2, 3 rise (no set); 2 is a duplicate found by the set built from them; 0 is new.
        let pair = [0, 0, 0, 0, 0, 0];
        let ids = [1, 2, 3, 2, 0, 0];
        assert_eq!(first_rows(&pair, &ids, 1).rows, vec![0, 1, 2, 4]);
    }

    #[test]
    fn matches_a_plain_scan_on_pseudo_random_input() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..200 {
            let rows = next(300) as usize;
            let pairs = 1 + next(4) as usize;
            let pair: Vec<u32> = (0..rows).map(|_| next(pairs as u64) as u32).collect();
            let ids: Vec<i64> = (0..rows).map(|i| i as i64 - next(20) as i64).collect();
            assert_eq!(first_rows(&pair, &ids, pairs), scan(&pair, &ids, pairs));
        }
    }
}
