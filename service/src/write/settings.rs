//! Merchant settings that touch prices in force: the prior price in lookups.

use super::Gate;
use crate::domain::MerchantId;
use crate::pricing::prior::prior_price;
use crate::store::{CurrentPrice, Store, StoreError, chain, prices};

/// Prices per transaction: a large catalogue never holds the write lock for long. Prices that
/// move meanwhile get their prior price from the engine, which reads the setting set first.
const PAGE: u32 = 1_000;

pub(super) async fn set_show_prior_price(
    store: &Store,
    merchant: MerchantId,
    show: bool,
    gate: &Gate,
) -> Result<Vec<CurrentPrice>, StoreError> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let mut tx = store.begin().await?;
        chain::lock_head(&mut tx, merchant).await?;
        prices::set_shows_prior_price(&mut tx, merchant, show).await?;
        let page = prices::page_in(&mut tx, merchant, &after, PAGE).await?;
        let full = page.len() == PAGE as usize;
        for mut price in page {
            price.prior_minor =
                if show { prior_price(&mut *tx, merchant, &price.sku, price.effective_at).await? } else { None };
            prices::set_prior(&mut tx, merchant, &price.sku, price.prior_minor).await?;
            after = price.sku.to_string();
            all.push(price);
        }
        gate.check()?;
        tx.commit().await?;
        if !full {
            break;
        }
    }
    Ok(all)
}
