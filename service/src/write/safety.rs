//! The safety net on the write path. A batch of a rule's decisions is applied under the
//! merchant's chain head lock (see [`super::decisions`]); before any price moves, each change
//! that would move one is looked at in order:
//! 0. an override in force for the SKU holds it (`override`; see [`super::overrides`]);
//! 1. a freeze holds it (`frozen`);
//! 2. a tripped breaker holds it (`breaker`);
//! 3. the approval policy holds it as a proposal (`large_increase`, `large_decrease`,
//!    `low_margin`, `new_version`, `all_changes`) that a person may approve or reject;
//! 4. the breaker counts it, and holds the change that makes its window cross a limit, which
//!    trips the breaker in the same transaction (see [`crate::pricing::breaker`]).
//!
//! Held changes are decisions with outcome `held` whose record says why and what price they
//! would have set; the price in force stays. Kept and failed decisions are recorded as always
//! (and counted by the breaker). Freezing, resuming and changing the policies take the same
//! chain head lock, so once a freeze is acknowledged no price moves until it is lifted. Lifting
//! a freeze or resuming the breaker sweeps the catalogue (trigger `resumed`), so prices follow
//! what is true by then; that sweep is watched by the breaker like any automated work.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use super::Gate;
use crate::domain::safety::{ApprovalPolicy, BreakerLimits, Change, HoldReason, move_bps};
use crate::domain::{MerchantId, Outcome, Trigger};
use crate::pricing::breaker::{Counted, Counts, Trip, Window};
use crate::pricing::{Hold, Judged};
use crate::store::safety::{self, Frozen, SafetyRow};
use crate::store::{Store, StoreError, Tx, chain, overrides, rules, work};

/// A merchant's policies as set (or the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies {
    pub approval: ApprovalPolicy,
    pub breaker: BreakerLimits,
}

/// A merchant's safety state, as `GET /v1/automation` shows it.
#[derive(Debug, Clone, Default)]
pub struct SafetyState {
    pub policies: Policies,
    pub frozen: Option<Frozen>,
    /// When the breaker tripped and the limit it crossed.
    pub tripped: Option<(DateTime<Utc>, Trip)>,
}

fn parse<T: serde::de::DeserializeOwned + Default>(json: Option<&str>, what: &str) -> Result<T, StoreError> {
    json.map_or(Ok(T::default()), |json| {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("stored {what}: {e}")))
    })
}

impl SafetyState {
    fn from_row(row: SafetyRow) -> Result<Self, StoreError> {
        let tripped = match row.tripped {
            Some((at, json)) => {
                Some((at, serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("stored trip: {e}")))?))
            }
            None => None,
        };
        Ok(Self {
            policies: Policies {
                approval: parse(row.approval.as_deref(), "approval policy")?,
                breaker: parse(row.breaker.as_deref(), "breaker limits")?,
            },
            frozen: row.frozen,
            tripped,
        })
    }
}

/// Reads a merchant's safety state.
pub async fn state(store: &Store, merchant: MerchantId) -> Result<SafetyState, StoreError> {
    SafetyState::from_row(store.safety(merchant).await?)
}

/// Whether the breaker watches a decision: the rule answering the outside world (a competitor
/// feed, demand, the schedule, the sweep after a resume), which is where a feed error or a
/// holiday comes from. The merchant's own acts (a product put or imported, an activation, new
/// parameters or settings) are not watched: what the rule does with them is the merchant's
/// instruction, and the approval policy is the brake for those.
fn watched(trigger: Trigger) -> bool {
    matches!(trigger, Trigger::CompetitorPrices | Trigger::Demand | Trigger::Schedule | Trigger::Resumed)
}

/// The minute of an instant, counted from the Unix epoch.
fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// The safety net for one batch, loaded in its transaction.
pub(super) struct Gatekeeper {
    approval: ApprovalPolicy,
    frozen: bool,
    tripped: bool,
    limits: BreakerLimits,
    /// The breaker's window, once a watched decision needs it.
    window: Option<Window>,
    catalogue: i64,
    version_age_secs: i64,
    now: DateTime<Utc>,
    /// The batch's SKUs under an override (see [`super::overrides`]).
    overridden: HashSet<String>,
    /// The limit crossed in this batch.
    pub tripped_now: Option<Trip>,
}

impl Gatekeeper {
    /// Reads the merchant's policies and state. `catalogue` is the number of products (for the
    /// breaker's share of the catalogue); `span` the batch's first and last SKU.
    pub(super) async fn load(
        tx: &mut Tx,
        merchant: MerchantId,
        catalogue: i64,
        span: (Option<&str>, Option<&str>),
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let overridden = match span {
            (Some(first), Some(last)) => {
                overrides::overridden_between(tx, merchant, first, last).await?.into_keys().collect()
            }
            _ => HashSet::new(),
        };
        let state = SafetyState::from_row(safety::row(tx, merchant).await?)?;
        let version_age_secs = match state.policies.approval.new_version_hours {
            Some(_) => rules::activated_at(tx, merchant).await?.map_or(i64::MAX, |at| (now - at).num_seconds()),
            None => i64::MAX,
        };
        Ok(Self {
            approval: state.policies.approval,
            frozen: state.frozen.is_some(),
            tripped: state.tripped.is_some(),
            limits: state.policies.breaker,
            window: None,
            catalogue,
            version_age_secs,
            now,
            overridden,
            tripped_now: None,
        })
    }

    /// The window start, as an instant: a price that took effect before it had not moved in it.
    fn window_start(&self) -> DateTime<Utc> {
        let first_minute = minute_of(self.now) - self.limits.window_minutes() + 1;
        DateTime::from_timestamp(first_minute * 60, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    async fn window(&mut self, tx: &mut Tx, merchant: MerchantId) -> Result<&mut Window, StoreError> {
        if self.window.is_none() {
            let since = minute_of(self.now) - self.limits.window_minutes() + 1;
            let mut so_far = Counts::default();
            for (_, json) in safety::minutes(tx, merchant, since).await? {
                let counts: Counts = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("stored breaker counts: {e}")))?;
                so_far.add(&counts);
            }
            self.window = Some(Window::new(self.limits.clone(), self.catalogue, so_far));
        }
        Ok(self.window.as_mut().expect("just loaded"))
    }

    /// Looks at one fresh decision, in the batch's order: the hold it gets, if any.
    pub(super) async fn judge(
        &mut self,
        tx: &mut Tx,
        merchant: MerchantId,
        j: &Judged,
    ) -> Result<Option<Hold>, StoreError> {
        let watch = self.limits.enabled && !self.tripped && watched(j.trigger);
        let (old, new) = (j.current.price.minor(), j.decided.new_price_minor);
        let held = |reason: HoldReason| Hold { reason, proposed_price_minor: new, expires_at: None, tripped: None };
        let counted = match j.outcome() {
            // A price set by hand: the merchant's, not the rule's (nor the breaker's business).
            Outcome::Changed if self.overridden.contains(j.product.sku.as_str()) => {
                return Ok(Some(held(HoldReason::Override)));
            }
            Outcome::Changed if self.frozen => return Ok(Some(held(HoldReason::Frozen))),
            Outcome::Changed if self.tripped => return Ok(Some(held(HoldReason::Breaker))),
            Outcome::Changed => {
                let change = Change {
                    old_minor: old,
                    new_minor: new,
                    cost_minor: j.product.cost.minor(),
                    version_age_secs: self.version_age_secs,
                };
                if let Some(reason) = self.approval.hold(change) {
                    let expires_at = Some(self.now + Duration::seconds(self.approval.expires_after_secs));
                    if watch {
                        self.window(tx, merchant).await?.count(Counted::Kept);
                    }
                    return Ok(Some(Hold { expires_at, ..held(reason) }));
                }
                let first = j.current.effective_at < self.window_start();
                Counted::Moved { size_bps: move_bps(old, new).abs(), first }
            }
            Outcome::Kept | Outcome::Held => Counted::Kept,
            Outcome::Failed => Counted::Failed,
        };
        if !watch {
            return Ok(None);
        }
        let Some(trip) = self.window(tx, merchant).await?.count(counted) else {
            return Ok(None);
        };
        self.tripped = true;
        self.tripped_now = Some(trip.clone());
        Ok(matches!(counted, Counted::Moved { .. }).then(|| Hold { tripped: Some(trip), ..held(HoldReason::Breaker) }))
    }

    /// Writes what the batch added to the breaker's window, and its trip.
    pub(super) async fn save(&self, tx: &mut Tx, merchant: MerchantId) -> Result<(), StoreError> {
        if let Some(window) = &self.window
            && !window.added.is_empty()
        {
            let minute = minute_of(self.now);
            let mut counts = Counts::default();
            for (at, json) in safety::minutes(tx, merchant, minute).await? {
                if at == minute {
                    counts = serde_json::from_str(&json)
                        .map_err(|e| StoreError::Corrupt(format!("stored breaker counts: {e}")))?;
                }
            }
            counts.add(&window.added);
            let json = serde_json::to_string(&counts).expect("counts serialize");
            safety::put_minute(tx, merchant, minute, &json, minute - self.limits.window_minutes() + 1).await?;
        }
        if let Some(trip) = &self.tripped_now {
            let json = serde_json::to_string(trip).expect("a trip serializes");
            safety::set_tripped(tx, merchant, Some((self.now, &json))).await?;
        }
        Ok(())
    }
}

/// Replaces the merchant's approval policy and breaker limits (checked by the caller).
pub(super) async fn set_policies(
    store: &Store,
    merchant: MerchantId,
    policies: &Policies,
    gate: &Gate,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    chain::lock_head(&mut tx, merchant).await?;
    let approval = serde_json::to_string(&policies.approval).expect("a policy serializes");
    let breaker = serde_json::to_string(&policies.breaker).expect("limits serialize");
    safety::set_policies(&mut tx, merchant, &approval, &breaker).await?;
    gate.check()?;
    tx.commit().await?;
    Ok(())
}

/// Freezes automated changes, or (`None`) lifts the freeze and sweeps the catalogue; false when
/// nothing changed (already frozen, or not frozen).
pub(super) async fn set_frozen(
    store: &Store,
    merchant: MerchantId,
    frozen: Option<&Frozen>,
    gate: &Gate,
) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    chain::lock_head(&mut tx, merchant).await?;
    let was = safety::row(&mut tx, merchant).await?.frozen.is_some();
    if was == frozen.is_some() {
        return Ok(false);
    }
    safety::set_frozen(&mut tx, merchant, frozen).await?;
    if frozen.is_none() {
        work::request_sweep(&mut tx, merchant, Trigger::Resumed, true, crate::store::now()).await?;
    }
    gate.check()?;
    tx.commit().await?;
    Ok(true)
}

/// Closes a tripped breaker (its window starts again) and sweeps the catalogue; false when it
/// had not tripped.
pub(super) async fn resume(store: &Store, merchant: MerchantId, gate: &Gate) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    chain::lock_head(&mut tx, merchant).await?;
    if safety::row(&mut tx, merchant).await?.tripped.is_none() {
        return Ok(false);
    }
    safety::set_tripped(&mut tx, merchant, None).await?;
    work::request_sweep(&mut tx, merchant, Trigger::Resumed, true, crate::store::now()).await?;
    gate.check()?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_watches_automation_not_the_merchants_own_sweeps() {
        for trigger in [Trigger::CompetitorPrices, Trigger::Demand, Trigger::Schedule, Trigger::Resumed] {
            assert!(watched(trigger), "{trigger:?}");
        }
        for trigger in
            [Trigger::ProductChanged, Trigger::RuleActivated, Trigger::ParamsChanged, Trigger::SettingsChanged]
        {
            assert!(!watched(trigger), "{trigger:?}");
        }
    }
}
