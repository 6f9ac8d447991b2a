//! `/v1/merchants`: the operator (`admin`) creates merchants and issues, lists and revokes
//! their keys. A key's secret is in the response to its creation and nowhere else, ever.
//! Admin keys themselves come from configuration or the first start (see the README).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use super::ApiError;
use super::access::Admin;
use super::extract::resource;
use crate::auth::{self, Authenticator, Role, Roles};
use crate::domain::{Invalid, KeyId, MerchantId};
use crate::store::{Merchant, Store, StoredKey};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/merchants").post(create_merchant))
        .service(resource("/v1/merchants/{merchant_id}").get(get_merchant))
        .service(resource("/v1/merchants/{merchant_id}/keys").post(create_key).get(list_keys))
        .service(resource("/v1/merchants/{merchant_id}/keys/{key_id}").delete(revoke_key));
}

fn not_blank(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new("blank").with_message("must not be blank".into()));
    }
    Ok(())
}

#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMerchant {
    /// 1 to 200 characters, not all of them white space.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"), custom(function = "not_blank"))]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct MerchantView {
    #[schema(value_type = MerchantId)]
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<Merchant> for MerchantView {
    fn from(m: Merchant) -> Self {
        Self { id: m.id.to_string(), name: m.name, created_at: m.created_at }
    }
}

#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// One to four of `merchant`, `feed`, `checkout`, `auditor` (never `admin`).
    #[validate(length(min = 1, max = 4, message = "give 1 to 4 roles"))]
    #[schema(schema_with = merchant_roles)]
    pub roles: Vec<Role>,
    /// A note for people, e.g. "checkout eu-west".
    #[validate(length(max = 100, message = "at most 100 characters"))]
    #[schema(max_length = 100)]
    pub label: Option<String>,
}

/// The roles a merchant's key may hold.
fn merchant_roles() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let role = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Role::ALL.iter().filter(|r| **r != Role::Admin).map(|r| r.as_str())));
    ArrayBuilder::new().items(role).min_items(Some(1)).max_items(Some(4)).build()
}

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    #[schema(value_type = KeyId)]
    pub id: String,
    /// The merchant whose key it is; absent for an admin key.
    #[schema(value_type = MerchantId)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    pub roles: Vec<Role>,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&StoredKey> for KeyView {
    fn from(k: &StoredKey) -> Self {
        Self {
            id: k.id.to_string(),
            merchant_id: k.merchant.map(|m| m.to_string()),
            roles: k.roles.iter().collect(),
            label: k.label.clone(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IssuedKeyView {
    #[serde(flatten)]
    pub key: KeyView,
    /// The bearer token. Shown once: only its hash is kept.
    #[serde(rename = "key")]
    pub token: String,
}

fn merchant_id(text: &str) -> Result<MerchantId, ApiError> {
    MerchantId::parse(text).map_err(|e| ApiError::InvalidPath(e.to_string()))
}

async fn existing_merchant(store: &Store, text: &str) -> Result<Merchant, ApiError> {
    let id = merchant_id(text)?;
    store.merchant(id).await?.ok_or_else(|| ApiError::not_found(format!("merchant {id}")))
}

/// Create a merchant.
#[utoipa::path(post, path = "/v1/merchants", tag = "merchants", request_body = NewMerchant,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = MerchantView),
              (status = 422, description = "`validation_failed`")))]
pub async fn create_merchant(
    _: Admin,
    store: web::Data<Store>,
    body: web::Json<NewMerchant>,
) -> Result<HttpResponse, ApiError> {
    body.validate()?;
    let merchant = store.create_merchant(body.name.trim()).await?;
    tracing::info!(merchant_id = %merchant.id, "merchant created");
    Ok(HttpResponse::Created().json(MerchantView::from(merchant)))
}

/// Read a merchant.
#[utoipa::path(get, path = "/v1/merchants/{merchant_id}", tag = "merchants", security(("bearer" = [])),
    responses((status = 200, description = "The merchant", body = MerchantView)))]
pub async fn get_merchant(
    _: Admin,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = existing_merchant(store.as_ref(), &path).await?;
    Ok(HttpResponse::Ok().json(MerchantView::from(merchant)))
}

/// Issue a key for a merchant. The response holds the secret, once.
#[utoipa::path(post, path = "/v1/merchants/{merchant_id}/keys", tag = "merchants", request_body = NewKey,
    security(("bearer" = [])),
    responses((status = 201, description = "Issued; the secret is in `key`, this once", body = IssuedKeyView),
              (status = 422, description = "`validation_failed`")))]
pub async fn create_key(
    _: Admin,
    store: web::Data<Store>,
    path: web::Path<String>,
    body: web::Json<NewKey>,
) -> Result<HttpResponse, ApiError> {
    let merchant = existing_merchant(store.as_ref(), &path).await?;
    body.validate()?;
    if body.roles.contains(&Role::Admin) {
        return Err(Invalid::one("roles", "a merchant's key cannot hold the admin role").into());
    }
    issue_key(&store, Some(merchant.id), Roles::of(&body.roles), body.label.clone()).await
}

/// Issues a key (a merchant's, or with no merchant an operator's), stores its hash, and
/// answers with the secret, once.
pub(super) async fn issue_key(
    store: &Store,
    merchant: Option<MerchantId>,
    roles: Roles,
    label: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let issued = auth::issue(merchant, roles, label);
    store.insert_key(&issued.stored).await?;
    tracing::info!(merchant_id = ?merchant, key_id = %issued.stored.id, "key issued");
    Ok(HttpResponse::Created().json(IssuedKeyView { key: KeyView::from(&issued.stored), token: issued.token }))
}

/// The keys of a merchant (or, with none, the operator's), newest first, without secrets.
pub(super) async fn keys_view(store: &Store, merchant: Option<MerchantId>) -> Result<HttpResponse, ApiError> {
    let keys = store.keys(merchant).await?;
    Ok(HttpResponse::Ok().json(keys.iter().map(KeyView::from).collect::<Vec<_>>()))
}

/// List a merchant's keys (never their secrets), newest first.
#[utoipa::path(get, path = "/v1/merchants/{merchant_id}/keys", tag = "merchants", security(("bearer" = [])),
    responses((status = 200, description = "The merchant's keys, newest first", body = [KeyView])))]
pub async fn list_keys(_: Admin, store: web::Data<Store>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let merchant = existing_merchant(store.as_ref(), &path).await?;
    keys_view(&store, Some(merchant.id)).await
}

/// Revoke a key. It stops working at once on this replica, and within the key cache's
/// lifetime on the others. Revoking twice is harmless.
#[utoipa::path(delete, path = "/v1/merchants/{merchant_id}/keys/{key_id}", tag = "merchants",
    security(("bearer" = [])),
    responses((status = 200, description = "Revoked (now or before)", body = KeyView)))]
pub async fn revoke_key(
    _: Admin,
    store: web::Data<Store>,
    authenticator: web::Data<Authenticator>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (merchant_text, key_text) = path.into_inner();
    let merchant = existing_merchant(store.as_ref(), &merchant_text).await?;
    let key_id = KeyId::parse(&key_text).map_err(|e| ApiError::InvalidPath(e.to_string()))?;
    let key = store
        .revoke_key(Some(merchant.id), key_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("key {key_id}")))?;
    authenticator.forget(key_id);
    tracing::info!(merchant_id = %merchant.id, key_id = %key_id, "key revoked");
    Ok(HttpResponse::Ok().json(KeyView::from(&key)))
}
