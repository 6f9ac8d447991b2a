//! The decision history, for `auditor` and `merchant` keys: a SKU's decisions newest first
//! (cursor pagination), and the check of the merchant's hash chain.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::extract::resource;
use super::{ApiError, ErrorBody};
use crate::auth::{Principal, Role};
use crate::domain::Sku;
use crate::pricing::audit::{self, Verification};
use crate::store::{Store, StoredDecision};

const READ: &[Role] = &[Role::Auditor, Role::Merchant];
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/prices/{sku}/history").route(web::get().to(history)))
        .service(resource("/v1/audit/verify").route(web::get().to(verify)));
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct DecisionView {
    pub seq: i64,
    pub sku: String,
    pub trigger: String,
    pub outcome: String,
    pub currency: String,
    pub old_price_minor: Option<i64>,
    pub new_price_minor: Option<i64>,
    pub rule_version: Option<i64>,
    pub rule_sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The full record (inputs, explanation, log, guardrails, fuel) that the hash covers.
    #[schema(value_type = Object)]
    pub record: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<StoredDecision> for DecisionView {
    fn from(d: StoredDecision) -> Self {
        Self {
            record: serde_json::from_str(&d.record).unwrap_or(Value::String(d.record.clone())),
            seq: d.seq,
            sku: d.sku,
            trigger: d.trigger,
            outcome: d.outcome,
            currency: d.currency,
            old_price_minor: d.old_price_minor,
            new_price_minor: d.new_price_minor,
            rule_version: d.rule_version,
            rule_sha256: d.rule_sha256,
            created_at: d.created_at,
            prev_hash: d.prev_hash,
            hash: d.hash,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<DecisionView>,
    pub next_cursor: Option<i64>,
}

/// A SKU's decisions, newest first.
#[utoipa::path(get, path = "/v1/prices/{sku}/history", tag = "audit", params(HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = HistoryPage), (status = "4XX", body = ErrorBody)))]
pub async fn history(
    principal: Principal,
    store: web::Data<dyn Store>,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = principal.merchant_with(READ)?;
    let sku = Sku::parse(&path).map_err(|e| ApiError::InvalidPath(e.to_string()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let mut items = store.decisions(merchant, Some(&sku), query.cursor, limit + 1).await?;
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items[items.len() - 1].seq
    });
    let items = items.into_iter().map(DecisionView::from).collect();
    Ok(HttpResponse::Ok().json(HistoryPage { items, next_cursor }))
}

/// Checks the merchant's whole decision chain and names the first broken record.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = Verification), (status = "4XX", body = ErrorBody)))]
pub async fn verify(principal: Principal, store: web::Data<dyn Store>) -> Result<HttpResponse, ApiError> {
    let merchant = principal.merchant_with(READ)?;
    Ok(HttpResponse::Ok().json(audit::verify(store.as_ref(), merchant).await?))
}
