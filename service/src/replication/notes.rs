//! The notes on the wire: what changed, packed into as few payloads as fit under
//! PostgreSQL's 8000-byte limit. Notes carry no prices, only what to re-read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{MerchantId, Sku};

/// Payload bytes per note, below PostgreSQL's 8000 with room for the envelope.
const PAYLOAD_BUDGET: usize = 7_000;
/// Above this many changed SKUs of one merchant in one send, one note for the range from the
/// first to the last of them replaces their list. SKU notes cost a listener only the SKUs
/// whose version it lacks (the writer's own process has them all, and skips them); a range
/// note makes every listener read the range. Up to here that is at most some 150 notes. (A
/// whole-merchant note here, at 2,000, made every piece of a large import re-read the
/// merchant's whole catalogue, so an import's cost grew with the square of its size.)
const LARGE_LIST: usize = 20_000;

/// What changed, as a note names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// These SKUs, each with the version now in force (0: deleted, or unknown).
    Skus(MerchantId, Vec<(Sku, i64)>),
    /// Every price in force from one SKU to another, both included.
    Range(MerchantId, Sku, Sku),
    /// Every price of the merchant.
    Merchant(MerchantId),
}

/// A note on the wire: `m` alone means the whole merchant.
#[derive(Serialize, Deserialize)]
struct Note {
    m: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    s: Vec<(String, i64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<(String, String)>,
}

pub(super) fn decode(payload: &str) -> Option<Change> {
    let note: Note = serde_json::from_str(payload).ok()?;
    let merchant = MerchantId::parse(&note.m).ok()?;
    if let Some((from, to)) = note.r {
        return Some(Change::Range(merchant, Sku::parse(&from).ok()?, Sku::parse(&to).ok()?));
    }
    if note.s.is_empty() {
        return Some(Change::Merchant(merchant));
    }
    let skus = note.s.into_iter().map(|(s, v)| Sku::parse(&s).ok().map(|s| (s, v))).collect::<Option<_>>()?;
    Some(Change::Skus(merchant, skus))
}

/// Turns queued changes into as few payloads as fit: SKU lists merged per merchant (a
/// deletion's 0 wins, else the highest version), split by size; long lists of changed (not
/// deleted) SKUs become a note of their range.
pub(super) fn encode(changes: Vec<Change>) -> Vec<String> {
    let mut lists: BTreeMap<MerchantId, BTreeMap<Sku, i64>> = BTreeMap::new();
    let mut notes = Vec::new();
    for change in changes {
        match change {
            Change::Skus(merchant, skus) => {
                let list = lists.entry(merchant).or_default();
                for (sku, version) in skus {
                    let merged = list.entry(sku).or_insert(version);
                    *merged = if *merged == 0 || version == 0 { 0 } else { (*merged).max(version) };
                }
            }
            Change::Range(m, from, to) => {
                notes.push(Note { m: m.to_string(), s: vec![], r: Some((from.to_string(), to.to_string())) })
            }
            Change::Merchant(m) => notes.push(Note { m: m.to_string(), s: vec![], r: None }),
        }
    }
    for (merchant, mut list) in lists {
        let m = merchant.to_string();
        if list.len() > LARGE_LIST {
            let first = list.keys().next().expect("a long list").to_string();
            let last = list.keys().next_back().expect("a long list").to_string();
            list.retain(|_, version| *version == 0);
            notes.push(Note { m: m.clone(), s: vec![], r: Some((first, last)) });
        }
        let mut note = Note { m: m.clone(), s: vec![], r: None };
        let mut size = 0;
        for (sku, version) in list {
            // `["sku",version],` at most: SKUs need no JSON escaping.
            let entry = sku.as_str().len() + 25;
            if size + entry > PAYLOAD_BUDGET {
                notes.push(std::mem::replace(&mut note, Note { m: m.clone(), s: vec![], r: None }));
                size = 0;
            }
            size += entry;
            note.s.push((sku.to_string(), version));
        }
        if !note.s.is_empty() {
            notes.push(note);
        }
    }
    notes.iter().map(|n| serde_json::to_string(n).expect("a note serializes")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_stay_small_and_keep_deletions() {
        let m = MerchantId::generate();
        let sku = |i: usize| Sku::parse(&format!("{i:0>64}")).unwrap();
        let many: Vec<(Sku, i64)> = (0..300).map(|i| (sku(i), 3)).collect();
        let payloads = encode(vec![Change::Skus(m, many), Change::Skus(m, vec![(sku(7), 0)])]);
        assert!(payloads.len() > 1 && payloads.iter().all(|p| p.len() < 8000), "{:?}", payloads.len());
        let back: Vec<(Sku, i64)> = payloads
            .iter()
            .flat_map(|p| match decode(p) {
                Some(Change::Skus(mm, skus)) if mm == m => skus,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(back.len(), 300);
        assert!(back.contains(&(sku(7), 0)), "a deletion wins over a version");

        // A piece of an import (some thousands of SKUs) still goes by SKU, never as the whole
        // merchant, which every listener would re-read for every piece.
        let piece: Vec<(Sku, i64)> = (0..5_000).map(|i| (sku(i), 1)).collect();
        let payloads = encode(vec![Change::Skus(m, piece)]);
        let decoded: Vec<Change> = payloads.iter().map(|p| decode(p).unwrap()).collect();
        assert!(decoded.iter().all(|c| matches!(c, Change::Skus(..))), "{decoded:?}");
        assert_eq!(decoded.iter().map(|c| if let Change::Skus(_, s) = c { s.len() } else { 0 }).sum::<usize>(), 5_000);

        let huge: Vec<(Sku, i64)> = (1..=LARGE_LIST + 1).map(|i| (sku(i), if i == 5 { 0 } else { 1 })).collect();
        let payloads = encode(vec![Change::Skus(m, huge), Change::Range(m, sku(1), sku(2))]);
        let decoded: Vec<Change> = payloads.iter().map(|p| decode(p).unwrap()).collect();
        assert!(decoded.contains(&Change::Range(m, sku(1), sku(LARGE_LIST + 1))), "the long list's range");
        assert!(decoded.contains(&Change::Skus(m, vec![(sku(5), 0)])), "deletions stay by SKU");
        assert!(decoded.contains(&Change::Range(m, sku(1), sku(2))));
    }
}
