//! Price events out: every change of a price in force (and a trip of the merchant's circuit
//! breaker, `kind` `breaker_tripped`), published after commit, in order per
//! merchant, to JetStream ([`jetstream`]) and to merchants' webhooks ([`webhooks`]). Both read
//! the same outbox, the decision chain (see [`crate::store::outbox`]), through a [`Channel`]
//! each: a publisher leases a merchant's cursor, reads the changes past it a page at a time,
//! hands them to the channel in order, and moves the cursor past what the channel took. A crash
//! between a commit and its publication leaves the change past the cursor, so the next start
//! publishes it; one published again carries the same `decision_seq`, by which consumers drop
//! it (JetStream also drops it by message id within its duplicate window).

pub mod jetstream;
pub mod webhooks;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::MerchantId;
use crate::pricing::breaker::Trip;
use crate::store::outbox::{Behind, PriceChange};
use crate::store::{Store, StoreError, now};

/// What an event tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A price in force changed.
    PriceChanged,
    /// The merchant's circuit breaker tripped: automated changes are held until
    /// `POST /v1/automation/resume` (the price did not change; `breaker` says which limit).
    BreakerTripped,
}

/// The JSON of one price event, on every channel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PriceEvent {
    pub kind: EventKind,
    pub merchant_id: String,
    pub sku: String,
    /// What moved it: a rule's trigger, or `product_created`, `base_price_changed`,
    /// `product_deleted`.
    pub trigger: String,
    pub currency: String,
    /// Absent when the product was created.
    pub old_price_minor: Option<i64>,
    /// Absent when the product was deleted.
    pub new_price_minor: Option<i64>,
    /// The rule version that set it (absent for the catalogue's own events).
    pub rule_version: Option<i64>,
    /// The decision's sequence number in the merchant's chain: increasing per merchant, the
    /// same on a redelivery.
    pub decision_seq: i64,
    pub at: DateTime<Utc>,
    /// The limit crossed (`breaker_tripped` only): `limit`, `threshold`, `observed`, `sample`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<Trip>,
}

impl From<&PriceChange> for PriceEvent {
    fn from(change: &PriceChange) -> Self {
        let breaker = change.breaker_trip.clone().and_then(|trip| serde_json::from_value::<Trip>(trip).ok());
        Self {
            kind: if change.breaker_trip.is_some() { EventKind::BreakerTripped } else { EventKind::PriceChanged },
            breaker,
            merchant_id: change.merchant.to_string(),
            sku: change.sku.to_string(),
            trigger: change.trigger.as_str().to_owned(),
            currency: change.currency.clone(),
            old_price_minor: change.old_price_minor,
            new_price_minor: change.new_price_minor,
            rule_version: change.rule_version,
            decision_seq: change.seq,
            at: change.at,
        }
    }
}

/// Where a publisher hands events.
pub trait Channel {
    /// The outbox channel's name (its cursors' key).
    fn name(&self) -> &str;

    /// Takes `changes` (one merchant's, in order) and says how many, from the first, it took
    /// for good; an error when it took none and should be asked again later.
    fn deliver(
        &mut self,
        merchant: MerchantId,
        changes: &[PriceChange],
    ) -> impl std::future::Future<Output = Result<usize, String>> + Send;
}

/// Changes read from the chain at once.
pub const PAGE: usize = 500;
/// How long a publisher holds a merchant's cursor without renewing it.
const LEASE: Duration = Duration::from_secs(30);

/// What one pass over the merchants did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub published: usize,
    /// Chain records still past the cursors after the pass.
    pub behind: i64,
    /// A channel refused, so the pass ended early.
    pub failed: bool,
}

/// One page per merchant that is behind, merchants in turn (a merchant with a long backlog
/// does not hold up the others for more than a page).
pub async fn publish_pass<C: Channel>(store: &Store, channel: &mut C, owner: &str) -> Result<Pass, StoreError> {
    let mut pass = Pass::default();
    for behind in store.behind(channel.name()).await? {
        pass.add(publish_page(store, channel, owner, behind, PAGE).await?);
        if pass.failed {
            break;
        }
    }
    Ok(pass)
}

/// One page of one merchant's cursor of `channel` (a webhook's).
pub async fn publish_cursor<C: Channel>(
    store: &Store,
    channel: &mut C,
    owner: &str,
    merchant: MerchantId,
    page: usize,
) -> Result<Pass, StoreError> {
    match store.cursor(merchant, channel.name()).await? {
        Some(behind) if behind.head > behind.published_through => {
            publish_page(store, channel, owner, behind, page).await
        }
        _ => Ok(Pass::default()),
    }
}

impl Pass {
    fn add(&mut self, other: Pass) {
        self.published += other.published;
        self.behind += other.behind;
        self.failed |= other.failed;
    }
}

/// Leases the cursor, hands the channel the next page of changes past it, and moves it past
/// what the channel took.
async fn publish_page<C: Channel>(
    store: &Store,
    channel: &mut C,
    owner: &str,
    behind: Behind,
    page: usize,
) -> Result<Pass, StoreError> {
    let mut pass = Pass::default();
    let until = now() + chrono::Duration::from_std(LEASE).expect("a short lease");
    if !store.lease_cursor(behind.merchant, channel.name(), owner, until).await? {
        pass.behind = behind.head - behind.published_through;
        return Ok(pass);
    }
    let (changes, covered) = store.price_changes(behind.merchant, behind.published_through, behind.head, page).await?;
    let through = if changes.is_empty() {
        covered
    } else {
        match channel.deliver(behind.merchant, &changes).await {
            Ok(taken) if taken == changes.len() => covered,
            Ok(0) => {
                pass.failed = true;
                behind.published_through
            }
            // Part of the page: the cursor stops just before the first one not taken.
            Ok(taken) => changes[taken].seq - 1,
            Err(why) => {
                tracing::warn!(channel = channel.name(), merchant = %behind.merchant, error = %why,
                    "price events not published; trying again");
                pass.failed = true;
                behind.published_through
            }
        }
    };
    if through > behind.published_through
        && store.advance_cursor(behind.merchant, channel.name(), owner, through).await?
    {
        pass.published = changes.iter().take_while(|c| c.seq <= through).count();
    }
    pass.behind = behind.head - through;
    Ok(pass)
}

/// A publisher's identity in cursor leases: one per process and channel.
pub fn owner_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
