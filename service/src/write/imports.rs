//! Import jobs' writes (see [`crate::catalogue`]): a piece's products with the job's progress
//! and the piece's rejected lines in one transaction, a replace import's deletions page by
//! page, and the job's end with the one catalogue sweep its changes call for. After each
//! commit, what moved lands in the cache and goes to the other replicas, as for any write.

use super::catalogue::{self, BatchOutcome};
use super::{Gate, Prices, retrying};
use crate::domain::product_file;
use crate::domain::{JobId, MerchantId, ProductDraft, Sku, Trigger};
use crate::replication::Change;
use crate::store::jobs::{self, JobState, PieceCounts, Rejection};
use crate::store::{StoreError, chain, work};

/// A piece of an import, parsed: the lines that passed, those that did not, and its counts.
pub struct ParsedPiece {
    /// Each good line's number and product.
    pub drafts: Vec<(i64, ProductDraft)>,
    pub rejections: Vec<Rejection>,
    /// Lines read (good and bad) and the piece's size.
    pub lines: i64,
    pub bytes: i64,
    /// Pieces this covers (more than one for an atomic import, written whole).
    pub pieces: i64,
    /// For a replace import: every SKU the piece names, accepted or not.
    pub named: Vec<String>,
}

/// What writing a piece did.
#[derive(Debug, Clone, Default)]
pub struct PieceResult {
    pub counts: PieceCounts,
    /// Lines refused when written (a product in another currency), with the parse's.
    pub rejections: Vec<Rejection>,
    /// False when an atomic piece had a rejected line: nothing was written.
    pub written: bool,
}

fn currency_mismatch(line: i64, sku: &Sku, existing: &str) -> Rejection {
    Rejection {
        line,
        code: "currency_mismatch".to_owned(),
        message: format!("product {sku} exists in {existing}; a product's currency never changes"),
        details: "{}".to_owned(),
    }
}

impl Prices {
    /// Writes a parsed piece of an import job. `atomic`: any rejected line (parsed or written)
    /// writes nothing but the count of lines read.
    pub async fn write_import_piece(
        &self,
        job: JobId,
        merchant: MerchantId,
        piece: ParsedPiece,
        atomic: bool,
    ) -> Result<PieceResult, StoreError> {
        let this = self.clone();
        self.detached(move |gate: Gate| async move {
            let inner = &this.inner;
            let store = &inner.store;
            let drafts: Vec<&ProductDraft> = piece.drafts.iter().map(|(_, d)| d).collect();
            let (result, written) = retrying(&gate, || async {
                let mut tx = store.begin().await?;
                let mut head = chain::lock_head(&mut tx, merchant).await?;
                let mut rejections = piece.rejections.clone();
                let mut written = None;
                if !atomic || rejections.is_empty() {
                    let batch = catalogue::put_batch(&mut tx, store.backend(), &mut head, merchant, &drafts).await?;
                    for ((line, draft), outcome) in piece.drafts.iter().zip(&batch.outcomes) {
                        if let BatchOutcome::WrongCurrency { existing } = outcome {
                            rejections.push(currency_mismatch(*line, &draft.sku, existing));
                        }
                    }
                    written = Some(batch);
                }
                rejections.sort_by_key(|r| r.line);
                let refused = atomic && !rejections.is_empty();
                if refused {
                    // Nothing of an atomic import is kept but the count of what was read.
                    tx.rollback().await?;
                    tx = store.begin().await?;
                    written = None;
                }
                let applied = match &written {
                    Some(batch) => batch.outcomes.iter().filter(|o| matches!(o, BatchOutcome::Written(_))).count(),
                    None => 0,
                };
                let counts = PieceCounts {
                    pieces: piece.pieces,
                    lines: piece.lines,
                    applied: applied as i64,
                    changed: written.as_ref().map_or(0, |b| b.changed.len() as i64),
                    rejected: rejections.len() as i64,
                    bytes: piece.bytes,
                };
                if !piece.named.is_empty() && !refused {
                    let named: Vec<&str> = piece.named.iter().map(String::as_str).collect();
                    jobs::record_skus(&mut tx, job, &named).await?;
                }
                jobs::record_piece(&mut tx, job, counts, &rejections).await?;
                tx.commit().await?;
                Ok((PieceResult { counts, rejections, written: !refused }, written))
            })
            .await?;
            if let Some(batch) = written {
                for price in &batch.prices {
                    inner.cache.put(merchant, price);
                }
                if !batch.changed.is_empty() {
                    inner.replication.publish(Change::Skus(merchant, batch.changed));
                }
            }
            Ok(result)
        })
        .await
    }

    /// Deletes up to `limit` of the merchant's products after `after` that a replace import's
    /// file does not hold, each kept with the job as an import line; returns the last SKU
    /// deleted (`None`: none was left).
    pub async fn delete_absent_page(
        &self,
        job: JobId,
        merchant: MerchantId,
        after: String,
        limit: u32,
    ) -> Result<Option<Sku>, StoreError> {
        let this = self.clone();
        self.detached(move |gate: Gate| async move {
            let inner = &this.inner;
            let store = &inner.store;
            let gone = retrying(&gate, || async {
                let mut tx = store.begin().await?;
                let mut head = chain::lock_head(&mut tx, merchant).await?;
                let absent = jobs::absent_skus(&mut tx, merchant, job, &after, limit).await?;
                let gone = catalogue::delete_batch(&mut tx, store.backend(), &mut head, merchant, &absent).await?;
                for (product, price) in &gone {
                    jobs::record_deleted(&mut tx, job, &product.sku, &product_file::ndjson_line(product, *price))
                        .await?;
                }
                tx.commit().await?;
                Ok(absent)
            })
            .await?;
            for sku in &gone {
                inner.cache.remove(merchant, sku);
            }
            if !gone.is_empty() {
                inner.replication.publish(Change::Skus(merchant, gone.iter().map(|s| (s.clone(), 0)).collect()));
            }
            Ok(gone.last().cloned())
        })
        .await
    }

    /// Ends an import job in `state`; when it changed products, one catalogue sweep of the
    /// merchant is requested in the same transaction (from the top: the import's changes
    /// reach every SKU the sweep will pass).
    pub async fn finish_import(
        &self,
        job: JobId,
        merchant: MerchantId,
        changed: bool,
        state: JobState,
        note: Option<String>,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let this = self.clone();
        self.detached(move |gate: Gate| async move {
            let store = &this.inner.store;
            retrying(&gate, || async {
                let mut tx = store.begin().await?;
                if changed {
                    let head = chain::lock_head(&mut tx, merchant).await?;
                    work::request_sweep(&mut tx, merchant, Trigger::ProductChanged, true, head.at()).await?;
                }
                jobs::finish(&mut tx, &job.to_string(), state, note.as_deref(), error.as_deref()).await?;
                tx.commit().await
            })
            .await?;
            this.inner.wakeups.wake(merchant);
            Ok(())
        })
        .await
    }
}
