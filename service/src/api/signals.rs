//! `/v1/signals`: feeds push competitor observations and demand events, in batches, for
//! `feed` and `merchant` keys. Batches are checked whole before anything is stored; a replayed
//! batch changes nothing; an observation older than the stored one for the same competitor is
//! ignored. Affected products are queued for repricing; the answer does not wait for it.

use std::collections::HashSet;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::access::{Access, Feed, Write};
use super::extract::{json_body, resource};
use super::ndjson::{Lines, MAX_LINE_BYTES, TooLong};
use crate::config::PricingSettings;
use crate::domain::{Invalid, MerchantId, Sku};
use crate::feeds::input::Confirmation;
use crate::feeds::{DemandBatch, DemandInput, MAX_PARSED_BATCH, ObservationBatch, ObservationInput};
use crate::store::{DemandEvent, Observation, StoreError, WrongCurrency};
use crate::write::{Flagged, Prices, Recorded, SignalQuotas, WrongCurrencies};

/// Signal batches are large: a bigger body limit than the rest of the API.
const BATCH_BODY_LIMIT: usize = 16 << 20;
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/signals/competitor-prices").post(competitor_prices))
        .service(resource("/v1/signals/competitor-prices/confirm").post(confirm_competitor_prices))
        .service(resource("/v1/signals/demand").post(demand));
}

/// What a signals request did.
#[derive(Serialize, ToSchema)]
pub struct SignalReceipt {
    /// Entries (JSON) or non-blank lines (NDJSON) read.
    pub received: usize,
    /// Entries stored (a replayed or older one is stored as a no-op).
    pub accepted: usize,
    /// NDJSON lines refused; always 0 for a JSON batch, which is refused whole.
    pub rejected: usize,
    /// The first 1000 refused lines, in order.
    pub rejected_lines: Vec<RejectedLine>,
    /// SKUs whose signals changed (and which are queued for repricing).
    pub skus_changed: usize,
    /// Observations stored but implausibly far from their product's base price (more than the
    /// merchant's `max_competitor_ratio` either way): rules do not see them until they are
    /// confirmed. The first 1000.
    pub flagged: Vec<FlaggedObservation>,
}

/// An observation stored and kept out of rules until confirmed.
#[derive(Serialize, ToSchema, Clone, Debug)]
pub struct FlaggedObservation {
    /// Its index in a JSON batch (from 0), or its line number in an NDJSON body (from 1).
    pub entry: usize,
    pub sku: String,
    pub competitor: String,
    pub price_minor: i64,
    /// The product's base price it was compared with.
    pub base_price_minor: i64,
}

impl FlaggedObservation {
    fn new(entry: usize, flagged: &Flagged) -> Self {
        Self {
            entry,
            sku: flagged.sku.to_string(),
            competitor: flagged.competitor.clone(),
            price_minor: flagged.price_minor,
            base_price_minor: flagged.base_price_minor,
        }
    }
}

/// A refused NDJSON line: its number (from 1) and the error, in the API's error terms.
#[derive(Serialize, ToSchema, Clone, Debug)]
pub struct RejectedLine {
    pub line: usize,
    /// `invalid_json`, `invalid_body`, `validation_failed` or `payload_too_large`.
    pub code: &'static str,
    pub message: String,
    /// As in the error shape: `fields` names each field that failed, without a prefix.
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IngestOptions {
    /// NDJSON bodies: `true` stores every line or none (at most 100000 lines); `false`, the
    /// default, stores the good lines in chunks as they arrive and lists the refused ones.
    pub atomic: Option<bool>,
}

/// A `POST /v1/signals/competitor-prices` body as the handler reads it, from its bytes to the
/// observations to store (the fuzz targets' entry point).
pub fn parse_competitor_prices_body(body: &[u8], settings: &PricingSettings) -> Result<Vec<Observation>, ApiError> {
    Ok(json_body::<ObservationBatch>(body)?.into_observations(settings)?)
}

/// A `POST /v1/signals/demand` body as the handler reads it, from its bytes to the events.
pub fn parse_demand_body(body: &[u8], settings: &PricingSettings) -> Result<Vec<DemandEvent>, ApiError> {
    Ok(json_body::<DemandBatch>(body)?.into_events(settings)?)
}

/// The two kinds of feed, as the shared ingest code sees them.
#[derive(Clone, Copy)]
enum Kind {
    Observations,
    Demand,
}

/// Checked signals of one kind.
enum Checked {
    Observations(Vec<Observation>),
    Demand(Vec<DemandEvent>),
}

impl Checked {
    fn empty(kind: Kind) -> Self {
        match kind {
            Kind::Observations => Checked::Observations(Vec::new()),
            Kind::Demand => Checked::Demand(Vec::new()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Checked::Observations(list) => list.len(),
            Checked::Demand(list) => list.len(),
        }
    }

    /// Checks one NDJSON line of `kind` into this list; the line's error otherwise.
    fn push_line(&mut self, text: &[u8]) -> Result<(), ApiError> {
        let mut invalid = Invalid::new();
        let field = |name: &str| name.to_owned();
        let pushed = match self {
            Checked::Observations(list) => json_body::<ObservationInput>(text)?
                .check(field, &mut invalid)
                .filter(|_| invalid.is_empty())
                .map(|o| list.push(o)),
            Checked::Demand(list) => json_body::<DemandInput>(text)?
                .check(field, &mut invalid)
                .filter(|_| invalid.is_empty())
                .map(|e| list.push(e)),
        };
        match pushed {
            Some(()) => Ok(()),
            None => Err(ApiError::Validation(invalid)),
        }
    }

    /// Stores the list (one transaction): what it did.
    async fn record(
        self,
        prices: &Prices,
        merchant: MerchantId,
        quotas: SignalQuotas,
        wrong: WrongCurrencies,
    ) -> Result<Recorded, StoreError> {
        match self {
            Checked::Observations(list) => prices.record_observations(merchant, list, quotas, wrong).await,
            Checked::Demand(list) => prices.record_demand(merchant, list, quotas).await,
        }
    }
}

/// The longest list of refused lines an answer carries (the count covers them all).
const MAX_LISTED_REJECTIONS: usize = 1_000;
/// The error of an observation in another currency than its product's, as field `field`.
pub(super) fn wrong_currency(field: String, wrong: &WrongCurrency) -> Invalid {
    Invalid::one(
        field,
        format!(
            "product {} is priced in {}; this observation is in {}",
            wrong.sku, wrong.product_currency, wrong.currency
        ),
    )
}

/// The most lines one NDJSON body may hold (larger feeds are several requests, or JetStream).
pub const MAX_NDJSON_LINES: usize = 10_000_000;

/// What an NDJSON request has done so far.
struct Progress {
    received: usize,
    accepted: usize,
    rejected: usize,
    rejected_lines: Vec<RejectedLine>,
    changed: HashSet<Sku>,
    flagged: Vec<FlaggedObservation>,
}

impl Progress {
    fn reject(&mut self, line: usize, error: &ApiError) {
        self.rejected += 1;
        if self.rejected_lines.len() < MAX_LISTED_REJECTIONS {
            let (code, _) = error.code_and_status();
            self.rejected_lines.push(RejectedLine { line, code, message: error.to_string(), details: error.details() });
        }
    }

    fn receipt(self) -> SignalReceipt {
        SignalReceipt {
            received: self.received,
            accepted: self.accepted,
            rejected: self.rejected,
            rejected_lines: self.rejected_lines,
            skus_changed: self.changed.len(),
            flagged: self.flagged,
        }
    }
}

/// An NDJSON body, read line by line as it arrives. By default each chunk of
/// `pricing.max_signal_batch` good lines is stored in its own transaction as soon as it is
/// read (while the next chunk is read and checked), and refused lines are listed in the answer; a store error (a quota, an outage) stops
/// the request, and its error says through which line everything was either stored or
/// refused (`details.stored_through_line`; ids make resending those lines harmless).
/// `atomic`: every line is checked first, and all are stored in one transaction only when
/// none was refused (`validation_failed` lists them otherwise).
async fn ingest_ndjson(
    kind: Kind,
    payload: web::Payload,
    atomic: bool,
    prices: &Prices,
    merchant: MerchantId,
    settings: &PricingSettings,
) -> Result<HttpResponse, ApiError> {
    let quotas = SignalQuotas::from(settings);
    let (chunk_lines, most_lines) =
        if atomic { (MAX_PARSED_BATCH, MAX_PARSED_BATCH) } else { (settings.max_signal_batch, MAX_NDJSON_LINES) };
    let mut lines = Lines::new(payload);
    let mut progress = Progress {
        received: 0,
        accepted: 0,
        rejected: 0,
        rejected_lines: Vec::new(),
        changed: HashSet::new(),
        flagged: Vec::new(),
    };
    let mut chunk = Checked::empty(kind);
    // The line number of each entry in the chunk.
    let mut numbers = Vec::new();
    // Atomic: a line in another currency than its product refuses the body.
    let wrong = if atomic { WrongCurrencies::RefuseBatch } else { WrongCurrencies::Skip };
    // Every line up to this one was stored or refused.
    let mut settled_through = 0;
    let mut last_read = 0;
    // The chunk being stored while the next one is read.
    let mut storing: Option<Storing> = None;
    loop {
        let line = lines.next().await?;
        if let Some(line) = &line {
            if progress.received == most_lines {
                let error = ApiError::TooManyLines { limit: most_lines };
                return Err(if atomic { error } else { interrupted(error, settled_through, progress) });
            }
            progress.received += 1;
            last_read = line.number;
            let checked = match &line.text {
                Ok(text) => chunk.push_line(text),
                Err(TooLong) => Err(ApiError::PayloadTooLarge { limit: MAX_LINE_BYTES }),
            };
            match checked {
                Ok(()) => numbers.push(line.number),
                Err(error) => progress.reject(line.number, &error),
            }
        }
        let full = chunk.len() == chunk_lines;
        let finished = line.is_none();
        if (full && !atomic) || (finished && chunk.len() > 0 && (!atomic || progress.rejected == 0)) {
            // Chunks are stored in order: the one before must have been stored first.
            if let Err(error) = settle(storing.take(), &mut progress, &mut settled_through).await {
                return Err(if atomic { error } else { interrupted(error, settled_through, progress) });
            }
            let batch = std::mem::replace(&mut chunk, Checked::empty(kind));
            let prices = prices.clone();
            let task = tokio::spawn(async move { batch.record(&prices, merchant, quotas, wrong).await });
            storing = Some(Storing { task, numbers: std::mem::take(&mut numbers), through: last_read });
        }
        if finished {
            break;
        }
    }
    if let Err(error) = settle(storing.take(), &mut progress, &mut settled_through).await {
        return Err(if atomic { error } else { interrupted(error, settled_through, progress) });
    }
    if atomic && progress.rejected > 0 {
        return Err(ApiError::RejectedLines { rejected: progress.rejected, lines: progress.rejected_lines });
    }
    Ok(HttpResponse::Ok().json(progress.receipt()))
}

/// A chunk of an NDJSON body being stored: its task, its entries' line numbers, the number of
/// its last line.
struct Storing {
    task: tokio::task::JoinHandle<Result<Recorded, StoreError>>,
    numbers: Vec<usize>,
    through: usize,
}

/// Waits for the chunk being stored, and counts it in `progress` once it is.
async fn settle(
    storing: Option<Storing>,
    progress: &mut Progress,
    settled_through: &mut usize,
) -> Result<(), ApiError> {
    let Some(Storing { task, numbers, through }) = storing else { return Ok(()) };
    let recorded = match task.await {
        // An atomic body with lines in another currency than their products: nothing stored.
        Ok(Err(StoreError::WrongCurrency(list))) => {
            for wrong in &list {
                progress.reject(numbers[wrong.index], &ApiError::Validation(wrong_currency("currency".into(), wrong)));
            }
            progress.rejected_lines.sort_by_key(|r| r.line);
            let lines = std::mem::take(&mut progress.rejected_lines);
            return Err(ApiError::RejectedLines { rejected: progress.rejected, lines });
        }
        Ok(stored) => stored?,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => return Err(ApiError::Internal),
    };
    for wrong in &recorded.screened.wrong_currency {
        progress.reject(numbers[wrong.index], &ApiError::Validation(wrong_currency("currency".into(), wrong)));
    }
    progress.accepted += numbers.len() - recorded.screened.wrong_currency.len();
    for flagged in &recorded.screened.flagged {
        if progress.flagged.len() < MAX_LISTED_REJECTIONS {
            progress.flagged.push(FlaggedObservation::new(numbers[flagged.index], flagged));
        }
    }
    progress.changed.extend(recorded.changed);
    *settled_through = through;
    Ok(())
}

/// An error that stopped an NDJSON request: every line up to `settled_through` was stored or
/// refused (the refusals are listed), none after it was stored.
fn interrupted(error: ApiError, settled_through: usize, progress: Progress) -> ApiError {
    let receipt = progress.receipt();
    let details = serde_json::json!({
        "stored_through_line": settled_through,
        "accepted": receipt.accepted,
        "rejected": receipt.rejected,
        "rejected_lines": receipt.rejected_lines,
    });
    ApiError::Interrupted { error: Box::new(error), details }
}

/// A JSON batch (`application/json`, checked whole) or an NDJSON stream, by content type.
async fn ingest(
    kind: Kind,
    req: HttpRequest,
    payload: web::Payload,
    options: IngestOptions,
    prices: &Prices,
    merchant: MerchantId,
    settings: &PricingSettings,
) -> Result<HttpResponse, ApiError> {
    match BodyFormat::of(&req)? {
        BodyFormat::Ndjson => {
            ingest_ndjson(kind, payload, options.atomic.unwrap_or(false), prices, merchant, settings).await
        }
        BodyFormat::Json => {
            let body = match payload.to_bytes_limited(BATCH_BODY_LIMIT).await {
                Ok(Ok(body)) => body,
                Ok(Err(e)) => return Err(ApiError::InvalidJson(format!("the body could not be read: {e}"))),
                Err(_) => return Err(ApiError::PayloadTooLarge { limit: BATCH_BODY_LIMIT }),
            };
            let checked = match kind {
                Kind::Observations => Checked::Observations(parse_competitor_prices_body(&body, settings)?),
                Kind::Demand => Checked::Demand(parse_demand_body(&body, settings)?),
            };
            let received = checked.len();
            let quotas = SignalQuotas::from(settings);
            let recorded = checked.record(prices, merchant, quotas, WrongCurrencies::RefuseBatch).await?;
            let flagged = recorded.screened.flagged.iter().take(MAX_LISTED_REJECTIONS);
            Ok(HttpResponse::Ok().json(SignalReceipt {
                received,
                accepted: received,
                rejected: 0,
                rejected_lines: Vec::new(),
                skus_changed: recorded.changed.len(),
                flagged: flagged.map(|f| FlaggedObservation::new(f.index, f)).collect(),
            }))
        }
    }
}

/// Record competitor prices.
#[utoipa::path(post, path = "/v1/signals/competitor-prices", tag = "signals", params(IngestOptions),
    request_body(description = "A JSON batch, or one observation per line (`application/x-ndjson`)",
                 content((ObservationBatch = "application/json"), (Vec<ObservationInput> = "application/x-ndjson"))),
    security(("bearer" = [])),
    responses((status = 200, description = "Stored (NDJSON: the good lines; the refused ones listed); the SKUs \
                                            whose signals changed are queued for repricing", body = SignalReceipt),
              (status = 413, description = "`payload_too_large`: a JSON body over 16 MiB, or an NDJSON body of \
                                            more lines than allowed"),
              (status = 415, description = "`unsupported_media_type`: neither JSON nor NDJSON"),
              (status = 422, description = "`validation_failed`: e.g. a time out of range, or more entries than \
                                            `pricing.max_signal_batch` (an atomic NDJSON body: the refused lines, \
                                            `details.rejected_lines`); `over_quota`")))]
pub async fn competitor_prices(
    access: Access<Feed>,
    prices: web::Data<Prices>,
    settings: web::Data<PricingSettings>,
    options: web::Query<IngestOptions>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    ingest(Kind::Observations, req, payload, options.into_inner(), &prices, merchant, &settings).await
}

/// What a confirmation did.
#[derive(Serialize, ToSchema)]
pub struct ConfirmReceipt {
    /// SKUs with an observation newly confirmed (queued for repricing); pairs with no stored
    /// observation, or one confirmed before, change nothing.
    pub skus_changed: usize,
}

/// Confirm implausible competitor prices: rules see the stored observations of these (SKU,
/// competitor) pairs from now on (a newer observation of the same competitor is checked anew).
#[utoipa::path(post, path = "/v1/signals/competitor-prices/confirm", tag = "signals", request_body = Confirmation,
    security(("bearer" = [])),
    responses((status = 200, description = "Confirmed; their SKUs are queued for repricing", body = ConfirmReceipt),
              (status = 422, description = "`validation_failed`")))]
pub async fn confirm_competitor_prices(
    access: Access<Write>,
    prices: web::Data<Prices>,
    body: web::Json<Confirmation>,
) -> Result<HttpResponse, ApiError> {
    let pairs = body.into_inner().check()?;
    let changed = prices.confirm_observations(access.merchant(), pairs).await?;
    Ok(HttpResponse::Ok().json(ConfirmReceipt { skus_changed: changed.len() }))
}

/// Record demand events.
#[utoipa::path(post, path = "/v1/signals/demand", tag = "signals", params(IngestOptions),
    request_body(description = "A JSON batch, or one event per line (`application/x-ndjson`)",
                 content((DemandBatch = "application/json"), (Vec<DemandInput> = "application/x-ndjson"))),
    security(("bearer" = [])),
    responses((status = 200, description = "Stored (NDJSON: the good lines; the refused ones listed); the SKUs \
                                            whose signals changed are queued for repricing", body = SignalReceipt),
              (status = 413, description = "`payload_too_large`: a JSON body over 16 MiB, or an NDJSON body of \
                                            more lines than allowed"),
              (status = 415, description = "`unsupported_media_type`: neither JSON nor NDJSON"),
              (status = 422, description = "`validation_failed`: e.g. a time out of range, or more entries than \
                                            `pricing.max_signal_batch` (an atomic NDJSON body: the refused lines, \
                                            `details.rejected_lines`); `over_quota`")))]
pub async fn demand(
    access: Access<Feed>,
    prices: web::Data<Prices>,
    settings: web::Data<PricingSettings>,
    options: web::Query<IngestOptions>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    ingest(Kind::Demand, req, payload, options.into_inner(), &prices, merchant, &settings).await
}

/// The body formats signals come in.
enum BodyFormat {
    Json,
    Ndjson,
}

impl BodyFormat {
    fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        let unsupported = || {
            ApiError::UnsupportedMediaType(
                "signals are sent as JSON (`Content-Type: application/json`) or one per line \
                 (`Content-Type: application/x-ndjson`)"
                    .into(),
            )
        };
        let mime = req.mime_type().map_err(|_| unsupported())?.ok_or_else(unsupported)?;
        match (mime.type_().as_str(), mime.subtype().as_str(), mime.suffix().map(|s| s.as_str())) {
            ("application", "json", _) | ("application", _, Some("json")) => Ok(BodyFormat::Json),
            ("application", "x-ndjson" | "ndjson" | "jsonl", _) => Ok(BodyFormat::Ndjson),
            _ => Err(unsupported()),
        }
    }
}
