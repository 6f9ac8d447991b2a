//! The catalogue in files: `POST /v1/products/import` (CSV or NDJSON, streamed into a job, see
//! [`crate::catalogue`]), `GET /v1/products/export` (the same formats, streamed, with the price
//! in force), and the jobs: `GET /v1/jobs`, `GET /v1/jobs/{job_id}`, `DELETE /v1/jobs/{job_id}`
//! (cancel), `GET /v1/jobs/{job_id}/deleted` (what a replace import deleted, as an NDJSON import).
//! `merchant` keys import and cancel; `merchant` and `auditor` keys export and read jobs.
//!
//! `/v1/products/import` and `/v1/products/export` are also the paths of the products with
//! those SKUs: `PUT` and `DELETE` on them (and `GET` on `.../import`) are the product's; a
//! product named `export` is read through `GET /v1/products` (its `GET` is the export).

use std::collections::BTreeSet;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::access::{Access, Read, Write};
use super::extract::resource;
use crate::catalogue::pieces::{Cut, Splitter};
use crate::config::ImportSettings;
use crate::domain::product_file::{self, CsvHeader};
use crate::domain::{JobId, MerchantId, Sku};
use crate::store::jobs::{ImportMode, Job, JobFormat, JobState, NewJob};
use crate::store::{Store, StoreError};

/// Products read per store round trip while exporting.
const EXPORT_PAGE: u32 = 1_000;
/// Jobs listed at most.
const MAX_JOBS: u32 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before `/v1/products/{sku}`, which would take these for SKUs.
    cfg.service(resource("/v1/products/import").post(import_products))
        .service(resource("/v1/products/export").get(export_products))
        .service(resource("/v1/jobs").get(list_jobs))
        .service(resource("/v1/jobs/{job_id}").get(get_job).delete(cancel_job))
        .service(resource("/v1/jobs/{job_id}/deleted").get(deleted_products));
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportOptions {
    /// The body's format; by default the `Content-Type` says (`text/csv`, `application/x-ndjson`).
    pub format: Option<JobFormat>,
    /// `upsert` (the default) leaves products the file does not name alone; `replace` deletes
    /// them once every line is in, and only when no line was rejected.
    pub mode: Option<ImportMode>,
    /// `true`: every line is written in one transaction, or none when any is rejected (at most
    /// `imports.atomic_max_lines` lines). `false`, the default: good lines are written, bad
    /// ones listed.
    pub atomic: Option<bool>,
}

/// A job, as its merchant sees it.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    #[schema(value_type = JobId)]
    pub id: String,
    /// Always `import`.
    pub kind: &'static str,
    pub format: JobFormat,
    pub mode: ImportMode,
    pub atomic: bool,
    pub state: JobState,
    /// Records in the body (known once it has arrived).
    pub lines_total: i64,
    /// Records read so far.
    pub lines_read: i64,
    /// Good records written (whether or not they changed anything).
    pub applied: i64,
    /// Products created or changed.
    pub changed: i64,
    pub rejected: i64,
    /// Products a replace import deleted.
    pub deleted: i64,
    pub bytes_total: i64,
    pub bytes_done: i64,
    /// Records read per second since the job started.
    pub lines_per_second: f64,
    /// At that rate, the seconds left (absent until it can be told).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The first 1000 rejected lines, in order (in `GET /v1/jobs/{job_id}`; empty in lists).
    pub rejected_lines: Vec<RejectedLineView>,
}

/// A rejected line: its number (from 1; a CSV header is line 1) and its error.
#[derive(Serialize, ToSchema)]
pub struct RejectedLineView {
    pub line: i64,
    /// `invalid_json`, `invalid_body`, `validation_failed` or `currency_mismatch`.
    pub code: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: Value,
}

impl JobView {
    fn new(job: Job, rejected_lines: Vec<RejectedLineView>) -> Self {
        let elapsed = job
            .started_at
            .map(|start| (job.finished_at.unwrap_or_else(Utc::now) - start).num_milliseconds().max(1) as f64 / 1000.0);
        let rate = elapsed.map_or(0.0, |secs| job.lines_read as f64 / secs);
        let left = (job.lines_total - job.lines_read).max(0) as f64;
        let eta_seconds = (!job.state.is_final() && rate > 0.0 && job.state != JobState::Receiving)
            .then(|| (left / rate * 10.0).round() / 10.0);
        JobView {
            id: job.id.to_string(),
            kind: "import",
            format: job.format,
            mode: job.mode,
            atomic: job.atomic,
            state: job.state,
            lines_total: job.lines_total,
            lines_read: job.lines_read,
            applied: job.applied,
            changed: job.changed,
            rejected: job.rejected,
            deleted: job.deleted,
            bytes_total: job.bytes_total,
            bytes_done: job.bytes_done,
            lines_per_second: (rate * 10.0).round() / 10.0,
            eta_seconds,
            note: job.note,
            error: job.error,
            cancel_requested: job.cancel_requested,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            rejected_lines,
        }
    }
}

fn format_of(req: &HttpRequest, options: &ImportOptions) -> Result<JobFormat, ApiError> {
    if let Some(format) = options.format {
        return Ok(format);
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" => Ok(JobFormat::Csv),
        "application/x-ndjson" => Ok(JobFormat::Ndjson),
        _ => Err(ApiError::UnsupportedMediaType(
            "an import is `text/csv` or `application/x-ndjson` (or give `format`)".into(),
        )),
    }
}

/// Import products from a CSV or NDJSON body (see the README's import section for the CSV
/// columns), as a job: the body is stored as it arrives, then applied in the background.
#[utoipa::path(post, path = "/v1/products/import", tag = "products", params(ImportOptions),
    request_body(description = "A CSV file with a header, or one product per line (a `PUT` body with its `sku`)",
                 content((String = "text/csv"), (String = "application/x-ndjson"))),
    security(("bearer" = [])),
    responses((status = 202, description = "Stored; the job applies it (`Location` is the job)", body = JobView),
              (status = 413, description = "`payload_too_large`: over `imports.max_bytes`, or an atomic import of \
                                            more lines than `imports.atomic_max_lines`"),
              (status = 415, description = "`unsupported_media_type`: neither CSV nor NDJSON"),
              (status = 422, description = "`validation_failed`: the CSV header (`header.<column>`), or a file \
                                            without products (`body`)")))]
pub async fn import_products(
    access: Access<Write>,
    store: web::Data<Store>,
    settings: web::Data<ImportSettings>,
    options: web::Query<ImportOptions>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let format = format_of(&req, &options)?;
    let mut upload = Upload::start(&store, &settings, merchant, format, &options).await?;
    let mut splitter = Splitter::new(format, settings.piece_bytes);
    let mut received: u64 = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return Err(upload.fail(ApiError::InvalidBody(format!("the body could not be read: {e}"))).await),
        };
        received += chunk.len() as u64;
        if received > settings.max_bytes {
            let limit = usize::try_from(settings.max_bytes).unwrap_or(usize::MAX);
            return Err(upload.fail(ApiError::PayloadTooLarge { limit }).await);
        }
        for cut in splitter.push(&chunk) {
            upload.check_header(splitter.header()).await?;
            upload.store(cut).await?;
        }
    }
    let (header, last) = splitter.finish();
    upload.check_header(header.as_deref()).await?;
    if let Some(cut) = last {
        upload.store(cut).await?;
    }
    if upload.lines == 0 {
        // Nothing to apply, and a replace of nothing would delete the whole catalogue.
        let empty = crate::domain::Invalid::one("body", "the file holds no products");
        return Err(upload.fail(ApiError::Validation(empty)).await);
    }
    let job = upload.queue(header).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/jobs/{}", job.id)))
        .json(JobView::new(job, Vec::new())))
}

/// An import's body being stored.
struct Upload<'a> {
    store: &'a Store,
    settings: &'a ImportSettings,
    merchant: MerchantId,
    id: JobId,
    format: JobFormat,
    atomic: bool,
    pieces: i64,
    lines: u64,
    header_checked: bool,
}

impl<'a> Upload<'a> {
    async fn start(
        store: &'a Store,
        settings: &'a ImportSettings,
        merchant: MerchantId,
        format: JobFormat,
        options: &ImportOptions,
    ) -> Result<Upload<'a>, ApiError> {
        let id = JobId::generate();
        let atomic = options.atomic.unwrap_or(false);
        store
            .create_job(&NewJob {
                id,
                merchant,
                format,
                mode: options.mode.unwrap_or_default(),
                atomic,
                header: None,
                owner: "upload",
                lease_until: lease(settings),
            })
            .await?;
        Ok(Upload { store, settings, merchant, id, format, atomic, pieces: 0, lines: 0, header_checked: false })
    }

    async fn check_header(&mut self, header: Option<&[u8]>) -> Result<(), ApiError> {
        if self.format != JobFormat::Csv || self.header_checked {
            return Ok(());
        }
        let Some(header) = header else { return Ok(()) };
        self.header_checked = true;
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(header);
        let mut record = csv::ByteRecord::new();
        let parsed = match reader.read_byte_record(&mut record) {
            Ok(true) => CsvHeader::parse(&record).map(|_| ()).map_err(ApiError::Validation),
            _ => Err(no_header()),
        };
        match parsed {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn store(&mut self, cut: Cut) -> Result<(), ApiError> {
        self.lines += cut.records as u64;
        if self.atomic && self.lines > self.settings.atomic_max_lines {
            let limit = usize::try_from(self.settings.atomic_max_lines).unwrap_or(usize::MAX);
            return Err(self.fail(ApiError::TooManyLines { limit }).await);
        }
        let stored = self
            .store
            .add_piece(self.id, self.pieces, cut.first_line, &cut.body, cut.records, lease(self.settings))
            .await;
        if let Err(e) = stored {
            return Err(self.fail(e.into()).await);
        }
        self.pieces += 1;
        Ok(())
    }

    async fn queue(self, header: Option<Vec<u8>>) -> Result<Job, ApiError> {
        if self.format == JobFormat::Csv && header.is_none() {
            return Err(self.fail(no_header()).await);
        }
        let header = header.map(|h| String::from_utf8_lossy(&h).into_owned());
        self.store.queue_job(self.id, header.as_deref()).await?;
        self.store.job(self.merchant, self.id).await?.ok_or(ApiError::Internal)
    }

    /// Marks the job failed with the error the client hears.
    async fn fail(&self, error: ApiError) -> ApiError {
        if let Err(e) = self.store.fail_upload(self.id, &error.to_string()).await {
            tracing::warn!(job = %self.id, error = %e, "marking a refused upload failed did not work");
        }
        error
    }
}

/// A CSV body without a header record (empty, or not CSV).
fn no_header() -> ApiError {
    ApiError::Validation(crate::domain::Invalid::one("header", "a CSV import starts with a header record"))
}

/// An upload's lease, renewed with each piece stored: a client may pause between pieces far
/// longer than a worker between two transactions, so it lasts a minute more than a worker's.
fn lease(settings: &ImportSettings) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(settings.lease_secs.max(1) as i64 + 60)
}

fn job_id(text: &str) -> Result<JobId, ApiError> {
    JobId::parse(text).map_err(|e| ApiError::InvalidPath(e.to_string()))
}

fn not_found(id: JobId) -> ApiError {
    ApiError::not_found(format!("job {id}"))
}

async fn job_view(store: &Store, merchant: MerchantId, id: JobId) -> Result<JobView, ApiError> {
    let job = store.job(merchant, id).await?.ok_or_else(|| not_found(id))?;
    let rejected = store
        .job_rejections(id)
        .await?
        .into_iter()
        .map(|r| RejectedLineView {
            line: r.line,
            code: r.code,
            message: r.message,
            details: serde_json::from_str(&r.details).unwrap_or_else(|_| serde_json::json!({})),
        })
        .collect();
    Ok(JobView::new(job, rejected))
}

/// A job: its state, progress, rate, time left, and first rejected lines.
#[utoipa::path(get, path = "/v1/jobs/{job_id}", tag = "products", security(("bearer" = [])),
    responses((status = 200, description = "The job", body = JobView),
              (status = 404, description = "`not_found`")))]
pub async fn get_job(
    access: Access<Read>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&path)?;
    Ok(HttpResponse::Ok().json(job_view(&store, access.merchant(), id).await?))
}

/// Cancel a job: one not started ends at once; a running one stops after its current piece
/// (what was applied stays applied). A job that has ended is left as it is.
#[utoipa::path(delete, path = "/v1/jobs/{job_id}", tag = "products", security(("bearer" = [])),
    responses((status = 200, description = "The job as it now is", body = JobView),
              (status = 404, description = "`not_found`")))]
pub async fn cancel_job(
    access: Access<Write>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&path)?;
    let merchant = access.merchant();
    store.cancel_job(merchant, id).await?.ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(job_view(&store, merchant, id).await?))
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// The latest 100 jobs, newest first.
    pub items: Vec<JobView>,
}

/// The merchant's latest jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "products", security(("bearer" = [])),
    responses((status = 200, description = "The latest jobs", body = JobList)))]
pub async fn list_jobs(access: Access<Read>, store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    let items =
        store.jobs(access.merchant(), MAX_JOBS).await?.into_iter().map(|j| JobView::new(j, Vec::new())).collect();
    Ok(HttpResponse::Ok().json(JobList { items }))
}

/// What a replace import deleted, as an NDJSON import body: importing it undoes the deletions.
#[utoipa::path(get, path = "/v1/jobs/{job_id}/deleted", tag = "products", security(("bearer" = [])),
    responses((status = 200, description = "One product per line, in SKU order", content_type = "application/x-ndjson", body = String),
              (status = 404, description = "`not_found`")))]
pub async fn deleted_products(
    access: Access<Read>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&path)?;
    store.job(access.merchant(), id).await?.ok_or_else(|| not_found(id))?;
    let store = store.get_ref().clone();
    let pages = futures_util::stream::try_unfold(Some(String::new()), move |after| {
        let store = store.clone();
        async move {
            let Some(after) = after else { return Ok::<_, ApiError>(None) };
            let page = store.job_deleted(id, &after, EXPORT_PAGE).await?;
            let next = (page.len() == EXPORT_PAGE as usize).then(|| page[page.len() - 1].0.clone());
            let mut out = String::new();
            for (_, line) in page {
                out.push_str(&line);
                out.push('\n');
            }
            Ok(Some((web::Bytes::from(out), next)))
        }
    });
    Ok(HttpResponse::Ok().content_type("application/x-ndjson").streaming(pages))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProductExportParams {
    /// `csv` (with a header record) or `ndjson` (one product per line), the import's formats.
    #[param(required = true)]
    pub format: Option<JobFormat>,
}

/// The catalogue as a file in the import's own format, in SKU order, with each product's price
/// in force (`price_in_force_minor`, which an import ignores), streamed.
#[utoipa::path(get, path = "/v1/products/export", tag = "products", params(ProductExportParams),
    security(("bearer" = [])),
    responses((status = 200, description = "Every product", content((String = "text/csv"), (String = "application/x-ndjson"))),
              (status = 400, description = "`invalid_query`: no `format`")))]
pub async fn export_products(
    access: Access<Read>,
    store: web::Data<Store>,
    query: web::Query<ProductExportParams>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let format = query.format.ok_or_else(|| ApiError::InvalidQuery("give `format=csv` or `format=ndjson`".into()))?;
    let store = store.get_ref().clone();
    let header = match format {
        JobFormat::Csv => Some(CsvHeader::for_export(attribute_keys(&store, merchant).await?)),
        JobFormat::Ndjson => None,
    };
    let (content_type, extension) = match format {
        JobFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        JobFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let state = ExportState { store, header, after: None, first: true, done: false };
    let pages = futures_util::stream::try_unfold(state, move |mut state| async move {
        if state.done {
            return Ok::<_, ApiError>(None);
        }
        let page = state.store.products(merchant, state.after.as_ref(), EXPORT_PAGE).await?;
        state.done = page.len() < EXPORT_PAGE as usize;
        let mut out = Vec::with_capacity(page.len() * 160);
        if std::mem::take(&mut state.first)
            && let Some(header) = &state.header
        {
            super::export::csv_record(&mut out, header.names());
        }
        if let (Some(first), Some(last)) = (page.first(), page.last()) {
            let prices = state.store.prices_between(merchant, first.sku.as_str(), last.sku.as_str()).await?;
            let prices: std::collections::HashMap<&Sku, i64> =
                prices.iter().map(|p| (&p.sku, p.price.minor())).collect();
            for product in &page {
                let price = prices.get(&product.sku).copied();
                match &state.header {
                    Some(header) => super::export::csv_record(&mut out, header.record(product, price)),
                    None => {
                        out.extend_from_slice(product_file::ndjson_line(product, price).as_bytes());
                        out.push(b'\n');
                    }
                }
            }
        }
        state.after = page.last().map(|p| p.sku.clone());
        Ok(Some((web::Bytes::from(out), state)))
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"products.{extension}\"")))
        .streaming(pages))
}

struct ExportState {
    store: Store,
    header: Option<CsvHeader>,
    after: Option<Sku>,
    first: bool,
    done: bool,
}

/// Every attribute key of the merchant's products, sorted (a CSV export's columns).
async fn attribute_keys(store: &Store, merchant: MerchantId) -> Result<BTreeSet<String>, StoreError> {
    let mut keys = BTreeSet::new();
    let mut after: Option<Sku> = None;
    loop {
        let page = store.products(merchant, after.as_ref(), EXPORT_PAGE).await?;
        for product in &page {
            keys.extend(product.attributes.as_map().keys().cloned());
        }
        if page.len() < EXPORT_PAGE as usize {
            return Ok(keys);
        }
        after = page.last().map(|p| p.sku.clone());
    }
}
