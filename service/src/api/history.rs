//! The decision history, for `auditor` and `merchant` keys, own merchant only: a SKU's
//! decisions and the merchant-wide feed with the same filters (time range, trigger, rule
//! version, outcome; newest or oldest first; cursor pagination), and one decision. The same
//! filters select an export ([`super::export`]); the price at an instant is
//! [`super::price_at`].

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::access::{Access, Audit};
use super::extract::resource;
use crate::domain::{Currency, MerchantId, Outcome, Sku, Trigger};
use crate::store::{DecisionFilter, OutcomeFilter, Store, StoredDecision};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000;

/// Registered after [`super::export::configure`], whose `/v1/decisions/export` would otherwise
/// be taken for a sequence number.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/prices/{sku}/history").get(history))
        .service(resource("/v1/decisions").get(feed))
        .service(resource("/v1/decisions/{seq}").get(decision));
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Newest,
    Oldest,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

/// Filters, order and paging of the history, the feed and the export, as parsed: each of them
/// documents the part it takes ([`HistoryParams`], [`FeedParams`], [`ExportParams`]) and refuses
/// the rest as `invalid_query`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    /// One SKU.
    #[param(value_type = Option<Sku>)]
    pub sku: Option<String>,
    /// From this instant (RFC 3339), inclusive; before `to`.
    pub from: Option<DateTime<Utc>>,
    /// Up to this instant (RFC 3339), exclusive; after `from`.
    pub to: Option<DateTime<Utc>>,
    /// What made the decisions.
    #[param(value_type = Option<Trigger>)]
    pub trigger: Option<String>,
    /// Decisions of this rule version.
    #[param(minimum = 1)]
    pub rule_version: Option<i64>,
    /// `changed`, `kept`, `failed`, `held`, or `clipped` (a guardrail changed the rule's price).
    pub outcome: Option<OutcomeFilter>,
    /// `newest` (default) or `oldest` first.
    pub order: Option<Order>,
    /// `next_cursor` of the previous page: the page goes on after this sequence number.
    pub cursor: Option<i64>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The export's format.
    pub format: Option<ExportFormat>,
}

/// The query of `GET /v1/prices/{sku}/history`: the filters and paging, no `sku` (it is in the
/// path) and no `format`.
pub struct HistoryParams;

/// The query of `GET /v1/decisions`: the filters, `sku` and paging; no `format`.
pub struct FeedParams;

/// The query of `GET /v1/decisions/export`: the filters, `sku`, and `format` (required); no
/// paging.
pub struct ExportParams;

/// [`DecisionQuery`]'s parameters without `left_out`, with `required` ones made required.
fn decision_params(left_out: &[&str], required: &[&str]) -> Vec<Parameter> {
    DecisionQuery::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .filter(|p| !left_out.contains(&p.name.as_str()))
        .map(|mut p| {
            if required.contains(&p.name.as_str()) {
                p.required = utoipa::openapi::Required::True;
            }
            p
        })
        .collect()
}

impl IntoParams for HistoryParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        decision_params(&["sku", "format"], &[])
    }
}

impl IntoParams for FeedParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        decision_params(&["format"], &[])
    }
}

impl IntoParams for ExportParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        decision_params(&["cursor", "limit"], &["format"])
    }
}

impl DecisionQuery {
    pub(super) fn filter(&self, path_sku: Option<&str>) -> Result<DecisionFilter, ApiError> {
        let sku = match (path_sku, self.sku.as_deref()) {
            (Some(_), Some(_)) => return Err(ApiError::InvalidQuery("the SKU is already in the path".into())),
            (Some(sku), None) => Some(Sku::parse(sku).map_err(|e| ApiError::InvalidPath(e.to_string()))?),
            (None, Some(sku)) => Some(Sku::parse(sku).map_err(|e| ApiError::InvalidQuery(format!("sku: {e}")))?),
            (None, None) => None,
        };
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(ApiError::InvalidQuery("`from` must be before `to`".into()));
        }
        if self.trigger.as_ref().is_some_and(|t| t.is_empty() || t.len() > 64) {
            return Err(ApiError::InvalidQuery("trigger must be 1 to 64 characters".into()));
        }
        if self.rule_version.is_some_and(|v| v < 1) {
            return Err(ApiError::InvalidQuery("rule_version must be 1 or more".into()));
        }
        Ok(DecisionFilter {
            sku,
            from: self.from,
            to: self.to,
            trigger: self.trigger.as_deref().map(str::parse::<Trigger>).transpose().map_err(|e| {
                ApiError::InvalidQuery(format!(
                    "trigger: {e}; one of: {}",
                    Trigger::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?,
            rule_version: self.rule_version,
            outcome: self.outcome,
            oldest_first: matches!(self.order, Some(Order::Oldest)),
        })
    }

    fn page_size(&self) -> Result<u32, ApiError> {
        if self.format.is_some() {
            return Err(ApiError::InvalidQuery("`format` is only for /v1/decisions/export".into()));
        }
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::InvalidQuery(format!("limit must be between 1 and {MAX_PAGE}")));
        }
        Ok(limit)
    }
}

#[derive(Serialize, ToSchema)]
pub struct DecisionView {
    pub seq: i64,
    #[schema(value_type = Sku)]
    pub sku: String,
    pub trigger: Trigger,
    pub outcome: Outcome,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub old_price_minor: Option<i64>,
    pub new_price_minor: Option<i64>,
    pub rule_version: Option<i64>,
    pub rule_sha256: Option<String>,
    /// Whether a guardrail changed the rule's price.
    pub clipped: bool,
    pub created_at: DateTime<Utc>,
    /// The full record (inputs, explanation, log, guardrails, fuel), byte for byte the text
    /// the hash covers, so `sha256(prev_hash + "\n" + record)` can be checked offline.
    #[schema(value_type = Object)]
    pub record: Box<RawValue>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<StoredDecision> for DecisionView {
    fn from(d: StoredDecision) -> Self {
        Self {
            // Stored records are JSON; a corrupted one is shown as a string rather than lost.
            record: RawValue::from_string(d.record.clone())
                .unwrap_or_else(|_| serde_json::value::to_raw_value(&d.record).expect("a string serializes")),
            seq: d.seq,
            sku: d.sku,
            trigger: d.trigger,
            outcome: d.outcome,
            currency: d.currency,
            old_price_minor: d.old_price_minor,
            new_price_minor: d.new_price_minor,
            rule_version: d.rule_version,
            rule_sha256: d.rule_sha256,
            clipped: d.clipped,
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

/// A SKU's decisions, filtered, newest (or oldest) first.
#[utoipa::path(get, path = "/v1/prices/{sku}/history", tag = "audit", params(HistoryParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of the SKU's decisions (none for an unknown SKU)", body = HistoryPage)))]
pub async fn history(
    access: Access<Audit>,
    store: web::Data<Store>,
    path: web::Path<String>,
    query: web::Query<DecisionQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    page(&store, merchant, query.filter(Some(&path))?, &query).await
}

/// The merchant's decisions across SKUs, with the history's filters.
#[utoipa::path(get, path = "/v1/decisions", tag = "audit", params(FeedParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of the merchant's decisions", body = HistoryPage)))]
pub async fn feed(
    access: Access<Audit>,
    store: web::Data<Store>,
    query: web::Query<DecisionQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    page(&store, merchant, query.filter(None)?, &query).await
}

async fn page(
    store: &Store,
    merchant: MerchantId,
    filter: DecisionFilter,
    query: &DecisionQuery,
) -> Result<HttpResponse, ApiError> {
    let limit = query.page_size()?;
    let mut items = store.decisions(merchant, &filter, query.cursor, limit + 1).await?;
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items[items.len() - 1].seq
    });
    let items = items.into_iter().map(DecisionView::from).collect();
    Ok(HttpResponse::Ok().json(HistoryPage { items, next_cursor }))
}

/// One decision, by its sequence number.
#[utoipa::path(get, path = "/v1/decisions/{seq}", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "The decision", body = DecisionView)))]
pub async fn decision(
    access: Access<Audit>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let seq = parse_seq(&path)?;
    let decision =
        store.decision(merchant, seq).await?.ok_or_else(|| ApiError::not_found(format!("decision {seq}")))?;
    Ok(HttpResponse::Ok().json(DecisionView::from(decision)))
}

pub(super) fn parse_seq(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 1)
        .ok_or_else(|| ApiError::InvalidPath(format!("`{text}` is not a decision sequence number")))
}
