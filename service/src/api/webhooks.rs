//! `/v1/webhooks`: a merchant's webhook endpoints, for `merchant` keys. Making one answers its
//! signing secret, once; it then receives every change of the merchant's prices in force from
//! that moment on (see `events::webhooks` for the delivery, signature and retry rules). A
//! webhook disabled after repeated failures is enabled again with `POST .../enable`, and
//! resumes where it stopped. Its attempts are listed, newest first.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::access::{Access, Write};
use super::extract::resource;
use crate::config::WebhookSettings;
use crate::domain::{Invalid, WebhookId};
use crate::events::webhooks::{check_url, new_secret};
use crate::store::webhooks::{Delivery, Webhook};
use crate::store::{Store, now};

/// Webhooks one merchant may have.
pub const MAX_WEBHOOKS: usize = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/webhooks").post(create_webhook).get(list_webhooks))
        .service(resource("/v1/webhooks/{webhook_id}").get(get_webhook).delete(delete_webhook))
        .service(resource("/v1/webhooks/{webhook_id}/enable").post(enable_webhook))
        .service(resource("/v1/webhooks/{webhook_id}/deliveries").get(list_deliveries));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed: `https`, to a public host name (an address literal, or a
    /// name that resolves only to internal addresses, is refused).
    #[schema(
        max_length = 2048,
        pattern = r"^https://[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,63}(/[A-Za-z0-9._~/-]*)?$",
        example = "https://shop.example/hooks/prices"
    )]
    pub url: String,
}

/// A webhook as listed (never its secret).
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: WebhookId,
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// `false` once disabled after repeated failures.
    pub enabled: bool,
    /// Deliveries that failed in a row.
    pub failures: i64,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
}

impl From<&Webhook> for WebhookView {
    fn from(hook: &Webhook) -> Self {
        Self {
            id: hook.id,
            url: hook.url.clone(),
            created_at: hook.created_at,
            enabled: hook.disabled_at.is_none(),
            failures: hook.failures,
            disabled_at: hook.disabled_at,
            disabled_reason: hook.disabled_reason.clone(),
        }
    }
}

/// A webhook just made, with its secret (shown this once).
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Signs every delivery: `Pricing-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
    /// "<t>.<body>">`.
    pub secret: String,
}

/// One attempt to deliver a batch of events.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub attempt_at: DateTime<Utc>,
    /// 1 for a batch's first try.
    pub attempt: i64,
    /// The decision sequence numbers of the batch's first and last events.
    pub first_seq: i64,
    pub last_seq: i64,
    pub events: i64,
    /// The receiver's status, when it answered.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub delivered: bool,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            attempt_at: d.attempt_at,
            attempt: d.attempt,
            first_seq: d.first_seq,
            last_seq: d.last_seq,
            events: d.events,
            status_code: d.status_code,
            error: d.error,
            duration_ms: d.duration_ms,
            delivered: d.delivered,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Deliveries {
    pub items: Vec<DeliveryView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// At most this many, newest first (1 to 1000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn webhook_id(text: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(text).map_err(|e| ApiError::InvalidPath(e.to_string()))
}

async fn existing(store: &Store, access: &Access<Write>, id: &str) -> Result<Webhook, ApiError> {
    let id = webhook_id(id)?;
    store.webhook(access.merchant(), id).await?.ok_or_else(|| ApiError::not_found(format!("webhook {id}")))
}

/// Make a webhook. The answer holds its signing secret, this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    security(("bearer" = [])),
    responses((status = 201, description = "Made; it receives the price changes from now on", body = CreatedWebhook),
              (status = 422, description = "`validation_failed` (the URL: not https, or an internal address); \
                                            `over_quota` (at most 100 webhooks)")))]
pub async fn create_webhook(
    access: Access<Write>,
    store: web::Data<Store>,
    settings: web::Data<WebhookSettings>,
    body: web::Json<NewWebhook>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    check_url(&body.url, settings.allow_private_addresses)
        .map_err(|why| ApiError::Validation(Invalid::one("url", why)))?;
    if store.webhooks(merchant).await?.len() >= MAX_WEBHOOKS {
        return Err(ApiError::OverQuota {
            message: format!("a merchant may have at most {MAX_WEBHOOKS} webhooks"),
            what: "webhooks",
            limit: MAX_WEBHOOKS as u64,
        });
    }
    let hook = Webhook {
        id: WebhookId::generate(),
        merchant,
        url: body.into_inner().url,
        secret: new_secret(),
        created_at: now(),
        failures: 0,
        next_attempt_at: DateTime::<Utc>::UNIX_EPOCH,
        disabled_at: None,
        disabled_reason: None,
    };
    store.insert_webhook(&hook).await?;
    tracing::info!(merchant_id = %merchant, webhook_id = %hook.id, "webhook made");
    Ok(HttpResponse::Created().json(CreatedWebhook { webhook: WebhookView::from(&hook), secret: hook.secret }))
}

/// The merchant's webhooks, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "The webhooks (never their secrets)", body = [WebhookView])))]
pub async fn list_webhooks(access: Access<Write>, store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    let hooks = store.webhooks(access.merchant()).await?;
    Ok(HttpResponse::Ok().json(hooks.iter().map(WebhookView::from).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "The webhook", body = WebhookView)))]
pub async fn get_webhook(
    access: Access<Write>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let hook = existing(&store, &access, &path).await?;
    Ok(HttpResponse::Ok().json(WebhookView::from(&hook)))
}

/// Delete a webhook and its delivery log; what it had not delivered is not sent.
#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = [])),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_webhook(
    access: Access<Write>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&path)?;
    if !store.delete_webhook(access.merchant(), id).await? {
        return Err(ApiError::not_found(format!("webhook {id}")));
    }
    tracing::info!(merchant_id = %access.merchant(), webhook_id = %id, "webhook deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Enable a webhook again (after it was disabled for failing): it resumes where it stopped.
#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/enable", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "Enabled", body = WebhookView)))]
pub async fn enable_webhook(
    access: Access<Write>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = existing(&store, &access, &path).await?.id;
    let hook = store
        .enable_webhook(access.merchant(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id}")))?;
    Ok(HttpResponse::Ok().json(WebhookView::from(&hook)))
}

/// The webhook's delivery attempts, newest first (the last 1,000 are kept).
#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks", params(DeliveriesQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Attempts, newest first", body = Deliveries)))]
pub async fn list_deliveries(
    access: Access<Write>,
    store: web::Data<Store>,
    path: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let hook = existing(&store, &access, &path).await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit must be 1 to 1000".into()));
    }
    let items = store.deliveries(hook.id, limit).await?.into_iter().map(DeliveryView::from).collect();
    Ok(HttpResponse::Ok().json(Deliveries { items }))
}
