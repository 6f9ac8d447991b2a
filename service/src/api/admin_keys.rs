//! `/v1/admin/keys`: the operator's own keys (`admin` role, no merchant), for `admin` keys.
//! Issue one, list them, revoke one. The last active admin key cannot be revoked while no
//! `PRICING_ADMIN_KEY` is configured: that would leave nobody able to get in.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use super::ApiError;
use super::access::Admin;
use super::extract::resource;
use super::merchants::{IssuedKeyView, KeyView, issue_key, keys_view};
use crate::auth::{Authenticator, Role, Roles};
use crate::domain::KeyId;
use crate::store::Store;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/admin/keys").post(create_admin_key).get(list_admin_keys))
        .service(resource("/v1/admin/keys/{key_id}").delete(revoke_admin_key));
}

#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdminKey {
    /// A note for people, e.g. "on-call laptop".
    #[validate(length(max = 100, message = "at most 100 characters"))]
    #[schema(max_length = 100)]
    pub label: Option<String>,
}

/// Issue an admin key. The response holds the secret, once.
#[utoipa::path(post, path = "/v1/admin/keys", tag = "merchants", request_body = NewAdminKey,
    security(("bearer" = [])),
    responses((status = 201, description = "Issued; the secret is in `key`, this once", body = IssuedKeyView),
              (status = 422, description = "`validation_failed`")))]
pub async fn create_admin_key(
    _: Admin,
    store: web::Data<Store>,
    body: web::Json<NewAdminKey>,
) -> Result<HttpResponse, ApiError> {
    body.validate()?;
    issue_key(&store, None, Roles::of(&[Role::Admin]), body.label.clone()).await
}

/// List the admin keys (never their secrets), newest first.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "merchants", security(("bearer" = [])),
    responses((status = 200, description = "The admin keys, newest first", body = [KeyView])))]
pub async fn list_admin_keys(_: Admin, store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    keys_view(&store, None).await
}

/// Revoke an admin key: it stops working at once on this replica, and within the key cache's
/// lifetime on the others.
#[utoipa::path(delete, path = "/v1/admin/keys/{key_id}", tag = "merchants", security(("bearer" = [])),
    responses((status = 200, description = "Revoked (now or before)", body = KeyView),
              (status = 409, description = "`last_admin_key`: no other admin key is active and no \
                                            `PRICING_ADMIN_KEY` is configured")))]
pub async fn revoke_admin_key(
    _: Admin,
    store: web::Data<Store>,
    authenticator: web::Data<Authenticator>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key_id = KeyId::parse(&path).map_err(|e| ApiError::InvalidPath(e.to_string()))?;
    let keys = store.keys(None).await?;
    let key = keys.iter().find(|k| k.id == key_id).ok_or_else(|| ApiError::not_found(format!("key {key_id}")))?;
    let others_active = keys.iter().filter(|k| k.id != key_id && k.revoked_at.is_none()).count();
    if key.revoked_at.is_none() && others_active == 0 && !authenticator.has_bootstrap_key() {
        return Err(ApiError::Conflict {
            code: "last_admin_key",
            message: "this is the last admin key and no PRICING_ADMIN_KEY is configured: issue another first".into(),
        });
    }
    let key = store.revoke_key(None, key_id).await?.ok_or_else(|| ApiError::not_found(format!("key {key_id}")))?;
    authenticator.forget(key_id);
    tracing::info!(key_id = %key_id, "admin key revoked");
    Ok(HttpResponse::Ok().json(KeyView::from(&key)))
}
