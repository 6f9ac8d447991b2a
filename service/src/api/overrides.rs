//! `/v1/overrides`: prices a merchant sets by hand, for a SKU or for the products whose
//! attributes match, from a start to an end (see [`crate::domain::overrides`] for which one wins
//! and [`crate::write::overrides`] for how they take effect). An override's start and end are
//! decisions in the chain (`override_started`, `override_ended`). `DELETE` ends one at once; it
//! stays readable, as the record of a campaign that ran.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::access::{Access, Read, Write};
use super::extract::resource;
use crate::domain::object::Object;
use crate::domain::overrides::{OverrideDraft, OverrideInput, OverridePrice, Phase, Selector};
use crate::domain::{MerchantId, Sku};
use crate::store::overrides::{OverrideState, StoredOverride};
use crate::store::{Store, now};
use crate::write::Prices;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/overrides").get(list_overrides).post(create_override))
        .service(resource("/v1/overrides/{id}").get(get_override).delete(end_override));
}

#[derive(Serialize, ToSchema)]
pub struct OverrideView {
    pub id: i64,
    /// The SKU it covers (or null: `attributes`).
    #[schema(value_type = Option<Sku>)]
    pub sku: Option<String>,
    /// The attribute values of the products it covers (or null: `sku`).
    pub attributes: Option<Map<String, Value>>,
    pub price: OverridePrice,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub force: bool,
    pub reason: String,
    /// By the clock: `scheduled`, `active` (in force) or `ended`.
    pub state: Phase,
    /// Whether the catalogue has been brought to `state` (false for the second or so until its
    /// start or end is applied).
    pub applied: bool,
    pub created_at: DateTime<Utc>,
    /// The id of the key that made it.
    pub created_by: String,
    /// When it was ended early (`DELETE`).
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl OverrideView {
    fn new(stored: StoredOverride, now: DateTime<Utc>) -> Self {
        let o = stored.item;
        let state = o.phase_at(now);
        let (sku, attributes) = match o.selector {
            Selector::Sku(sku) => (Some(sku.to_string()), None),
            Selector::Attributes(map) => (None, Some(map)),
        };
        Self {
            id: o.id,
            sku,
            attributes,
            price: o.price,
            starts_at: o.starts_at,
            ends_at: o.ends_at,
            force: o.force,
            reason: o.reason,
            state,
            applied: stored.applied_phase == state && stored.cursor.is_none(),
            created_at: o.created_at,
            created_by: stored.created_by,
            cancelled_at: o.cancelled_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OverrideList {
    /// Newest first.
    pub items: Vec<OverrideView>,
    /// Pass as `cursor` for the next page (null: no more).
    pub next_cursor: Option<i64>,
}

/// Which overrides a list shows.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateParam {
    Scheduled,
    Active,
    Ended,
    All,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OverrideQuery {
    /// `scheduled`, `active`, `ended`, or `all` (the default).
    pub state: Option<StateParam>,
    /// `next_cursor` of the previous page.
    #[param(minimum = 1)]
    pub cursor: Option<i64>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Set a price by hand for a SKU or for every product whose attributes match: a fixed price or
/// a percentage off the base price, from `starts_at` (default now) to `ends_at` (default
/// never). One that starts now is in force when this answers.
#[utoipa::path(post, path = "/v1/overrides", tag = "overrides", request_body = OverrideInput,
    security(("bearer" = [])),
    responses((status = 201, description = "Made (`Location` is the override)", body = OverrideView),
              (status = 422, description = "`validation_failed`: each bad field named")))]
pub async fn create_override(
    access: Access<Write>,
    prices: web::Data<Prices>,
    body: web::Json<Object<OverrideInput>>,
) -> Result<HttpResponse, ApiError> {
    let at = now();
    let draft = OverrideDraft::parse(body.into_inner().0, at).map_err(ApiError::Validation)?;
    let merchant = access.merchant();
    let made = prices.create_override(merchant, draft, access.key_id()).await?;
    tracing::info!(merchant_id = %merchant, override_id = made.item.id, "override made");
    let stored = found(prices.store(), merchant, made.item.id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/overrides/{}", made.item.id)))
        .json(OverrideView::new(stored, now())))
}

/// The merchant's overrides, newest first.
#[utoipa::path(get, path = "/v1/overrides", tag = "overrides", params(OverrideQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of overrides", body = OverrideList)))]
pub async fn list_overrides(
    access: Access<Read>,
    store: web::Data<Store>,
    query: web::Query<OverrideQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidQuery("`limit` is 1 to 1000".into()));
    }
    if query.cursor.is_some_and(|cursor| cursor < 1) {
        return Err(ApiError::InvalidQuery("`cursor` is an override's id (1 or more)".into()));
    }
    let state = match query.state.unwrap_or(StateParam::All) {
        StateParam::Scheduled => OverrideState::Phase(Phase::Scheduled),
        StateParam::Active => OverrideState::Phase(Phase::Active),
        StateParam::Ended => OverrideState::Phase(Phase::Ended),
        StateParam::All => OverrideState::All,
    };
    let at = now();
    let items = store.price_overrides(access.merchant(), state, query.cursor, limit, at).await?;
    let next_cursor = (items.len() == limit as usize).then(|| items.last().map(|o| o.item.id)).flatten();
    let items = items.into_iter().map(|o| OverrideView::new(o, at)).collect();
    Ok(HttpResponse::Ok().json(OverrideList { items, next_cursor }))
}

fn id_from_path(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::InvalidPath(format!("`{text}` is not an override's id (1 or more)")))
}

async fn found(store: &Store, merchant: MerchantId, id: i64) -> Result<StoredOverride, ApiError> {
    store.price_override(merchant, id).await?.ok_or_else(|| ApiError::not_found(format!("override {id}")))
}

/// One override.
#[utoipa::path(get, path = "/v1/overrides/{id}", tag = "overrides", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The override's id")),
    responses((status = 200, description = "The override", body = OverrideView),
              (status = 404, description = "`not_found`")))]
pub async fn get_override(
    access: Access<Read>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    Ok(HttpResponse::Ok().json(OverrideView::new(found(&store, access.merchant(), id).await?, now())))
}

/// End an override now: its SKUs go back to the prices they had before it (unless another
/// override covers them), and the rule decides again. It stays readable, `ended`.
#[utoipa::path(delete, path = "/v1/overrides/{id}", tag = "overrides", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The override's id")),
    responses((status = 200, description = "Ended (or it had already ended)", body = OverrideView),
              (status = 404, description = "`not_found`")))]
pub async fn end_override(
    access: Access<Write>,
    prices: web::Data<Prices>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    let merchant = access.merchant();
    found(prices.store(), merchant, id).await?;
    if prices.cancel_override(merchant, id).await? {
        tracing::info!(merchant_id = %merchant, override_id = id, "override ended early");
    }
    Ok(HttpResponse::Ok().json(OverrideView::new(found(prices.store(), merchant, id).await?, now())))
}
