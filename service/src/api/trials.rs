//! Shadows and backtests of a rule version (see [`crate::trials`]): `POST
//! /v1/rules/{version}/shadow` rides a version on live evaluations, `POST
//! /v1/rules/{version}/backtest` runs it over recorded decisions; each answers with the trial
//! and its report (`GET` again for the report so far). A shadow is stopped, or its version
//! activated from it; a backtest is cancelled with `DELETE`. `merchant` keys do everything,
//! `auditor` keys may read.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::access::{Access, Read, Write};
use super::extract::resource;
use super::rules::ActivateQuery;
use crate::domain::object::Object;
use crate::store::trials::TrialKind;
use crate::trials::{TrialError, TrialView, Trials};
use crate::write::Prices;

/// The longest range a backtest may cover.
pub const MAX_BACKTEST_DAYS: i64 = 90;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/rules/{version}/shadow").post(start_shadow))
        .service(resource("/v1/rules/{version}/backtest").post(start_backtest))
        .service(resource("/v1/shadows").get(list_shadows))
        .service(resource("/v1/shadows/{id}").get(get_shadow))
        .service(resource("/v1/shadows/{id}/stop").post(stop_shadow))
        .service(resource("/v1/shadows/{id}/activate").post(activate_shadow))
        .service(resource("/v1/backtests").get(list_backtests))
        .service(resource("/v1/backtests/{id}").get(get_backtest).delete(cancel_backtest));
}

impl From<TrialError> for ApiError {
    fn from(e: TrialError) -> Self {
        match e {
            TrialError::Unknown(id) => ApiError::not_found(format!("trial {id}")),
            TrialError::AlreadyRunning(message) => ApiError::Conflict { code: "trial_running", message },
            TrialError::NotRunning(_) => ApiError::Conflict { code: "trial_not_running", message: e.to_string() },
            TrialError::Rule(e) => e.into(),
            TrialError::Store(e) => e.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TrialList {
    pub trials: Vec<TrialView>,
}

/// A backtest's range of decision times.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// From this instant, inclusive.
    pub from: DateTime<Utc>,
    /// Up to this instant, exclusive (at most 90 days after `from`).
    pub to: DateTime<Utc>,
}

fn number(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::InvalidPath(format!("`{text}` is not a {what} (1, 2, ...)")))
}

/// Start a shadow of a version: evaluated beside the active rule on every live evaluation,
/// never moving a price.
#[utoipa::path(post, path = "/v1/rules/{version}/shadow", tag = "trials", security(("bearer" = [])),
    responses((status = 201, description = "The shadow runs", body = TrialView),
              (status = 409, description = "`trial_running`: the merchant has a shadow running")))]
pub async fn start_shadow(
    access: Access<Write>,
    trials: web::Data<Trials>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = trials.start_shadow(access.merchant(), number(&path, "rule version")?).await?;
    Ok(HttpResponse::Created().json(view))
}

/// Start a backtest of a version over the recorded decisions of a time range.
#[utoipa::path(post, path = "/v1/rules/{version}/backtest", tag = "trials", security(("bearer" = [])),
    request_body = BacktestRequest,
    responses((status = 202, description = "The backtest runs; GET it for its progress and report", body = TrialView),
              (status = 409, description = "`trial_running`: the merchant has a backtest running"),
              (status = 422, description = "`validation_failed`: an empty or too long range")))]
pub async fn start_backtest(
    access: Access<Write>,
    trials: web::Data<Trials>,
    path: web::Path<String>,
    body: web::Json<Object<BacktestRequest>>,
) -> Result<HttpResponse, ApiError> {
    let version = number(&path, "rule version")?;
    let BacktestRequest { from, to } = body.into_inner().0;
    if to <= from || to - from > chrono::Duration::days(MAX_BACKTEST_DAYS) {
        return Err(
            crate::domain::Invalid::one("to", format!("after `from`, by at most {MAX_BACKTEST_DAYS} days")).into()
        );
    }
    let view = trials.start_backtest(access.merchant(), version, from, to).await?;
    Ok(HttpResponse::Accepted().json(view))
}

/// The merchant's shadows, newest first (the last 100), with their reports.
#[utoipa::path(get, path = "/v1/shadows", tag = "trials", security(("bearer" = [])),
    responses((status = 200, description = "The shadows", body = TrialList)))]
pub async fn list_shadows(access: Access<Read>, trials: web::Data<Trials>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(TrialList { trials: trials.list(access.merchant(), TrialKind::Shadow).await? }))
}

/// A shadow and its report so far.
#[utoipa::path(get, path = "/v1/shadows/{id}", tag = "trials", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The shadow's id")),
    responses((status = 200, description = "The shadow", body = TrialView)))]
pub async fn get_shadow(
    access: Access<Read>,
    trials: web::Data<Trials>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(trials.view(access.merchant(), number(&path, "shadow")?, TrialKind::Shadow).await?))
}

/// Stop a shadow; its report stays.
#[utoipa::path(post, path = "/v1/shadows/{id}/stop", tag = "trials", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The shadow's id")),
    responses((status = 200, description = "Stopped", body = TrialView),
              (status = 409, description = "`trial_not_running`")))]
pub async fn stop_shadow(
    access: Access<Write>,
    trials: web::Data<Trials>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(trials.stop(access.merchant(), number(&path, "shadow")?, TrialKind::Shadow).await?))
}

/// Activate the shadowed version (the shadow stops: its version is now the live one), with
/// the same sample check as any activation (`force=true` to go past it).
#[utoipa::path(post, path = "/v1/shadows/{id}/activate", tag = "trials", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The shadow's id"), ActivateQuery),
    responses((status = 200, description = "The version is active; the shadow stopped", body = TrialView)))]
pub async fn activate_shadow(
    access: Access<Write>,
    trials: web::Data<Trials>,
    prices: web::Data<Prices>,
    path: web::Path<String>,
    query: web::Query<ActivateQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let id = number(&path, "shadow")?;
    let trial = trials.trial(merchant, id, TrialKind::Shadow).await?;
    prices.activate_rule(merchant, trial.version, query.force).await?;
    tracing::info!(merchant_id = %merchant, version = trial.version, shadow = id, "rule activated from its shadow");
    match trials.stop(merchant, id, TrialKind::Shadow).await {
        Ok(view) => Ok(HttpResponse::Ok().json(view)),
        // Stopped before: the activation stands.
        Err(TrialError::NotRunning(_)) => {
            Ok(HttpResponse::Ok().json(trials.view(merchant, id, TrialKind::Shadow).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// The merchant's backtests, newest first (the last 100), with their reports.
#[utoipa::path(get, path = "/v1/backtests", tag = "trials", security(("bearer" = [])),
    responses((status = 200, description = "The backtests", body = TrialList)))]
pub async fn list_backtests(access: Access<Read>, trials: web::Data<Trials>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(TrialList { trials: trials.list(access.merchant(), TrialKind::Backtest).await? }))
}

/// A backtest: its progress (`done` of `total`, the rate and an estimate of the time left)
/// and its report so far.
#[utoipa::path(get, path = "/v1/backtests/{id}", tag = "trials", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The backtest's id")),
    responses((status = 200, description = "The backtest", body = TrialView)))]
pub async fn get_backtest(
    access: Access<Read>,
    trials: web::Data<Trials>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = number(&path, "backtest")?;
    Ok(HttpResponse::Ok().json(trials.view(access.merchant(), id, TrialKind::Backtest).await?))
}

/// Cancel a running backtest; what it compared stays in its report.
#[utoipa::path(delete, path = "/v1/backtests/{id}", tag = "trials", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The backtest's id")),
    responses((status = 200, description = "Cancelled", body = TrialView),
              (status = 409, description = "`trial_not_running`: it had ended")))]
pub async fn cancel_backtest(
    access: Access<Write>,
    trials: web::Data<Trials>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = number(&path, "backtest")?;
    Ok(HttpResponse::Ok().json(trials.stop(access.merchant(), id, TrialKind::Backtest).await?))
}
