//! Checking a merchant's decision chain: every record must follow the one before (consecutive
//! sequence numbers, the previous record's hash), hash to its own stored hash, agree with its
//! searchable columns (its time and merchant included: the time drives the price at an
//! instant, the prior price and the filters), and the last must be the chain's recorded head.
//! The first record that fails is named, with the reason.
//!
//! Hashing a long chain is CPU work: each page is checked on a blocking thread, never on the
//! thread that serves requests (checkout's lookups), and at most [`AT_ONCE`] verifications run
//! at a time in a process; more wait their turn.

use serde::Serialize;

use crate::domain::MerchantId;
use crate::domain::chain::{GENESIS_HASH, chain_hash};
use crate::pricing::DecisionRecord;
use crate::store::{Store, StoreError, StoredDecision};

const PAGE: u32 = 1_000;
/// Verifications that may run at once in a process.
const AT_ONCE: usize = 2;
static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AT_ONCE);

/// Where a page of checks left off.
struct Progress {
    records: i64,
    next_seq: i64,
    prev_hash: String,
}

/// Checks one page from `expected_seq`, linked to `prev_hash`, up to `last`; the broken
/// record is (seq, reason, records checked before it).
fn check_page(
    merchant: MerchantId,
    page: Vec<StoredDecision>,
    mut expected_seq: i64,
    mut prev_hash: String,
    last: i64,
) -> Result<Progress, (i64, String, i64)> {
    let mut records = 0;
    for decision in page {
        if decision.seq > last {
            break;
        }
        if decision.seq != expected_seq {
            return Err((
                expected_seq,
                format!("record {expected_seq} is missing (next is {})", decision.seq),
                records,
            ));
        }
        if decision.prev_hash != prev_hash {
            return Err((decision.seq, "it does not follow the record before it".into(), records));
        }
        if chain_hash(&decision.prev_hash, &decision.record) != decision.hash {
            return Err((decision.seq, "its content does not match its hash".into(), records));
        }
        if let Some(column) = mismatch(merchant, &decision) {
            return Err((decision.seq, format!("its {column} column differs from the hashed record"), records));
        }
        records += 1;
        expected_seq += 1;
        prev_hash = decision.hash;
    }
    Ok(Progress { records, next_seq: expected_seq, prev_hash })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Broken {
    /// The sequence number where the chain first fails (the expected one, for a gap).
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub intact: bool,
    /// Records checked.
    pub records: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub first_broken: Option<Broken>,
}

fn mismatch(merchant: MerchantId, decision: &StoredDecision) -> Option<&'static str> {
    let Ok(record) = serde_json::from_str::<DecisionRecord>(&decision.record) else {
        return Some("the record is not a decision record");
    };
    let checks = [
        (record.merchant_id == merchant.to_string(), "merchant"),
        (record.seq == decision.seq, "seq"),
        (record.created_at == decision.created_at, "time"),
        (record.sku == decision.sku, "sku"),
        (record.outcome == decision.outcome, "outcome"),
        (record.trigger == decision.trigger, "trigger"),
        (record.currency == decision.currency, "currency"),
        (record.old_price_minor == decision.old_price_minor, "old price"),
        (record.new_price_minor == decision.new_price_minor, "new price"),
        (record.clips.is_empty() != decision.clipped, "clipped"),
        (record.rule_version == decision.rule_version, "rule version"),
        (record.rule_sha256 == decision.rule_sha256, "rule sha256"),
    ];
    checks.iter().find(|(ok, _)| !ok).map(|(_, column)| *column)
}

/// Checks the merchant's whole chain, up to its recorded head.
pub async fn verify(store: &Store, merchant: MerchantId) -> Result<Verification, StoreError> {
    verify_range(store, merchant, 1, None).await
}

/// Checks records `from..=to` (to the head when `to` is `None`). A range that starts after
/// the first record trusts the stored record before it as its anchor; a signed checkpoint
/// (see [`super::checkpoint`]) is what makes that anchor trustworthy.
pub async fn verify_range(
    store: &Store,
    merchant: MerchantId,
    from: i64,
    to: Option<i64>,
) -> Result<Verification, StoreError> {
    let (head_seq, head_hash) = store.chain_head(merchant).await?.unwrap_or((0, GENESIS_HASH.to_owned()));
    let last = to.unwrap_or(head_seq).min(head_seq);
    let mut records = 0;
    let broken = |seq: i64, reason: String, records: i64| Verification {
        intact: false,
        records,
        head_seq,
        head_hash: head_hash.clone(),
        first_broken: Some(Broken { seq, reason }),
    };
    let mut prev_hash = GENESIS_HASH.to_owned();
    if from > 1 {
        match store.chain(merchant, from - 2, 1).await?.pop() {
            Some(anchor) if anchor.seq == from - 1 => prev_hash = anchor.hash,
            _ => return Ok(broken(from - 1, format!("record {} is missing", from - 1), 0)),
        }
    }
    let _turn = VERIFYING.acquire().await.expect("the verification semaphore is never closed");
    let mut expected_seq = from;
    while expected_seq <= last {
        let page = store.chain(merchant, expected_seq - 1, PAGE).await?;
        let full = page.len() == PAGE as usize;
        let from_seq = expected_seq;
        let anchor = std::mem::take(&mut prev_hash);
        let checked = tokio::task::spawn_blocking(move || check_page(merchant, page, from_seq, anchor, last))
            .await
            .expect("checking a page does not panic");
        match checked {
            Ok(progress) => {
                records += progress.records;
                expected_seq = progress.next_seq;
                prev_hash = progress.prev_hash;
            }
            Err((seq, reason, checked)) => return Ok(broken(seq, reason, records + checked)),
        }
        if !full {
            break;
        }
    }
    if expected_seq <= last {
        return Ok(broken(
            expected_seq,
            format!("the chain ends at {} but its head is at {head_seq}", expected_seq - 1),
            records,
        ));
    }
    if last == head_seq && prev_hash != head_hash && last >= from {
        return Ok(broken(head_seq, "the last record is not the chain's recorded head".into(), records));
    }
    Ok(Verification { intact: true, records, head_seq, head_hash: head_hash.clone(), first_broken: None })
}
