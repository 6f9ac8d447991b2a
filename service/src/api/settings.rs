//! `/v1/settings`: a merchant's own settings, for `merchant` keys. Today one: whether checkout
//! lookups carry the prior price (the lowest price in force in the 30 days before the current
//! one took effect), which EU price-indication rules ask for with every price reduction.
//! Turning it on fills the prior price of every product from the history before answering,
//! and puts it in the price cache; turning it off clears it.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::access::{Access, Write};
use super::extract::resource;
use crate::store::Store;
use crate::write::Prices;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/settings").get(get_settings).put(put_settings));
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantSettings {
    /// Checkout lookups carry `prior_price_minor`.
    pub show_prior_price: bool,
}

#[utoipa::path(get, path = "/v1/settings", tag = "merchants", security(("bearer" = [])),
    responses((status = 200, description = "The merchant's settings", body = MerchantSettings)))]
pub async fn get_settings(access: Access<Write>, store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let merchant = store.merchant(merchant).await?.ok_or_else(|| ApiError::not_found("the merchant"))?;
    Ok(HttpResponse::Ok().json(MerchantSettings { show_prior_price: merchant.show_prior_price }))
}

#[utoipa::path(put, path = "/v1/settings", tag = "merchants", request_body = MerchantSettings,
    security(("bearer" = [])),
    responses((status = 200, description = "The merchant's settings", body = MerchantSettings)))]
pub async fn put_settings(
    access: Access<Write>,
    prices: web::Data<Prices>,
    body: web::Json<MerchantSettings>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let touched = prices.set_show_prior_price(merchant, body.show_prior_price).await?;
    tracing::info!(merchant_id = %merchant, show_prior_price = body.show_prior_price, prices = touched, "settings changed");
    Ok(HttpResponse::Ok().json(body.into_inner()))
}
