//! `/v1/prices`: checkout's price lookups, for `checkout` keys, answered from the price cache
//! alone (never the store, never waiting on repricing).

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::access::{Access, Checkout};
use super::extract::resource;
use crate::cache::{CachedPrice, PriceCache};
use crate::domain::{Currency, Invalid, MerchantId, Sku};

/// Most SKUs in one lookup.
pub const MAX_LOOKUP: usize = 1_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Registered before `/v1/prices/{sku}`, which would otherwise take "lookup" for a SKU; a
    // GET of it is the price of the SKU named `lookup`.
    cfg.service(resource("/v1/prices/lookup").post(lookup).get(get_price_named_lookup))
        .service(resource("/v1/prices/{sku}").get(get_price));
}

#[derive(Serialize, ToSchema)]
pub struct PriceView {
    #[schema(value_type = Sku)]
    pub sku: String,
    pub price_minor: i64,
    #[schema(value_type = Currency)]
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
    /// Any strings: one that is not a SKU is simply missing.
    #[schema(max_items = 1000)]
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
    cache.get_text(merchant, text)
}

/// The price in force for one SKU.
#[utoipa::path(get, path = "/v1/prices/{sku}", tag = "prices", security(("bearer" = [])),
    responses((status = 200, description = "The price in force", body = PriceView)))]
pub async fn get_price(
    access: Access<Checkout>,
    cache: web::Data<PriceCache>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    // The segment as routed, borrowed: checkout's hot path copies no SKU. The router leaves
    // only `%2F`, `%25` and `%2B` encoded, and `/`, `%` and `+` are never in a SKU, so text
    // that finds a price is exactly what `web::Path<String>` would have decoded.
    // No `sku` segment: the request came through `/v1/prices/lookup`, the SKU named `lookup`.
    let raw = req.match_info().get("sku").unwrap_or(LOOKUP);
    match cache.get_text(merchant, raw) {
        Some(cached) => Ok(HttpResponse::Ok().content_type(ContentType::json()).body(price_json(raw, &cached))),
        None => {
            let sku: String = req.match_info().load().unwrap_or_else(|_| raw.to_owned());
            Err(ApiError::not_found(format!("price of {sku}")))
        }
    }
}

/// The SKU that `/v1/prices/lookup` names, whose `GET` is its price like any other SKU's.
const LOOKUP: &str = "lookup";

/// The price in force for the SKU named `lookup`: `/v1/prices/lookup` is also the batch
/// lookup's path, so its `GET` is documented on its own (it is [`get_price`]).
#[utoipa::path(get, path = "/v1/prices/lookup", tag = "prices", security(("bearer" = [])),
    responses((status = 200, description = "The price in force of the SKU `lookup`", body = PriceView),
              (status = 404, description = "`not_found`: no product has the SKU `lookup`")))]
pub async fn get_price_named_lookup(
    access: Access<Checkout>,
    cache: web::Data<PriceCache>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    get_price(access, cache, req).await
}

/// The JSON of [`PriceView`] for one price, written into one buffer of about the right size
/// instead of through an intermediate view with owned strings.
fn price_json(sku: &str, cached: &CachedPrice) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(160);
    // Writing into a `Vec` cannot fail, and these values always serialize.
    let written: std::io::Result<()> = (|| {
        out.extend_from_slice(b"{\"sku\":");
        serde_json::to_writer(&mut out, sku)?;
        write!(
            out,
            ",\"price_minor\":{},\"currency\":\"{}\",\"version\":{},\"effective_at\":",
            cached.price_minor,
            cached.currency.code(),
            cached.version
        )?;
        serde_json::to_writer(&mut out, &cached.effective_at)?;
        if let Some(prior) = cached.prior_minor {
            write!(out, ",\"prior_price_minor\":{prior}")?;
        }
        out.push(b'}');
        Ok(())
    })();
    written.expect("JSON into memory");
    out
}

/// The prices in force for up to 1000 SKUs.
#[utoipa::path(post, path = "/v1/prices/lookup", tag = "prices", security(("bearer" = [])),
    request_body = LookupRequest,
    responses((status = 200, description = "The prices found, and the SKUs missing", body = LookupResponse),
              (status = 422, description = "`validation_failed`: more than 1000 SKUs")))]
pub async fn lookup(
    access: Access<Checkout>,
    cache: web::Data<PriceCache>,
    body: web::Json<LookupRequest>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_written_price_is_what_serde_writes_for_the_view() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 30, 5).unwrap();
        for (effective_at, prior_minor, sku) in [
            (at, None, "tee-1"),
            (at + chrono::Duration::nanoseconds(123_456_789), Some(1499), "A.b:c_d-9"),
            (at + chrono::Duration::microseconds(250), Some(-1), "x"),
        ] {
            let cached = CachedPrice {
                price_minor: 1999,
                currency: "EUR".parse().unwrap(),
                version: 7,
                effective_at,
                prior_minor,
            };
            let expected = serde_json::to_vec(&PriceView::new(sku.to_owned(), cached)).unwrap();
            assert_eq!(String::from_utf8(price_json(sku, &cached)).unwrap(), String::from_utf8(expected).unwrap());
        }
    }
}
