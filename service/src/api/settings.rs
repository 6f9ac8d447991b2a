//! `/v1/settings`: a merchant's own settings, for `merchant` keys. Whether checkout lookups
//! carry the prior price (the lowest price in force in the 30 days before the current one took
//! effect), which EU price-indication rules ask for with every price reduction: turning it on
//! fills the prior price of every product from the history before answering, and puts it in
//! the price cache; turning it off clears it. And how far from its product's base price a
//! competitor's price may be before it is held back as implausible (`pricing::plausible`). And
//! the safety net's approval policy and circuit breaker limits (`write::safety`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::access::{Access, Write};
use super::extract::resource;
use crate::domain::Invalid;
use crate::domain::safety::{ApprovalPolicy, BreakerLimits};
use crate::pricing::plausible::MAX_COMPETITOR_RATIO;
use crate::store::Store;
use crate::write::{Prices, safety};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/settings").get(get_settings).put(put_settings));
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantSettings {
    /// Checkout lookups carry `prior_price_minor`.
    pub show_prior_price: bool,
    /// A competitor's price more than this many times above or below the product's base price
    /// is implausible: stored, flagged to the feed, and kept out of rules until confirmed
    /// (`POST /v1/signals/competitor-prices/confirm`). 1 to 1000, or 0 for no check; default 4.
    /// Left out of a `PUT`, it stays as it is; a change reprices the catalogue.
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    pub max_competitor_ratio: Option<i64>,
    /// Which rule changes wait for a person's approval as proposals (`GET /v1/proposals`).
    /// Left out of a `PUT`, it stays as it is; given, it replaces the policy whole (fields left
    /// out of it take their defaults: off).
    #[serde(default, deserialize_with = "crate::domain::object::optional_object")]
    pub approval: Option<ApprovalPolicy>,
    /// The circuit breaker's limits (see `GET /v1/automation` for its state). Left out of a
    /// `PUT`, they stay as they are; given, they replace the limits whole (fields left out take
    /// their defaults).
    #[serde(default, deserialize_with = "crate::domain::object::optional_object")]
    pub breaker: Option<BreakerLimits>,
}

#[utoipa::path(get, path = "/v1/settings", tag = "merchants", security(("bearer" = [])),
    responses((status = 200, description = "The merchant's settings", body = MerchantSettings)))]
pub async fn get_settings(access: Access<Write>, store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let merchant = store.merchant(merchant).await?.ok_or_else(|| ApiError::not_found("the merchant"))?;
    let ratio = store.max_competitor_ratio(merchant.id).await?;
    let policies = safety::state(&store, merchant.id).await?.policies;
    Ok(HttpResponse::Ok().json(MerchantSettings {
        show_prior_price: merchant.show_prior_price,
        max_competitor_ratio: Some(ratio),
        approval: Some(policies.approval),
        breaker: Some(policies.breaker),
    }))
}

#[utoipa::path(put, path = "/v1/settings", tag = "merchants", request_body = MerchantSettings,
    security(("bearer" = [])),
    responses((status = 200, description = "The merchant's settings", body = MerchantSettings),
              (status = 422, description = "`validation_failed`: a ratio out of range")))]
pub async fn put_settings(
    access: Access<Write>,
    prices: web::Data<Prices>,
    body: web::Json<MerchantSettings>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    if let Some(ratio) = body.max_competitor_ratio
        && !(0..=MAX_COMPETITOR_RATIO).contains(&ratio)
    {
        let message = format!("0 (no check) to {MAX_COMPETITOR_RATIO}");
        return Err(ApiError::Validation(Invalid::one("max_competitor_ratio", message)));
    }
    let mut invalid = Invalid::new();
    for checked in [body.approval.as_ref().map(ApprovalPolicy::check), body.breaker.as_ref().map(BreakerLimits::check)]
        .into_iter()
        .flatten()
    {
        if let Err(problems) = checked {
            invalid.absorb_all(problems);
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::Validation(invalid));
    }
    let body = body.into_inner();
    if body.approval.is_some() || body.breaker.is_some() {
        let mut policies = safety::state(prices.store(), merchant).await?.policies;
        if let Some(approval) = body.approval.clone() {
            policies.approval = approval;
        }
        if let Some(breaker) = body.breaker.clone() {
            policies.breaker = breaker;
        }
        prices.set_policies(merchant, policies).await?;
    }
    let touched = prices.set_show_prior_price(merchant, body.show_prior_price).await?;
    if let Some(ratio) = body.max_competitor_ratio {
        prices.set_max_competitor_ratio(merchant, ratio).await?;
    }
    tracing::info!(merchant_id = %merchant, show_prior_price = body.show_prior_price,
        max_competitor_ratio = ?body.max_competitor_ratio, prices = touched, "settings changed");
    let ratio = prices.store().max_competitor_ratio(merchant).await?;
    let policies = safety::state(prices.store(), merchant).await?.policies;
    Ok(HttpResponse::Ok().json(MerchantSettings {
        max_competitor_ratio: Some(ratio),
        approval: Some(policies.approval),
        breaker: Some(policies.breaker),
        ..body
    }))
}
