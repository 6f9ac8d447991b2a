//! `/v1/prices`: checkout's price lookups, for `checkout` keys, answered from the price cache
//! alone (never the store, never waiting on repricing).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::resource;
use super::{ApiError, ErrorBody};
use crate::auth::{Principal, Role};
use crate::cache::{CachedPrice, PriceCache};
use crate::domain::{Invalid, MerchantId, Sku};

/// Most SKUs in one lookup.
pub const MAX_LOOKUP: usize = 1_000;

const CHECKOUT: &[Role] = &[Role::Checkout];

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Registered before `/v1/prices/{sku}`, which would otherwise take "lookup" for a SKU.
    cfg.service(resource("/v1/prices/lookup").route(web::post().to(lookup)))
        .service(resource("/v1/prices/{sku}").route(web::get().to(get_price)));
}

#[derive(Serialize, ToSchema)]
pub struct PriceView {
    pub sku: String,
    pub price_minor: i64,
    pub currency: String,
    /// Incremented on every change of this product's price.
    pub version: i64,
    pub effective_at: DateTime<Utc>,
    /// The lowest price in force during the 30 days before this price took effect, when the
    /// merchant shows it (`PUT /v1/settings`) and a price was in force then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prior_price_minor: Option<i64>,
}

impl PriceView {
    fn new(sku: String, cached: CachedPrice) -> Self {
        Self {
            sku,
            price_minor: cached.price_minor,
            currency: cached.currency.to_string(),
            version: cached.version,
            effective_at: cached.effective_at,
            prior_price_minor: cached.prior_minor,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    pub skus: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LookupResponse {
    /// Prices of the SKUs found, in the order asked.
    pub prices: Vec<PriceView>,
    /// SKUs with no product (including ones that are not valid SKUs).
    pub missing: Vec<String>,
}

fn find(cache: &PriceCache, merchant: MerchantId, text: &str) -> Option<CachedPrice> {
    Sku::parse(text).ok().and_then(|sku| cache.get(merchant, sku))
}

/// The price in force for one SKU.
#[utoipa::path(get, path = "/v1/prices/{sku}", tag = "prices", security(("bearer" = [])),
    responses((status = 200, body = PriceView), (status = "4XX", body = ErrorBody)))]
pub async fn get_price(
    principal: Principal,
    cache: web::Data<PriceCache>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = principal.merchant_with(CHECKOUT)?;
    let sku = path.into_inner();
    let cached = find(&cache, merchant, &sku).ok_or_else(|| ApiError::not_found(format!("price of {sku}")))?;
    Ok(HttpResponse::Ok().json(PriceView::new(sku, cached)))
}

/// The prices in force for up to 1000 SKUs.
#[utoipa::path(post, path = "/v1/prices/lookup", tag = "prices", security(("bearer" = [])),
    request_body = LookupRequest,
    responses((status = 200, body = LookupResponse), (status = "4XX", body = ErrorBody)))]
pub async fn lookup(
    principal: Principal,
    cache: web::Data<PriceCache>,
    body: web::Json<LookupRequest>,
) -> Result<HttpResponse, ApiError> {
    let merchant = principal.merchant_with(CHECKOUT)?;
    let skus = body.into_inner().skus;
    if skus.len() > MAX_LOOKUP {
        return Err(Invalid::one("skus", format!("at most {MAX_LOOKUP} SKUs per lookup, got {}", skus.len())).into());
    }
    let mut prices = Vec::with_capacity(skus.len());
    let mut missing = Vec::new();
    for sku in skus {
        match find(&cache, merchant, &sku) {
            Some(cached) => prices.push(PriceView::new(sku, cached)),
            None => missing.push(sku),
        }
    }
    Ok(HttpResponse::Ok().json(LookupResponse { prices, missing }))
}
