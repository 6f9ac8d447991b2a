//! `GET /v1/prices/{sku}/at?t=`: the price that was in force for a SKU at an instant, read
//! from the decision history, for `auditor` and `merchant` keys.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::access::{Access, Audit};
use super::extract::resource;
use crate::domain::{Currency, Sku, Trigger};
use crate::store::Store;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/prices/{sku}/at").get(price_at));
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AtQuery {
    /// The instant (RFC 3339).
    pub t: DateTime<Utc>,
}

/// The price in force at an instant.
#[derive(Serialize, ToSchema)]
pub struct PriceAtView {
    #[schema(value_type = Sku)]
    pub sku: String,
    pub at: DateTime<Utc>,
    pub price_minor: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    /// When this price took effect, and the decision that put it in force.
    pub effective_at: DateTime<Utc>,
    pub seq: i64,
    pub trigger: Trigger,
    pub rule_version: Option<i64>,
}

/// The price that was in force for a SKU at an instant, from the decision history.
#[utoipa::path(get, path = "/v1/prices/{sku}/at", tag = "audit", params(AtQuery), security(("bearer" = [])),
    responses((status = 200, description = "The price in force at `t`", body = PriceAtView)))]
pub async fn price_at(
    access: Access<Audit>,
    store: web::Data<Store>,
    path: web::Path<String>,
    query: web::Query<AtQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let sku = Sku::parse(&path).map_err(|e| ApiError::InvalidPath(e.to_string()))?;
    let no_price = || ApiError::NotFound(format!("no price was in force for {sku} at {}", query.t.to_rfc3339()));
    let change = store.price_change_at(merchant, &sku, query.t).await?.ok_or_else(no_price)?;
    // A deletion ends the price in force.
    let price_minor = change.new_price_minor.ok_or_else(no_price)?;
    Ok(HttpResponse::Ok().json(PriceAtView {
        sku: change.sku,
        at: query.t,
        price_minor,
        currency: change.currency,
        effective_at: change.created_at,
        seq: change.seq,
        trigger: change.trigger,
        rule_version: change.rule_version,
    }))
}
