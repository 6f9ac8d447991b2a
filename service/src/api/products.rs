//! `/v1/products`: a merchant's catalogue. `merchant` keys write; `merchant` and `auditor`
//! keys read. Another merchant's product answers 404, exactly like one that does not exist.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::ApiError;
use super::access::{Access, Read, Write};
use super::extract::{json_body, resource};
use crate::domain::product_file::attribute_value;
use crate::domain::{Currency, GuardrailsInput, MAX_AMOUNT_MINOR, Product, ProductDraft, Sku};
use crate::store::{CurrentPrice, ProductFilter, Store, Upserted};
use crate::write::Prices;

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/products").get(list_products))
        .service(resource("/v1/products/{sku}").put(put_product).get(get_product).delete(delete_product));
}

/// A product. Beyond what this schema says, the floor and the minimum advertised price may not
/// exceed the ceiling, and the base price must lie within the floor, the minimum advertised
/// price and the ceiling (`422 validation_failed` names the field).
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    /// ISO 4217 code; fixed once the product exists.
    #[validate(length(equal = 3, message = "an ISO 4217 code has 3 letters"))]
    #[schema(value_type = Currency)]
    pub currency: String,
    /// What the product costs the merchant, in minor units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    pub cost_minor: i64,
    /// The price in force until a rule sets another, in minor units.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    pub base_price_minor: i64,
    #[serde(default)]
    pub guardrails: GuardrailsInput,
    #[serde(default)]
    #[schema(schema_with = crate::domain::Attributes::schema)]
    pub attributes: Map<String, Value>,
}

impl ProductBody {
    /// The product this body describes under `sku`, every field checked (every problem at once).
    pub fn into_draft(self, sku: Sku) -> Result<ProductDraft, ApiError> {
        self.validate()?;
        let draft = ProductDraft::parse(
            sku,
            &self.currency,
            self.cost_minor,
            self.base_price_minor,
            self.guardrails,
            self.attributes,
        )?;
        Ok(draft)
    }
}

/// A `PUT /v1/products/{sku}` body as the handler reads it, from its bytes to the product
/// (the fuzz targets' entry point; the handler gets the body decoded by the JSON extractor).
pub fn parse_product_body(sku: Sku, body: &[u8]) -> Result<ProductDraft, ApiError> {
    json_body::<ProductBody>(body)?.into_draft(sku)
}

/// The price in force of a product (a checkout lookup's [`super::prices::PriceView`] without
/// the SKU).
#[derive(Serialize, ToSchema)]
pub struct PriceInForce {
    pub price_minor: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub version: i64,
    pub effective_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ProductView {
    #[schema(value_type = Sku)]
    pub sku: String,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub cost_minor: i64,
    pub base_price_minor: i64,
    pub guardrails: GuardrailsInput,
    #[schema(schema_with = crate::domain::Attributes::schema)]
    pub attributes: Map<String, Value>,
    /// Incremented on every change of the product.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The price in force now (its base price until a rule sets another); left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<PriceInForce>,
}

impl ProductView {
    fn new(product: Product, price: Option<CurrentPrice>) -> Self {
        Self {
            sku: product.sku.to_string(),
            currency: product.currency().to_string(),
            cost_minor: product.cost.minor(),
            base_price_minor: product.base_price.minor(),
            guardrails: product.guardrails.as_input().clone(),
            attributes: product.attributes.as_map().clone(),
            version: product.version,
            created_at: product.created_at,
            updated_at: product.updated_at,
            price: price.map(|p| PriceInForce {
                price_minor: p.price.minor(),
                currency: p.price.currency().to_string(),
                version: p.version,
                effective_at: p.effective_at,
            }),
        }
    }
}

/// A list's parameters (read by [`ListQuery::parse`], since `attr.<key>` names are the
/// merchant's own). Filters combine with AND; a product without a price in force matches no
/// price filter.
#[derive(IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `next_cursor` of the previous page: the page starts after this SKU.
    #[param(value_type = Option<Sku>)]
    pub cursor: Option<String>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The price in force is at least this, in minor units.
    #[param(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub price_min: Option<i64>,
    /// The price in force is at most this, in minor units.
    #[param(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub price_max: Option<i64>,
    /// The cost is at least this, in minor units.
    #[param(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub cost_min: Option<i64>,
    /// The cost is at most this, in minor units.
    #[param(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub cost_max: Option<i64>,
    /// A rule set the price in force within the last this many seconds.
    #[param(minimum = 1, maximum = 31_622_400)]
    pub moved_within_secs: Option<i64>,
    /// Also `attr.<key>=<value>`, any number of them: the attribute has exactly this value (a
    /// value reads as in an import's CSV: `true`/`false`, a JSON number, else text; `"42"` is
    /// the text 42).
    #[param(ignore)]
    pub attributes: Vec<(String, Value)>,
}

impl ListQuery {
    /// Reads a query string: every parameter known, each at most once (400 `invalid_query`).
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let bad = |message: String| ApiError::InvalidQuery(message);
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| bad(format!("the query string is not valid: {e}")))?
            .into_inner();
        let mut list = ListQuery::default();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in pairs {
            if !seen.insert(name.clone()) {
                return Err(bad(format!("`{name}` is given twice")));
            }
            let amount = |min: i64, max: i64| -> Result<Option<i64>, ApiError> {
                match value.parse::<i64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                    _ => Err(bad(format!("`{name}` is a whole number from {min} to {max}"))),
                }
            };
            match name.as_str() {
                "cursor" => list.cursor = Some(value),
                "limit" => list.limit = Some(amount(1, i64::from(MAX_PAGE))?.unwrap_or(1) as u32),
                "price_min" => list.price_min = amount(0, MAX_AMOUNT_MINOR)?,
                "price_max" => list.price_max = amount(0, MAX_AMOUNT_MINOR)?,
                "cost_min" => list.cost_min = amount(0, MAX_AMOUNT_MINOR)?,
                "cost_max" => list.cost_max = amount(0, MAX_AMOUNT_MINOR)?,
                "moved_within_secs" => list.moved_within_secs = amount(1, 31_622_400)?,
                other => match other.strip_prefix("attr.") {
                    Some(key) if !key.is_empty() => {
                        let value = attribute_value(&value).unwrap_or(Value::String(String::new()));
                        list.attributes.push((key.to_owned(), value));
                    }
                    _ => return Err(bad(format!("unknown parameter `{other}`"))),
                },
            }
        }
        Ok(list)
    }

    fn filter(&self) -> ProductFilter {
        ProductFilter {
            attributes: self.attributes.clone(),
            price_min: self.price_min,
            price_max: self.price_max,
            cost_min: self.cost_min,
            cost_max: self.cost_max,
            moved_since: self.moved_within_secs.map(|secs| Utc::now() - chrono::Duration::seconds(secs)),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductView>,
    /// Pass as `cursor` to get the next page (the last SKU of this one); null on the last page.
    #[schema(value_type = Option<Sku>)]
    pub next_cursor: Option<String>,
}

fn sku_from_path(text: &str) -> Result<Sku, ApiError> {
    Sku::parse(text).map_err(|e| ApiError::InvalidPath(e.to_string()))
}

/// Create or replace a product. 201 when created, 200 when replaced or unchanged.
#[utoipa::path(put, path = "/v1/products/{sku}", tag = "products", request_body = ProductBody,
    security(("bearer" = [])),
    responses((status = 200, description = "Replaced, or unchanged", body = ProductView),
              (status = 201, description = "Created", body = ProductView),
              (status = 409, description = "`currency_mismatch`: the product exists in another currency"),
              (status = 422, description = "`validation_failed`")))]
pub async fn put_product(
    access: Access<Write>,
    prices: web::Data<Prices>,
    path: web::Path<String>,
    body: web::Json<ProductBody>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let sku = sku_from_path(&path)?;
    let draft = body.into_inner().into_draft(sku)?;
    // Checkout sees the new price before the merchant hears it is stored.
    let (product, outcome, price) = prices.put_product(merchant, draft).await?;
    let view = ProductView::new(product, price);
    Ok(match outcome {
        Upserted::Created => HttpResponse::Created().json(view),
        Upserted::Updated | Upserted::Unchanged => HttpResponse::Ok().json(view),
    })
}

/// Read a product with the price in force.
#[utoipa::path(get, path = "/v1/products/{sku}", tag = "products", security(("bearer" = [])),
    responses((status = 200, description = "The product", body = ProductView)))]
pub async fn get_product(
    access: Access<Read>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let sku = sku_from_path(&path)?;
    let product = store.product(merchant, &sku).await?.ok_or_else(|| ApiError::not_found(format!("product {sku}")))?;
    let price = store.current_price(merchant, &sku).await?;
    Ok(HttpResponse::Ok().json(ProductView::new(product, price)))
}

/// Delete a product. Its decision history is kept.
#[utoipa::path(delete, path = "/v1/products/{sku}", tag = "products", security(("bearer" = [])),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_product(
    access: Access<Write>,
    prices: web::Data<Prices>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let sku = sku_from_path(&path)?;
    if prices.delete_product(merchant, sku.clone()).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("product {sku}")))
    }
}

/// List products in SKU order, a page at a time, all or those the filters select.
#[utoipa::path(get, path = "/v1/products", tag = "products", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of the catalogue", body = ProductPage)))]
pub async fn list_products(
    access: Access<Read>,
    store: web::Data<Store>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let query = ListQuery::parse(req.query_string())?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    // One extra row tells whether another page follows.
    let mut products = store.products_matching(merchant, &query.filter(), after.as_ref(), limit + 1).await?;
    let next_cursor = (products.len() > limit as usize).then(|| {
        products.truncate(limit as usize);
        products[products.len() - 1].sku.to_string()
    });
    let items = products.into_iter().map(|p| ProductView::new(p, None)).collect();
    Ok(HttpResponse::Ok().json(ProductPage { items, next_cursor }))
}

/// A cursor is the last SKU of the page before: any SKU is a place in the catalogue's order,
/// whether or not a product has it.
fn decode_cursor(cursor: &str) -> Result<Sku, ApiError> {
    Sku::parse(cursor).map_err(|e| ApiError::InvalidQuery(format!("cursor: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku() -> Sku {
        Sku::parse("sku-1").unwrap()
    }

    #[test]
    fn a_body_is_refused_as_the_extractor_would() {
        assert!(matches!(parse_product_body(sku(), b"{\"currency\":"), Err(ApiError::InvalidJson(_))));
        let unknown = br#"{"currency":"EUR","cost_minor":1,"base_price_minor":1,"colour":"red"}"#;
        assert!(matches!(parse_product_body(sku(), unknown), Err(ApiError::InvalidBody(_))));
        let invalid = br#"{"currency":"EUR","cost_minor":-1,"base_price_minor":1}"#;
        assert!(matches!(parse_product_body(sku(), invalid), Err(ApiError::Validation(_))));
        let valid = br#"{"currency":"EUR","cost_minor":1200,"base_price_minor":1999}"#;
        assert_eq!(parse_product_body(sku(), valid).unwrap().base_price.minor(), 1999);
    }

    /// Found by the `product_body` fuzz target: serde_json's default float parsing read
    /// `1.8446744703709274e19` as its neighbour, so an attribute read back from the text the
    /// store keeps (or from a GET sent back as a PUT) was another number than the one sent.
    #[test]
    fn attribute_numbers_read_back_from_their_stored_text_are_the_same() {
        for number in ["18446744703709275807", "1.8446744703709274e19", "2.638344616030823e-256", "0.1"] {
            let body =
                format!(r#"{{"currency":"KWD","cost_minor":1,"base_price_minor":1,"attributes":{{"n":{number}}}}}"#);
            let draft = parse_product_body(sku(), body.as_bytes()).unwrap();
            // As store/products.rs writes the attributes, and reads them back.
            let stored = serde_json::to_string(draft.attributes.as_map()).unwrap();
            let read: Map<String, Value> = serde_json::from_str(&stored).unwrap();
            assert_eq!(&read, draft.attributes.as_map(), "{number} stored as {stored}");
        }
    }
}
