//! `GET /v1/decisions/export`: the decisions the history's filters select, as CSV or NDJSON
//! (one decision view per line, with its full record and hashes, enough to re-check the chain
//! offline), for `auditor` and `merchant` keys.
//!
//! Exports are read from the store a page at a time and written out as each page arrives,
//! so a million rows never sit in memory. If the store fails mid-export the response ends
//! without its final chunk, which HTTP clients report as an incomplete body. CSV fields are
//! written verbatim by the `csv` crate (RFC 4180 quoting, no formula escaping): an audit export
//! must not alter what it exports.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::SecondsFormat;

use super::ApiError;
use super::access::{Access, Audit};
use super::extract::resource;
use super::history::{DecisionQuery, DecisionView, ExportFormat, ExportParams};
use crate::domain::MerchantId;
use crate::pricing::DecisionRecord;
use crate::store::{DecisionFilter, Store, StoredDecision};

/// Decisions read per store round trip while exporting.
const EXPORT_PAGE: u32 = 1_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/decisions/export").get(export));
}

/// A range of decisions as CSV or NDJSON (one decision view per line, with its full record
/// and hashes, enough to re-check the chain offline), streamed.
#[utoipa::path(get, path = "/v1/decisions/export", tag = "audit", params(ExportParams),
    security(("bearer" = [])),
    responses((status = 200, description = "Every matching decision, newest or oldest first as `order` says: CSV \
                                          with a header row (`format=csv`), or one `DecisionView` in JSON per line \
                                          (`format=ndjson`)",
               content((String = "text/csv"), (String = "application/x-ndjson")))))]
pub async fn export(
    access: Access<Audit>,
    store: web::Data<Store>,
    query: web::Query<DecisionQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let filter = query.filter(None)?;
    if query.cursor.is_some() || query.limit.is_some() {
        return Err(ApiError::InvalidQuery("the export takes every matching decision: no cursor or limit".into()));
    }
    let format = query.format.ok_or_else(|| ApiError::InvalidQuery("give `format=csv` or `format=ndjson`".into()))?;
    let (content_type, extension) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let state =
        ExportState { store: store.get_ref().clone(), merchant, filter, cursor: None, first: true, done: false };
    let pages = futures_util::stream::try_unfold(state, move |mut state| async move {
        if state.done {
            return Ok::<_, ApiError>(None);
        }
        let page = state.store.decisions(state.merchant, &state.filter, state.cursor, EXPORT_PAGE).await?;
        state.done = page.len() < EXPORT_PAGE as usize;
        state.cursor = page.last().map(|d| d.seq);
        let mut out = Vec::with_capacity(page.len() * 512);
        if std::mem::take(&mut state.first) && matches!(format, ExportFormat::Csv) {
            out.extend_from_slice(CSV_HEADER.as_bytes());
        }
        for decision in page {
            match format {
                ExportFormat::Csv => csv_row(&mut out, &decision),
                ExportFormat::Ndjson => {
                    out.extend_from_slice(
                        &serde_json::to_vec(&DecisionView::from(decision)).map_err(|_| ApiError::Internal)?,
                    );
                    out.push(b'\n');
                }
            }
        }
        Ok(Some((web::Bytes::from(out), state)))
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"decisions.{extension}\"")))
        .streaming(pages))
}

struct ExportState {
    store: Store,
    merchant: MerchantId,
    filter: DecisionFilter,
    cursor: Option<i64>,
    first: bool,
    done: bool,
}

const CSV_HEADER: &str = "seq,created_at,sku,trigger,outcome,currency,old_price_minor,new_price_minor,rule_version,\
rule_sha256,rule_price_minor,clips,explanation,error,fuel_used,prev_hash,hash\r\n";

fn csv_row(out: &mut Vec<u8>, d: &StoredDecision) {
    let record = serde_json::from_str::<DecisionRecord>(&d.record).ok();
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let clips = record
        .as_ref()
        .map(|r| {
            r.clips
                .iter()
                .map(|c| serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(";")
        })
        .unwrap_or_default();
    let fields = [
        d.seq.to_string(),
        d.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        d.sku.clone(),
        d.trigger.to_string(),
        d.outcome.to_string(),
        d.currency.clone(),
        opt(d.old_price_minor),
        opt(d.new_price_minor),
        opt(d.rule_version),
        d.rule_sha256.clone().unwrap_or_default(),
        opt(record.as_ref().and_then(|r| r.rule_price_minor)),
        clips,
        record.as_ref().map(|r| r.explanation.clone()).unwrap_or_default(),
        record.as_ref().and_then(|r| r.error.clone()).unwrap_or_default(),
        record.as_ref().map(|r| r.fuel_used.to_string()).unwrap_or_default(),
        d.prev_hash.clone(),
        d.hash.clone(),
    ];
    csv_record(out, fields);
}

/// One CSV record (RFC 4180: a field with a comma, quote or line break quoted, its quotes
/// doubled; CRLF at the end), written by the `csv` crate.
pub(super) fn csv_record<I, F>(out: &mut Vec<u8>, fields: I)
where
    I: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(std::mem::take(out));
    // Writing into a vector cannot fail.
    let _ = writer.write_record(fields);
    *out = writer.into_inner().unwrap_or_default();
}
