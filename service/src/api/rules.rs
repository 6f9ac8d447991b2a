//! `/v1/rules`: a merchant's pricing rules. Upload a module (the request body is the wasm),
//! list versions, set a version's parameters, dry-run a version, activate and roll back.
//! `merchant` keys do everything; `auditor` keys may read.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ApiError;
use super::access::{Access, Read, Write};
use super::extract::resource;
use crate::domain::object::Object;
use crate::domain::params::ParamsSchema;
use crate::domain::{Invalid, Sku};
use crate::rules::{DryRunResult, Rules, SampleReport};
use crate::sandbox::RuleContext;
use crate::store::{Activation, RuleVersion, Store};
use crate::write::Prices;

/// Most contexts or SKUs in one dry run.
pub const MAX_DRY_RUN: usize = 1_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/rules").post(upload_rule).get(list_rules))
        .service(resource("/v1/stock-policies").get(list_stock_policies))
        // Registered before `/v1/rules/{version}`, which would otherwise match it.
        .service(resource("/v1/rules/rollback").post(roll_back))
        .service(resource("/v1/rules/{version}").get(get_rule))
        .service(resource("/v1/rules/{version}/params").put(set_params))
        .service(resource("/v1/rules/{version}/activate").post(activate))
        .service(resource("/v1/rules/{version}/dry-run").post(dry_run));
}

#[derive(Serialize, ToSchema)]
pub struct RuleVersionView {
    pub version: i64,
    /// Hex SHA-256 of the uploaded bytes.
    pub sha256: String,
    pub size_bytes: i64,
    pub compile_ms: i64,
    #[schema(schema_with = crate::domain::Attributes::schema)]
    pub params: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub params_updated_at: DateTime<Utc>,
    pub active: bool,
    /// The parameters the rule declares (`pricing:policy@1.1.0`): each one's name, type,
    /// bounds, default and description. Absent for a rule that takes an untyped object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<ParamsSchema>,
    /// Declared parameters that must be set before the version can be activated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_params: Vec<String>,
    /// The stock policy the version was made from (`POST /v1/rules {"stock": ...}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock: Option<String>,
}

impl RuleVersionView {
    fn new(version: RuleVersion, active: Option<i64>) -> Self {
        let missing_params = version
            .params_schema
            .as_ref()
            .map(|schema| schema.missing(&version.params).into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        Self {
            active: active == Some(version.version),
            missing_params,
            params_schema: version.params_schema,
            stock: version.stock,
            version: version.version,
            sha256: version.sha256,
            size_bytes: version.size_bytes,
            compile_ms: version.compile_ms,
            params: version.params,
            created_at: version.created_at,
            params_updated_at: version.params_updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RuleList {
    pub active_version: Option<i64>,
    pub versions: Vec<RuleVersionView>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivationView {
    pub active_version: i64,
    #[schema(schema_with = activation_kind)]
    pub kind: String,
    pub activated_at: DateTime<Utc>,
    /// An activation's dry run over a sample of the catalogue, made first (absent for a
    /// rollback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleReport>,
}

/// `?force=true` activates even when the sample's failures are over the allowed share.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivateQuery {
    #[serde(default)]
    pub force: bool,
}

/// `activate` or `rollback`.
fn activation_kind() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["activate", "rollback"]))
        .description(Some("How this version became active."))
        .build()
}

impl From<Activation> for ActivationView {
    fn from(a: Activation) -> Self {
        Self { active_version: a.version, kind: a.kind, activated_at: a.activated_at, sample: None }
    }
}

impl From<(Activation, SampleReport)> for ActivationView {
    fn from((activation, sample): (Activation, SampleReport)) -> Self {
        Self { sample: Some(sample), ..Self::from(activation) }
    }
}

/// What to dry-run: the merchant's products by SKU, or contexts given in full; 1 to 1000 of
/// them in all.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    #[serde(default)]
    #[schema(value_type = Vec<Sku>, max_items = 1000)]
    pub skus: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub contexts: Vec<RuleContext>,
}

#[derive(Serialize, ToSchema)]
pub struct DryRunResponse {
    pub version: i64,
    pub results: Vec<DryRunResult>,
    /// Always false: a dry run changes nothing.
    pub persisted: bool,
}

/// An uploaded module: the body's bytes.
struct WasmModule;

impl utoipa::PartialSchema for WasmModule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for WasmModule {}

/// A version's parameters: a flat object of strings, numbers and booleans.
struct RuleParams;

impl utoipa::PartialSchema for RuleParams {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::domain::Attributes::schema().into()
    }
}

impl ToSchema for RuleParams {}

fn version_from_path(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::InvalidPath(format!("`{text}` is not a rule version (1, 2, ...)")))
}

async fn active_version(store: &Store, merchant: crate::domain::MerchantId) -> Result<Option<i64>, ApiError> {
    Ok(store.active_rule(merchant).await?.map(|a| a.version))
}

/// A stock policy to use instead of uploading a module.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockChoice {
    /// The stock policy's name (`GET /v1/stock-policies`).
    pub stock: String,
}

/// A stock policy the service ships.
#[derive(Serialize, ToSchema)]
pub struct StockPolicyView {
    pub name: String,
    pub summary: String,
    /// Hex SHA-256 of the build: the `sha256` of the version it becomes.
    pub sha256: String,
    pub size_bytes: usize,
}

#[derive(Serialize, ToSchema)]
pub struct StockPolicyList {
    pub policies: Vec<StockPolicyView>,
}

/// The stock policies any merchant can use by name, with no code of their own.
#[utoipa::path(get, path = "/v1/stock-policies", tag = "rules", security(("bearer" = [])),
    responses((status = 200, description = "The stock policies", body = StockPolicyList)))]
pub async fn list_stock_policies(_access: Access<Read>) -> HttpResponse {
    let policies = crate::rules::stock::POLICIES
        .iter()
        .map(|p| StockPolicyView {
            name: p.name.to_owned(),
            summary: p.summary.to_owned(),
            sha256: crate::domain::sha256_hex(p.wasm),
            size_bytes: p.wasm.len(),
        })
        .collect();
    HttpResponse::Ok().json(StockPolicyList { policies })
}

/// Upload a rule: a WebAssembly component, or a core module built with wit-bindgen; or, as a
/// JSON body `{"stock": "competitor-match"}`, use one of the service's stock policies.
#[utoipa::path(post, path = "/v1/rules", tag = "rules", security(("bearer" = [])),
    request_body(description = "The module's bytes (at most the sandbox's `max_module_bytes`, 1 MiB by default), \
                                or a stock policy's name",
                 content((WasmModule = "application/wasm"), (WasmModule = "application/octet-stream"),
                         (StockChoice = "application/json"))),
    responses((status = 201, description = "A new version", body = RuleVersionView),
              (status = 200, description = "The same bytes were uploaded before: that version", body = RuleVersionView),
              (status = 422, description = "`rule_refused` (`details.reason`) or `over_quota`"),
              (status = 429, description = "`too_many_requests`: too many uploads at once")))]
pub async fn upload_rule(
    access: Access<Write>,
    rules: web::Data<Rules>,
    store: web::Data<Store>,
    request: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let json = media.eq_ignore_ascii_case("application/json");
    if !(json || matches!(media, "application/wasm" | "application/octet-stream")) {
        return Err(ApiError::UnsupportedMediaType(
            "upload the module as the body, with `Content-Type: application/wasm`, or name a stock policy \
             as JSON (`{\"stock\": \"competitor-match\"}`)"
                .into(),
        ));
    }
    let limit = rules.sandbox().settings().max_module_bytes;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidBody(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    let (version, created) = if json {
        let choice: Object<StockChoice> = serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidJson(format!("a stock policy is chosen as {{\"stock\": NAME}}: {e}")))?;
        rules.use_stock(merchant, &choice.0.stock).await?
    } else {
        rules.upload(merchant, body).await?
    };
    tracing::info!(merchant_id = %merchant, version = version.version, created, stock = ?version.stock, "rule uploaded");
    let view = RuleVersionView::new(version, active_version(&store, merchant).await?);
    Ok(if created { HttpResponse::Created().json(view) } else { HttpResponse::Ok().json(view) })
}

/// List rule versions, oldest first, and which one is active.
#[utoipa::path(get, path = "/v1/rules", tag = "rules", security(("bearer" = [])),
    responses((status = 200, description = "The versions", body = RuleList)))]
pub async fn list_rules(access: Access<Read>, store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let active = active_version(&store, merchant).await?;
    let versions = store.rule_versions(merchant).await?.into_iter().map(|v| RuleVersionView::new(v, active)).collect();
    Ok(HttpResponse::Ok().json(RuleList { active_version: active, versions }))
}

/// Read one rule version.
#[utoipa::path(get, path = "/v1/rules/{version}", tag = "rules", security(("bearer" = [])),
    responses((status = 200, description = "The version", body = RuleVersionView)))]
pub async fn get_rule(
    access: Access<Read>,
    rules: web::Data<Rules>,
    store: web::Data<Store>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let version = rules.version(merchant, version_from_path(&path)?).await?;
    Ok(HttpResponse::Ok().json(RuleVersionView::new(version, active_version(&store, merchant).await?)))
}

/// Replace a version's parameters: a flat object of strings, numbers and booleans that the
/// rule receives on every evaluation.
#[utoipa::path(put, path = "/v1/rules/{version}/params", tag = "rules", security(("bearer" = [])),
    request_body(content = inline(RuleParams)),
    responses((status = 200, description = "The version with its new parameters", body = RuleVersionView),
              (status = 422, description = "`validation_failed`")))]
pub async fn set_params(
    access: Access<Write>,
    prices: web::Data<Prices>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let version = version_from_path(&path)?;
    let Value::Object(params) = body.into_inner() else {
        return Err(Invalid::one("params", "parameters are a JSON object").into());
    };
    let (updated, active) = prices.set_rule_params(merchant, version, params).await?;
    Ok(HttpResponse::Ok().json(RuleVersionView::new(updated, active)))
}

/// Make a version the active one. It is first dry-run on a sample of the catalogue; when more
/// of the sample fails than allowed (`pricing.activation_max_failed_bps`), the activation is
/// refused unless `force=true`.
#[utoipa::path(post, path = "/v1/rules/{version}/activate", tag = "rules", security(("bearer" = [])),
    params(ActivateQuery),
    responses((status = 200, description = "Active; the catalogue reprices", body = ActivationView),
              (status = 422, description = "`rule_refused`: the stored version cannot be loaded; \
                                            `sample_failed`: too much of the sample failed (`details`: the sample's \
                                            report); `validation_failed`: a required parameter is not set")))]
pub async fn activate(
    access: Access<Write>,
    prices: web::Data<Prices>,
    path: web::Path<String>,
    query: web::Query<ActivateQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let activation = prices.activate_rule(merchant, version_from_path(&path)?, query.force).await?;
    tracing::info!(merchant_id = %merchant, version = activation.0.version, forced = query.force,
                   failed = activation.1.failed, "rule activated");
    Ok(HttpResponse::Ok().json(ActivationView::from(activation)))
}

/// Return to the version that was active before the current one.
#[utoipa::path(post, path = "/v1/rules/rollback", tag = "rules", security(("bearer" = [])),
    responses((status = 200, description = "The version before is active again", body = ActivationView),
              (status = 409, description = "`nothing_to_roll_back`: no earlier activation")))]
pub async fn roll_back(access: Access<Write>, prices: web::Data<Prices>) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let activation = prices.roll_back_rule(merchant).await?;
    tracing::info!(merchant_id = %merchant, version = activation.version, "rule rolled back");
    Ok(HttpResponse::Ok().json(ActivationView::from(activation)))
}

/// Evaluate a version on the merchant's products (`skus`) or on given `contexts`, and show
/// what it would decide; nothing is stored and no price changes.
#[utoipa::path(post, path = "/v1/rules/{version}/dry-run", tag = "rules", security(("bearer" = [])),
    request_body = DryRunRequest,
    responses((status = 200, description = "What the version would decide", body = DryRunResponse),
              (status = 422, description = "`validation_failed`: no SKU or context, more than 1000, or a context \
                                            the interface refuses"),
              (status = 429, description = "`too_many_requests`: too many dry runs at once")))]
pub async fn dry_run(
    access: Access<Write>,
    rules: web::Data<Rules>,
    path: web::Path<String>,
    body: web::Json<DryRunRequest>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let version = version_from_path(&path)?;
    let DryRunRequest { skus, mut contexts } = body.into_inner();
    for ctx in &mut contexts {
        ctx.judge_staleness(rules.stale_after_secs());
    }
    let total = skus.len() + contexts.len();
    if total == 0 || total > MAX_DRY_RUN {
        return Err(Invalid::one("skus", format!("give 1 to {MAX_DRY_RUN} SKUs or contexts")).into());
    }
    let mut all = rules.contexts_for(merchant, &skus).await?;
    all.extend(contexts.into_iter().map(|ctx| (ctx, None)));
    let results = rules.dry_run(merchant, version, all).await?;
    Ok(HttpResponse::Ok().json(DryRunResponse { version, results, persisted: false }))
}
