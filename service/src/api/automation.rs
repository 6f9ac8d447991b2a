//! `/v1/automation`: whether a merchant's automated prices go live, and the brakes on them. The
//! state (`running`, `frozen`, `tripped`) with the freeze, the breaker's trip and limits and the
//! approval policy; a freeze (a kill switch: every automated change is held) and its lifting;
//! and resuming a tripped breaker. Lookups answer the prices in force throughout. The policy and
//! limits are set with `PUT /v1/settings`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::access::{Access, ReadProposals, Write};
use super::extract::{json_body, resource};
use crate::domain::Invalid;
use crate::domain::MerchantId;
use crate::domain::object::Object;
use crate::domain::safety::{ApprovalPolicy, BreakerLimits};
use crate::pricing::breaker::Trip;
use crate::store::safety::Frozen;
use crate::store::{Store, now};
use crate::write::{Prices, safety};

const MAX_REASON: usize = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/automation").get(get_automation))
        .service(resource("/v1/automation/freeze").post(freeze))
        .service(resource("/v1/automation/unfreeze").post(unfreeze))
        .service(resource("/v1/automation/resume").post(resume));
}

/// Whether automated changes go live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Frozen by the merchant: every automated change is held (this wins over `tripped`).
    Frozen,
    /// The breaker tripped: every automated change is held until `POST /v1/automation/resume`.
    Tripped,
}

#[derive(Serialize, ToSchema)]
pub struct FrozenView {
    pub at: DateTime<Utc>,
    /// The id of the key that froze it.
    pub by: String,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct BreakerView {
    /// When it tripped (null: closed, automation runs).
    pub tripped_at: Option<DateTime<Utc>>,
    /// The limit it crossed.
    pub trip: Option<Trip>,
    pub limits: BreakerLimits,
}

#[derive(Serialize, ToSchema)]
pub struct AutomationView {
    pub state: RunState,
    pub frozen: Option<FrozenView>,
    pub breaker: BreakerView,
    pub approval: ApprovalPolicy,
    /// Set by the call that answers (freeze, unfreeze, resume): false when it changed nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

pub(super) async fn view(
    store: &Store,
    merchant: MerchantId,
    changed: Option<bool>,
) -> Result<AutomationView, ApiError> {
    let state = safety::state(store, merchant).await?;
    let run = match (&state.frozen, &state.tripped) {
        (Some(_), _) => RunState::Frozen,
        (None, Some(_)) => RunState::Tripped,
        (None, None) => RunState::Running,
    };
    let (tripped_at, trip) = state.tripped.map_or((None, None), |(at, trip)| (Some(at), Some(trip)));
    Ok(AutomationView {
        state: run,
        frozen: state.frozen.map(|f| FrozenView { at: f.at, by: f.by, reason: f.reason }),
        breaker: BreakerView { tripped_at, trip, limits: state.policies.breaker },
        approval: state.policies.approval,
        changed,
    })
}

/// Whether automation runs, and the brakes on it.
#[utoipa::path(get, path = "/v1/automation", tag = "automation", security(("bearer" = [])),
    responses((status = 200, description = "The merchant's automation", body = AutomationView)))]
pub async fn get_automation(access: Access<ReadProposals>, store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(view(&store, access.merchant(), None).await?))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct FreezeBody {
    /// Why (up to 500 characters), shown with the state.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// Freeze every automated change: once this answers, no rule moves a price (each such change is
/// recorded as `held`, reason `frozen`) until the freeze is lifted. Freezing a frozen merchant
/// changes nothing.
#[utoipa::path(post, path = "/v1/automation/freeze", tag = "automation", request_body(content = Option<FreezeBody>),
    security(("bearer" = [])),
    responses((status = 200, description = "Frozen", body = AutomationView),
              (status = 422, description = "`validation_failed`: a reason too long")))]
pub async fn freeze(
    access: Access<Write>,
    prices: web::Data<Prices>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // The body is optional (a bare POST freezes without a reason), so it is read by hand: an
    // `Option<Json<_>>` extractor would take a malformed body for none.
    let body = match body.is_empty() {
        true => None,
        false => json_body::<Option<Object<FreezeBody>>>(&body)?.map(|Object(body)| body),
    };
    let body = body.unwrap_or_default();
    let reason = body.reason.unwrap_or_default();
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::Validation(Invalid::one("reason", format!("at most {MAX_REASON} characters"))));
    }
    let merchant = access.merchant();
    let frozen = Frozen { at: now(), by: access.key_id(), reason };
    let changed = prices.set_frozen(merchant, Some(frozen)).await?;
    tracing::info!(merchant_id = %merchant, changed, "automation frozen");
    Ok(HttpResponse::Ok().json(view(prices.store(), merchant, Some(changed)).await?))
}

/// Lift a freeze: automation runs again, and the catalogue is evaluated anew (trigger
/// `resumed`), so prices follow what is true now.
#[utoipa::path(post, path = "/v1/automation/unfreeze", tag = "automation", security(("bearer" = [])),
    responses((status = 200, description = "Running (or still held by a tripped breaker)", body = AutomationView)))]
pub async fn unfreeze(access: Access<Write>, prices: web::Data<Prices>) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let changed = prices.set_frozen(merchant, None).await?;
    tracing::info!(merchant_id = %merchant, changed, "automation unfrozen");
    Ok(HttpResponse::Ok().json(view(prices.store(), merchant, Some(changed)).await?))
}

/// Close a tripped breaker: its window starts again, and the catalogue is evaluated anew
/// (trigger `resumed`; the breaker watches that sweep, so inputs still wrong trip it again).
#[utoipa::path(post, path = "/v1/automation/resume", tag = "automation", security(("bearer" = [])),
    responses((status = 200, description = "Resumed (`changed` false when it had not tripped)", body = AutomationView)))]
pub async fn resume(access: Access<Write>, prices: web::Data<Prices>) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let changed = prices.resume(merchant).await?;
    tracing::info!(merchant_id = %merchant, changed, "breaker resumed");
    Ok(HttpResponse::Ok().json(view(prices.store(), merchant, Some(changed)).await?))
}
