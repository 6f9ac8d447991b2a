//! The prior price of a SKU for a price taking effect at an instant: the store reads the SKU's
//! changes around the window, the domain's rule ([`crate::domain::prior`]) picks the lowest
//! price in force in it. The write side computes it in the transaction that moves a price (so
//! it sees the chain as that move does).

use chrono::{DateTime, Utc};

use crate::domain::prior::{PRIOR_WINDOW, lowest_in_force};
use crate::domain::{MerchantId, Sku};
use crate::store::{StoreError, history};

pub async fn prior_price<'c>(
    executor: impl sqlx::AnyExecutor<'c>,
    merchant: MerchantId,
    sku: &Sku,
    at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let changes = history::price_changes(executor, merchant, sku, at - PRIOR_WINDOW, at).await?;
    Ok(lowest_in_force(&changes, at))
}
