//! `/v1/signals`: feeds push competitor observations and demand events, in batches, for
//! `feed` and `merchant` keys. Batches are checked whole before anything is stored; a replayed
//! batch changes nothing; an observation older than the stored one for the same competitor is
//! ignored. Affected products are queued for repricing; the answer does not wait for it.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use super::access::{Access, Feed};
use super::extract::{json_body, json_config, resource};
use crate::config::PricingSettings;
use crate::domain::{Currency, Invalid, MAX_AMOUNT_MINOR, Money, Sku};
use crate::store::{DemandEvent, DemandKind, Observation};
use crate::write::{Prices, SignalQuotas};

/// Signal batches are large: a bigger body limit than the rest of the API.
const BATCH_BODY_LIMIT: usize = 16 << 20;
/// How far in the future a signal's time may be (clock skew between feed and service).
const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// How old a signal may be: older ones can no longer reach any rule (demand windows end at 30
/// days, an offer that old is long stale), and far-off times are mistakes.
const MAX_AGE_DAYS: i64 = 366;
/// Entries a batch body may hold at all, checked while it is parsed: a body cannot make the
/// service build a huge list only to refuse it afterwards (`pricing.max_signal_batch` is then
/// checked, and may be lower).
pub const MAX_PARSED_BATCH: usize = 100_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/signals/competitor-prices").app_data(json_config(BATCH_BODY_LIMIT)).post(competitor_prices),
    )
    .service(resource("/v1/signals/demand").app_data(json_config(BATCH_BODY_LIMIT)).post(demand));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationInput {
    /// The feed's id for this observation: the same id again is the same observation.
    #[schema(min_length = 1, max_length = 128)]
    pub id: String,
    #[schema(value_type = Sku)]
    pub sku: String,
    #[schema(min_length = 1, max_length = 128)]
    pub competitor: String,
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    pub price_minor: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub in_stock: bool,
    /// Within the last 366 days, and at most 5 minutes ahead of the service's clock.
    pub observed_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationBatch {
    /// 1 to `pricing.max_signal_batch` (10000 by default); a body of more than 100000 is not
    /// read to its end.
    #[serde(deserialize_with = "bounded")]
    #[schema(min_items = 1, max_items = 100_000)]
    pub observations: Vec<ObservationInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemandInput {
    /// The feed's id for this event: the same id again is the same event.
    #[schema(min_length = 1, max_length = 128)]
    pub id: String,
    #[schema(value_type = Sku)]
    pub sku: String,
    pub kind: DemandKind,
    /// Views, add-to-carts or units sold; for `inventory`, the stock level.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    pub quantity: i64,
    /// Within the last 366 days, and at most 5 minutes ahead of the service's clock.
    pub occurred_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemandBatch {
    /// 1 to `pricing.max_signal_batch` (10000 by default); a body of more than 100000 is not
    /// read to its end.
    #[serde(deserialize_with = "bounded")]
    #[schema(min_items = 1, max_items = 100_000)]
    pub events: Vec<DemandInput>,
}

#[derive(Serialize, ToSchema)]
pub struct SignalReceipt {
    pub received: usize,
    /// SKUs whose signals changed (and which are queued for repricing).
    pub skus_changed: usize,
}

fn check_batch(len: usize, field: &str, settings: &PricingSettings) -> Result<(), ApiError> {
    if len == 0 || len > settings.max_signal_batch {
        return Err(Invalid::one(
            field,
            format!("a batch holds 1 to {} entries, got {len}", settings.max_signal_batch),
        )
        .into());
    }
    Ok(())
}

fn check_id(id: &str, field: String, invalid: &mut Invalid) {
    if !(1..=128).contains(&id.chars().count()) {
        invalid.push(field, "ids are 1 to 128 characters");
    }
}

fn check_time(at: DateTime<Utc>, field: String, invalid: &mut Invalid) {
    let now = Utc::now();
    if at > now + Duration::seconds(MAX_CLOCK_SKEW_SECS) {
        invalid.push(field, "is in the future");
    } else if at < now - Duration::days(MAX_AGE_DAYS) {
        invalid.push(field, format!("is more than {MAX_AGE_DAYS} days old"));
    }
}

/// A list that stops being read past [`MAX_PARSED_BATCH`] entries.
fn bounded<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_PARSED_BATCH} entries")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_PARSED_BATCH {
                    return Err(serde::de::Error::custom(format!("a batch holds at most {MAX_PARSED_BATCH} entries")));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Bounded(std::marker::PhantomData))
}

impl ObservationBatch {
    /// The observations, every entry checked before any is stored (every problem at once).
    pub fn into_observations(self, settings: &PricingSettings) -> Result<Vec<Observation>, ApiError> {
        let batch = self.observations;
        check_batch(batch.len(), "observations", settings)?;
        let mut invalid = Invalid::new();
        let mut observations = Vec::with_capacity(batch.len());
        for (i, o) in batch.into_iter().enumerate() {
            let field = |name: &str| format!("observations[{i}].{name}");
            check_id(&o.id, field("id"), &mut invalid);
            check_time(o.observed_at, field("observed_at"), &mut invalid);
            if !(1..=128).contains(&o.competitor.chars().count()) {
                invalid.push(field("competitor"), "1 to 128 characters");
            }
            if !(1..=MAX_AMOUNT_MINOR).contains(&o.price_minor) {
                invalid.push(field("price_minor"), format!("must be between 1 and {MAX_AMOUNT_MINOR}"));
            }
            let sku = Sku::parse(&o.sku).map_err(|e| invalid.push(field("sku"), e.to_string())).ok();
            let currency =
                Currency::parse(&o.currency).map_err(|e| invalid.push(field("currency"), e.to_string())).ok();
            if let (Some(sku), Some(currency)) = (sku, currency) {
                observations.push(Observation {
                    id: o.id,
                    sku,
                    competitor: o.competitor,
                    price: Money::new(o.price_minor, currency),
                    in_stock: o.in_stock,
                    observed_at: o.observed_at,
                });
            }
        }
        invalid.or_ok(|| observations).map_err(ApiError::from)
    }
}

impl DemandBatch {
    /// The demand events, every entry checked before any is stored (every problem at once).
    pub fn into_events(self, settings: &PricingSettings) -> Result<Vec<DemandEvent>, ApiError> {
        let batch = self.events;
        check_batch(batch.len(), "events", settings)?;
        let mut invalid = Invalid::new();
        let mut events = Vec::with_capacity(batch.len());
        for (i, e) in batch.into_iter().enumerate() {
            let field = |name: &str| format!("events[{i}].{name}");
            check_id(&e.id, field("id"), &mut invalid);
            check_time(e.occurred_at, field("occurred_at"), &mut invalid);
            if !(0..=1_000_000_000).contains(&e.quantity) {
                invalid.push(field("quantity"), "must be between 0 and 1000000000");
            }
            if let Ok(sku) = Sku::parse(&e.sku).map_err(|err| invalid.push(field("sku"), err.to_string())) {
                events.push(DemandEvent {
                    id: e.id,
                    sku,
                    kind: e.kind,
                    quantity: e.quantity,
                    occurred_at: e.occurred_at,
                });
            }
        }
        invalid.or_ok(|| events).map_err(ApiError::from)
    }
}

/// A `POST /v1/signals/competitor-prices` body as the handler reads it, from its bytes to the
/// observations to store (the fuzz targets' entry point).
pub fn parse_competitor_prices_body(body: &[u8], settings: &PricingSettings) -> Result<Vec<Observation>, ApiError> {
    json_body::<ObservationBatch>(body)?.into_observations(settings)
}

/// A `POST /v1/signals/demand` body as the handler reads it, from its bytes to the events.
pub fn parse_demand_body(body: &[u8], settings: &PricingSettings) -> Result<Vec<DemandEvent>, ApiError> {
    json_body::<DemandBatch>(body)?.into_events(settings)
}

/// Says what was received.
fn receipt(received: usize, changed: usize) -> HttpResponse {
    HttpResponse::Ok().json(SignalReceipt { received, skus_changed: changed })
}

/// Record competitor prices.
#[utoipa::path(post, path = "/v1/signals/competitor-prices", tag = "signals", request_body = ObservationBatch,
    security(("bearer" = [])),
    responses((status = 200, description = "Stored; the SKUs whose signals changed are queued for repricing",
               body = SignalReceipt),
              (status = 422, description = "`validation_failed`: e.g. a time out of range, or more entries than \
                                            `pricing.max_signal_batch`")))]
pub async fn competitor_prices(
    access: Access<Feed>,
    prices: web::Data<Prices>,
    settings: web::Data<PricingSettings>,
    body: web::Json<ObservationBatch>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let observations = body.into_inner().into_observations(&settings)?;
    let received = observations.len();
    let changed = prices.record_observations(merchant, observations, SignalQuotas::from(&**settings)).await?;
    Ok(receipt(received, changed))
}

/// Record demand events.
#[utoipa::path(post, path = "/v1/signals/demand", tag = "signals", request_body = DemandBatch,
    security(("bearer" = [])),
    responses((status = 200, description = "Stored; the SKUs whose signals changed are queued for repricing",
               body = SignalReceipt),
              (status = 422, description = "`validation_failed`: e.g. a time out of range, or more entries than \
                                            `pricing.max_signal_batch`")))]
pub async fn demand(
    access: Access<Feed>,
    prices: web::Data<Prices>,
    settings: web::Data<PricingSettings>,
    body: web::Json<DemandBatch>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let events = body.into_inner().into_events(&settings)?;
    let received = events.len();
    let changed = prices.record_demand(merchant, events, SignalQuotas::from(&**settings)).await?;
    Ok(receipt(received, changed))
}
