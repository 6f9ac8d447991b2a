//! Checking a merchant's decision chain: every record must follow the one before (consecutive
//! sequence numbers, the previous record's hash), hash to its own stored hash, agree with its
//! searchable columns (its time and merchant included: the time drives the price at an
//! instant, the prior price and the filters), and the last must be the chain's recorded head.
//! The first record that fails is named, with the reason.
//!
//! A verification starts, by default, from the newest signed checkpoint the service made (see
//! [`super::checkpoint`]) at or before where it ends: the checkpoint's signature must verify
//! with one of the service's keys and its record must still have the hash it states, and the
//! records after it are re-hashed in full. So a chain of any length verifies in the time its
//! new records take, and any rewrite that keeps the chain consistent (which changes every hash
//! after the edit) is still caught at the checkpoint. What it does not re-read is the content of
//! records before the checkpoint: `full` re-hashes from record 1, for a periodic deep check.
//!
//! Hashing a long chain is CPU work: each page is checked on a blocking thread, never on the
//! thread that serves requests (checkout's lookups), and at most [`AT_ONCE`] verifications run
//! at a time in a process; more wait their turn.

use serde::Serialize;

use super::checkpoint::{CheckpointSigner, SignedCheckpoint};
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
    /// The first record checked (records before it are vouched for by `anchor`, or trusted).
    pub from_seq: i64,
    /// The signed checkpoint the check started from; none when it started from record 1 or
    /// from a range the caller chose.
    pub anchor: Option<Anchor>,
    pub head_seq: i64,
    pub head_hash: String,
    pub first_broken: Option<Broken>,
}

/// The checkpoint a verification starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Anchor {
    pub seq: i64,
    pub head_hash: String,
    pub signed_at: chrono::DateTime<chrono::Utc>,
    pub key_id: String,
}

/// Where a verification starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// From the newest valid signed checkpoint (from record 1 when there is none).
    SinceCheckpoint,
    /// From record 1.
    Full,
}

/// How many kept checkpoints are tried, newest first, before starting from record 1.
const ANCHORS_TRIED: i64 = 8;

/// Checks the chain up to `to` (the head when `None`) in the given scope.
pub async fn verify_to(
    store: &Store,
    signer: &CheckpointSigner,
    merchant: MerchantId,
    to: Option<i64>,
    scope: Scope,
) -> Result<Verification, StoreError> {
    if scope == Scope::Full {
        return verify_range(store, merchant, 1, to).await;
    }
    let head_seq = store.chain_head(merchant).await?.map_or(0, |(seq, _)| seq);
    let last = to.unwrap_or(head_seq).min(head_seq);
    let kept = store.checkpoints_at_or_before(merchant, last, ANCHORS_TRIED).await?;
    let anchor = kept
        .iter()
        .filter_map(|json| serde_json::from_str::<SignedCheckpoint>(json).ok())
        .find(|signed| signed.checkpoint.merchant_id == merchant.to_string() && signer.signed_this(signed));
    let Some(anchor) = anchor.map(|signed| signed.checkpoint) else {
        return verify_range(store, merchant, 1, to).await;
    };
    let anchor =
        Anchor { seq: anchor.seq, head_hash: anchor.head_hash, signed_at: anchor.signed_at, key_id: anchor.key_id };
    let stored_hash = match anchor.seq {
        0 => Some(GENESIS_HASH.to_owned()),
        seq => store.decision(merchant, seq).await?.map(|d| d.hash),
    };
    if stored_hash.as_deref() != Some(anchor.head_hash.as_str()) {
        let (head_seq, head_hash) = store.chain_head(merchant).await?.unwrap_or((0, GENESIS_HASH.to_owned()));
        return Ok(Verification {
            intact: false,
            records: 0,
            from_seq: anchor.seq,
            head_seq,
            head_hash,
            first_broken: Some(Broken {
                seq: anchor.seq,
                reason: format!(
                    "it no longer has the hash that the checkpoint signed at {} states",
                    anchor.signed_at.to_rfc3339()
                ),
            }),
            anchor: Some(anchor),
        });
    }
    let mut verification = verify_range(store, merchant, anchor.seq + 1, to).await?;
    verification.anchor = Some(anchor);
    Ok(verification)
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
        from_seq: from,
        anchor: None,
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
    Ok(Verification {
        intact: true,
        records,
        from_seq: from,
        anchor: None,
        head_seq,
        head_hash: head_hash.clone(),
        first_broken: None,
    })
}
