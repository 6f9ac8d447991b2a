//! `/v1/proposals`: rule changes held for approval (see `write::safety`), for `approver` and
//! `merchant` keys (read also by `auditor` keys), own merchant only. A list with the history's
//! filters plus the product's attributes, one proposal, and approving or rejecting one, or every
//! pending proposal a filter selects, in one call. A proposal's id is its held decision's
//! sequence number in the chain.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::access::{Access, Decide, ReadProposals};
use super::extract::resource;
use crate::domain::object::Object;
use crate::domain::product_file::attribute_value;
use crate::domain::safety::{HoldReason, ProposalState};
use crate::domain::{Currency, MerchantId, Outcome, Sku, Trigger};
use crate::store::Store;
use crate::store::safety::{Proposal, ProposalFilter};
use crate::write::{Prices, Verdict};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000;
/// Proposals one call by filter decides at most (each transaction takes [`PER_TRANSACTION`]).
pub const MAX_BY_FILTER: usize = 10_000;
const PER_TRANSACTION: usize = 500;

/// The many-at-once paths first: `/v1/proposals/{seq}` would take them for a number.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/proposals").get(list))
        .service(resource("/v1/proposals/approve").post(approve_matching))
        .service(resource("/v1/proposals/reject").post(reject_matching))
        .service(resource("/v1/proposals/{seq}").get(one))
        .service(resource("/v1/proposals/{seq}/approve").post(approve))
        .service(resource("/v1/proposals/{seq}/reject").post(reject));
}

#[derive(Serialize, ToSchema)]
pub struct ProposalView {
    /// The held decision's sequence number (`GET /v1/decisions/{seq}` shows its full record).
    pub seq: i64,
    #[schema(value_type = Sku)]
    pub sku: String,
    pub state: ProposalState,
    pub reason: HoldReason,
    pub trigger: Trigger,
    #[schema(value_type = Currency)]
    pub currency: String,
    /// The price in force when it was proposed.
    pub price_minor: i64,
    pub proposed_price_minor: i64,
    pub rule_version: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The decision that approved, rejected or superseded it.
    pub resolved_seq: Option<i64>,
    /// The id of the key that approved or rejected it.
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<Proposal> for ProposalView {
    fn from(p: Proposal) -> Self {
        Self {
            seq: p.seq,
            sku: p.sku.to_string(),
            state: p.state,
            reason: p.reason,
            trigger: p.trigger,
            currency: p.currency,
            price_minor: p.price_minor,
            proposed_price_minor: p.proposed_price_minor,
            rule_version: p.rule_version,
            created_at: p.created_at,
            expires_at: p.expires_at,
            resolved_seq: p.resolved_seq,
            resolved_by: p.resolved_by,
            resolved_at: p.resolved_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProposalPage {
    pub items: Vec<ProposalView>,
    /// Pass as `cursor` for the next page (older proposals); null on the last page.
    pub next_cursor: Option<i64>,
}

/// A list's parameters, for the document: [`ProposalQuery::parse`] reads them by hand, since
/// `attr.<key>` names are the merchant's own.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ProposalQuery {
    /// `pending` (default), `approved`, `rejected`, `superseded`, `expired`, or `all`.
    #[param(value_type = Option<StateFilter>)]
    pub state: Option<String>,
    /// One SKU.
    #[param(value_type = Option<Sku>)]
    pub sku: Option<String>,
    /// Why they were held.
    #[param(value_type = Option<HoldReason>)]
    pub reason: Option<String>,
    /// What made the decisions.
    #[param(value_type = Option<Trigger>)]
    pub trigger: Option<String>,
    #[param(minimum = 1)]
    pub rule_version: Option<i64>,
    /// Proposed from this instant (RFC 3339), inclusive; before `to`.
    pub from: Option<DateTime<Utc>>,
    /// Proposed before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Also `attr.<key>=<value>`, any number of them: the product's attribute has exactly this
    /// value (read as in `GET /v1/products`).
    #[param(ignore)]
    pub attributes: Vec<(String, Value)>,
}

/// The `state` parameter's values, for the document.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum StateFilter {
    Pending,
    Approved,
    Rejected,
    Superseded,
    Expired,
    All,
}

fn bad(message: String) -> ApiError {
    ApiError::InvalidQuery(message)
}

fn parse_named<T: std::str::FromStr>(what: &str, text: &str, all: &[&str]) -> Result<T, String> {
    text.parse().map_err(|_| format!("`{what}` is one of: {}", all.join(", ")))
}

impl ProposalQuery {
    fn parse(query: &str) -> Result<(ProposalFilter, Option<i64>, u32), ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| bad(format!("the query string is not valid: {e}")))?
            .into_inner();
        let mut seen = std::collections::HashSet::new();
        let mut filter = ProposalFilter { state: Some(ProposalState::Pending), ..ProposalFilter::default() };
        let (mut cursor, mut limit) = (None, DEFAULT_PAGE);
        let states: Vec<&str> = ProposalState::ALL.iter().map(|s| s.as_str()).chain(["all"]).collect();
        let reasons: Vec<&str> = HoldReason::ALL.iter().map(|r| r.as_str()).collect();
        let triggers: Vec<&str> = Trigger::ALL.iter().map(|t| t.as_str()).collect();
        for (name, value) in pairs {
            if !seen.insert(name.clone()) {
                return Err(bad(format!("`{name}` is given twice")));
            }
            let whole = |low: i64, high: i64| match value.parse::<i64>() {
                Ok(n) if (low..=high).contains(&n) => Ok(n),
                _ => Err(bad(format!("`{name}` is a whole number from {low} to {high}"))),
            };
            let instant = || {
                DateTime::parse_from_rfc3339(&value)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| bad(format!("`{name}` is an RFC 3339 instant")))
            };
            match name.as_str() {
                "state" if value == "all" => filter.state = None,
                "state" => filter.state = Some(parse_named("state", &value, &states).map_err(bad)?),
                "sku" => filter.sku = Some(Sku::parse(&value).map_err(|e| bad(format!("sku: {e}")))?),
                "reason" => filter.reason = Some(parse_named("reason", &value, &reasons).map_err(bad)?),
                "trigger" => filter.trigger = Some(parse_named("trigger", &value, &triggers).map_err(bad)?),
                "rule_version" => filter.rule_version = Some(whole(1, i64::MAX)?),
                "from" => filter.from = Some(instant()?),
                "to" => filter.to = Some(instant()?),
                "cursor" => cursor = Some(whole(1, i64::MAX)?),
                "limit" => limit = whole(1, i64::from(MAX_PAGE))? as u32,
                other => match other.strip_prefix("attr.") {
                    Some(key) if !key.is_empty() => {
                        let value = attribute_value(&value).unwrap_or(Value::String(String::new()));
                        filter.attributes.push((key.to_owned(), value));
                    }
                    _ => return Err(bad(format!("unknown parameter `{other}`"))),
                },
            }
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from >= to
        {
            return Err(bad("`from` must be before `to`".into()));
        }
        Ok((filter, cursor, limit))
    }
}

/// Proposals, newest first: pending ones unless `state` says otherwise.
#[utoipa::path(get, path = "/v1/proposals", operation_id = "list_proposals", tag = "proposals", params(ProposalQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of proposals", body = ProposalPage),
              (status = 400, description = "`invalid_query`")))]
pub async fn list(
    access: Access<ReadProposals>,
    store: web::Data<Store>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (filter, cursor, limit) = ProposalQuery::parse(req.query_string())?;
    let found = store.proposals(access.merchant(), &filter, cursor, limit).await?;
    let next_cursor = (found.len() == limit as usize).then(|| found.last().map(|p| p.seq)).flatten();
    Ok(HttpResponse::Ok()
        .json(ProposalPage { items: found.into_iter().map(ProposalView::from).collect(), next_cursor }))
}

fn seq_from_path(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::InvalidPath(format!("`{text}` is not a proposal's sequence number (1 or more)")))
}

async fn found(store: &Store, merchant: MerchantId, seq: i64) -> Result<Proposal, ApiError> {
    store.proposal(merchant, seq).await?.ok_or_else(|| ApiError::not_found(format!("proposal {seq}")))
}

/// One proposal.
#[utoipa::path(get, path = "/v1/proposals/{seq}", operation_id = "get_proposal", tag = "proposals", security(("bearer" = [])),
    params(("seq" = i64, Path, minimum = 1, description = "The held decision's sequence number")),
    responses((status = 200, description = "The proposal", body = ProposalView),
              (status = 404, description = "`not_found`")))]
pub async fn one(
    access: Access<ReadProposals>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let seq = seq_from_path(&path)?;
    Ok(HttpResponse::Ok().json(ProposalView::from(found(&store, access.merchant(), seq).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct ResolvedView {
    /// The proposal.
    pub proposal: i64,
    /// The decision that records it (trigger `proposal_approved` or `proposal_rejected`).
    pub decision_seq: i64,
    /// `changed`, or `kept` when the guardrails as they now are keep the price in force (and
    /// for every rejection).
    pub outcome: Outcome,
    /// The price in force afterwards.
    pub price_minor: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Resolution {
    pub resolved: Vec<ResolvedView>,
    /// Proposals selected but no longer pending when their turn came (decided meanwhile,
    /// superseded, expired, or their product deleted): left as they are.
    pub skipped: Vec<i64>,
}

async fn decide_one(
    access: &Access<Decide>,
    prices: &Prices,
    seq: i64,
    verdict: Verdict,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let proposal = found(prices.store(), merchant, seq).await?;
    if proposal.state != ProposalState::Pending {
        return Err(not_pending(&proposal));
    }
    let decided = prices.decide_proposals(merchant, vec![seq], verdict, access.key_id()).await?;
    match decided.resolved.first() {
        Some(r) => Ok(HttpResponse::Ok().json(ResolvedView {
            proposal: r.proposal,
            decision_seq: r.seq,
            outcome: r.outcome,
            price_minor: r.price_minor,
        })),
        None => Err(not_pending(&found(prices.store(), merchant, seq).await?)),
    }
}

fn not_pending(proposal: &Proposal) -> ApiError {
    let state = match proposal.state {
        // Still pending, but its product is gone.
        ProposalState::Pending => "superseded",
        other => other.as_str(),
    };
    ApiError::Conflict {
        code: "proposal_not_pending",
        message: format!("proposal {} is {state}, no longer pending", proposal.seq),
    }
}

/// Approve a pending proposal: the product's guardrails as they are now bound its price, which
/// goes live like any decision's.
#[utoipa::path(post, path = "/v1/proposals/{seq}/approve", operation_id = "approve_proposal", tag = "proposals", security(("bearer" = [])),
    params(("seq" = i64, Path, minimum = 1, description = "The held decision's sequence number")),
    responses((status = 200, description = "Approved", body = ResolvedView),
              (status = 404, description = "`not_found`"),
              (status = 409, description = "`proposal_not_pending`: decided, superseded or expired")))]
pub async fn approve(
    access: Access<Decide>,
    prices: web::Data<Prices>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    decide_one(&access, &prices, seq_from_path(&path)?, Verdict::Approve).await
}

/// Reject a pending proposal: the price in force stays, and the rejection is recorded.
#[utoipa::path(post, path = "/v1/proposals/{seq}/reject", operation_id = "reject_proposal", tag = "proposals", security(("bearer" = [])),
    params(("seq" = i64, Path, minimum = 1, description = "The held decision's sequence number")),
    responses((status = 200, description = "Rejected", body = ResolvedView),
              (status = 404, description = "`not_found`"),
              (status = 409, description = "`proposal_not_pending`: decided, superseded or expired")))]
pub async fn reject(
    access: Access<Decide>,
    prices: web::Data<Prices>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    decide_one(&access, &prices, seq_from_path(&path)?, Verdict::Reject).await
}

/// Which pending proposals a call by filter decides (all of them when empty; at most 10,000).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProposalSelection {
    /// These proposals (sequence numbers), as well as matching the other fields.
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integers")]
    pub seqs: Option<Vec<i64>>,
    #[serde(default)]
    #[schema(value_type = Option<Sku>)]
    pub sku: Option<String>,
    #[serde(default)]
    pub reason: Option<HoldReason>,
    #[serde(default)]
    pub trigger: Option<Trigger>,
    #[serde(default, deserialize_with = "crate::domain::whole::optional_integer")]
    #[schema(minimum = 1)]
    pub rule_version: Option<i64>,
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// The product's attributes with exactly these values.
    #[serde(default)]
    pub attributes: Option<Map<String, Value>>,
}

impl ProposalSelection {
    fn filter(&self) -> Result<ProposalFilter, ApiError> {
        let invalid = |field: &str, message: String| ApiError::Validation(crate::domain::Invalid::one(field, message));
        let sku = self.sku.as_deref().map(Sku::parse).transpose().map_err(|e| invalid("sku", e.to_string()))?;
        if self.rule_version.is_some_and(|v| v < 1) {
            return Err(invalid("rule_version", "1 or more".into()));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(invalid("from", "before `to`".into()));
        }
        if self.seqs.as_ref().is_some_and(|s| s.len() > MAX_BY_FILTER) {
            return Err(invalid("seqs", format!("at most {MAX_BY_FILTER}")));
        }
        Ok(ProposalFilter {
            state: Some(ProposalState::Pending),
            sku,
            reason: self.reason,
            trigger: self.trigger,
            rule_version: self.rule_version,
            from: self.from,
            to: self.to,
            attributes: self.attributes.clone().unwrap_or_default().into_iter().collect(),
        })
    }
}

async fn decide_matching(
    access: Access<Decide>,
    prices: &Prices,
    selection: ProposalSelection,
    verdict: Verdict,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let filter = selection.filter()?;
    let wanted: Option<std::collections::HashSet<i64>> = selection.seqs.map(|s| s.into_iter().collect());
    let mut chosen = Vec::new();
    let mut cursor = None;
    while chosen.len() < MAX_BY_FILTER {
        let page = prices.store().proposals(merchant, &filter, cursor, MAX_PAGE).await?;
        let full = page.len() == MAX_PAGE as usize;
        cursor = page.last().map(|p| p.seq);
        chosen.extend(page.iter().map(|p| p.seq).filter(|s| wanted.as_ref().is_none_or(|w| w.contains(s))));
        if !full {
            break;
        }
    }
    chosen.truncate(MAX_BY_FILTER);
    let mut resolution = Resolution { resolved: Vec::new(), skipped: Vec::new() };
    for batch in chosen.chunks(PER_TRANSACTION) {
        let decided = prices.decide_proposals(merchant, batch.to_vec(), verdict, access.key_id()).await?;
        resolution.skipped.extend(decided.skipped);
        resolution.resolved.extend(decided.resolved.into_iter().map(|r| ResolvedView {
            proposal: r.proposal,
            decision_seq: r.seq,
            outcome: r.outcome,
            price_minor: r.price_minor,
        }));
    }
    Ok(HttpResponse::Ok().json(resolution))
}

/// Approve every pending proposal the selection matches (at most 10,000 a call, oldest
/// decided last), a few hundred per transaction.
#[utoipa::path(post, path = "/v1/proposals/approve", operation_id = "approve_proposals", tag = "proposals", request_body = ProposalSelection,
    security(("bearer" = [])),
    responses((status = 200, description = "What was approved, and what was skipped", body = Resolution),
              (status = 422, description = "`validation_failed`")))]
pub async fn approve_matching(
    access: Access<Decide>,
    prices: web::Data<Prices>,
    body: web::Json<Object<ProposalSelection>>,
) -> Result<HttpResponse, ApiError> {
    decide_matching(access, &prices, body.into_inner().0, Verdict::Approve).await
}

/// Reject every pending proposal the selection matches (at most 10,000 a call).
#[utoipa::path(post, path = "/v1/proposals/reject", operation_id = "reject_proposals", tag = "proposals", request_body = ProposalSelection,
    security(("bearer" = [])),
    responses((status = 200, description = "What was rejected, and what was skipped", body = Resolution),
              (status = 422, description = "`validation_failed`")))]
pub async fn reject_matching(
    access: Access<Decide>,
    prices: web::Data<Prices>,
    body: web::Json<Object<ProposalSelection>>,
) -> Result<HttpResponse, ApiError> {
    decide_matching(access, &prices, body.into_inner().0, Verdict::Reject).await
}
