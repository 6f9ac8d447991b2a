//! Rule changes that reprice a catalogue: activation, rollback and new parameters of the
//! active version. Each commits with its sweep request (see [`crate::store::work`]); the chain
//! head is locked first, as by every writer of the merchant, so no batch evaluated under the
//! previous rule is appended after the change (see [`super::decisions`]).

use serde_json::{Map, Value};

use super::Gate;
use crate::domain::{MerchantId, Trigger};
use crate::store::{Activation, RuleVersion, Store, StoreError, chain, now, rules, work};

pub(super) async fn set_params(
    store: &Store,
    merchant: MerchantId,
    version: i64,
    params: &Map<String, Value>,
    gate: &Gate,
) -> Result<(RuleVersion, Option<i64>), StoreError> {
    let mut tx = store.begin().await?;
    chain::lock_head(&mut tx, merchant).await?;
    let updated =
        rules::set_params(&mut tx, merchant, version, params).await?.ok_or(StoreError::UnknownRuleVersion(version))?;
    let active = rules::active_version(&mut tx, merchant).await?;
    if active == Some(version) {
        work::request_sweep(&mut tx, merchant, Trigger::ParamsChanged, true, now()).await?;
    }
    gate.check()?;
    tx.commit().await?;
    Ok((updated, active))
}

pub(super) async fn activate(
    store: &Store,
    merchant: MerchantId,
    version: Option<i64>,
    gate: &Gate,
) -> Result<Activation, StoreError> {
    let mut tx = store.begin().await?;
    chain::lock_head(&mut tx, merchant).await?;
    let activation = match version {
        Some(version) => rules::activate(&mut tx, merchant, version).await?,
        None => rules::roll_back(&mut tx, merchant).await?,
    };
    // Activating the active version again sweeps too: a way to have every price decided anew.
    work::request_sweep(&mut tx, merchant, Trigger::RuleActivated, true, now()).await?;
    gate.check()?;
    tx.commit().await?;
    Ok(activation)
}
