//! The API's one error shape, `{"error":{"code","message","details"}}`, and the table from
//! each stable code to its HTTP status. Every failure a client can meet, from a bad key to a
//! body that is not JSON or a route that does not exist, is answered in this shape.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::domain::Invalid;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("no route matches {method} {path}")]
    RouteNotFound { method: String, path: String },
    /// `allow` lists the resource's methods, for the `Allow` header.
    #[error("{method} is not allowed on this resource; it allows {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request is not valid: {0}")]
    Validation(Invalid),
    /// A streamed body with more lines than a request may hold.
    #[error("the body holds more than {limit} lines")]
    TooManyLines { limit: usize },
    /// An atomic NDJSON body of which some lines were refused: nothing was stored.
    #[error("{rejected} lines were refused, so nothing was stored")]
    RejectedLines { rejected: usize, lines: Vec<crate::api::signals::RejectedLine> },
    /// `error` stopped a streamed request part way; `details` say how far it got.
    #[error("{error} (the request stopped part way; see details)")]
    Interrupted { error: Box<ApiError>, details: Value },
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the rule was refused: {0}")]
    RuleRefused(crate::sandbox::UploadError),
    #[error("the request took longer than {0} ms")]
    Timeout(u64),
    /// Over a quota of stored things (`what`).
    #[error("{message}")]
    OverQuota { message: String, what: &'static str, limit: u64 },
    /// Over a limit on concurrent work; `scope` says whose.
    #[error("{message}")]
    TooManyRequests { message: String, limit: usize, scope: &'static str },
    /// An activation whose dry run over a sample of the catalogue failed too often.
    #[error("{message}")]
    SampleFailed { message: String, report: Value },
    #[error("the service cannot reach its database")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

/// The wire form.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case.
    pub code: &'static str,
    /// For people; may change between versions.
    pub message: String,
    /// Structured help where there is some (e.g. `fields`, the fields that failed validation;
    /// `limit_bytes`); an empty object where there is none.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// The code table: each code, its status.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::Unauthorized(_) => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            ApiError::NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            ApiError::RouteNotFound { .. } => ("route_not_found", StatusCode::NOT_FOUND),
            ApiError::MethodNotAllowed { .. } => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            ApiError::InvalidJson(_) => ("invalid_json", StatusCode::BAD_REQUEST),
            ApiError::InvalidBody(_) => ("invalid_body", StatusCode::BAD_REQUEST),
            ApiError::UnsupportedMediaType(_) => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ApiError::PayloadTooLarge { .. } => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::Validation(_) | ApiError::RejectedLines { .. } => {
                ("validation_failed", StatusCode::UNPROCESSABLE_ENTITY)
            }
            ApiError::TooManyLines { .. } => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::Interrupted { error, .. } => error.code_and_status(),
            ApiError::InvalidPath(_) => ("invalid_path", StatusCode::BAD_REQUEST),
            ApiError::InvalidQuery(_) => ("invalid_query", StatusCode::BAD_REQUEST),
            ApiError::Conflict { code, .. } => (code, StatusCode::CONFLICT),
            ApiError::RuleRefused(_) => ("rule_refused", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::Timeout(_) => ("timeout", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::TooManyRequests { .. } => ("too_many_requests", StatusCode::TOO_MANY_REQUESTS),
            ApiError::OverQuota { .. } => ("over_quota", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::SampleFailed { .. } => ("sample_failed", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The error shape's `details`.
    pub fn details(&self) -> Value {
        match self {
            ApiError::Validation(invalid) => json!({ "fields": invalid.errors() }),
            ApiError::TooManyLines { limit } => json!({ "limit_lines": limit }),
            ApiError::RejectedLines { rejected, lines } => json!({ "rejected": rejected, "rejected_lines": lines }),
            ApiError::Interrupted { error, details } => {
                let mut merged = error.details();
                if let (Some(merged), Some(extra)) = (merged.as_object_mut(), details.as_object()) {
                    merged.extend(extra.clone());
                }
                merged
            }
            ApiError::PayloadTooLarge { limit } => json!({ "limit_bytes": limit }),
            ApiError::RuleRefused(reason) => json!({ "reason": reason.kind() }),
            ApiError::TooManyRequests { limit, scope, .. } => json!({ "limit": limit, "scope": scope }),
            ApiError::OverQuota { what, limit, .. } => json!({ "limit": limit, "quota": what }),
            ApiError::SampleFailed { report, .. } => report.clone(),
            // Always an object, so that clients can read `details.x` without a null check.
            _ => json!({}),
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} was not found"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code_and_status().1
    }

    fn error_response(&self) -> HttpResponse {
        let (code, status) = self.code_and_status();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.insert_header(("Retry-After", "1"));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
        }
        response.json(ErrorBody { error: ErrorDetail { code, message: self.to_string(), details: self.details() } })
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::Validation(invalid)
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut invalid = Invalid::new();
        collect_validation(&errors, "", &mut invalid);
        ApiError::Validation(invalid)
    }
}

fn collect_validation(errors: &validator::ValidationErrors, prefix: &str, invalid: &mut Invalid) {
    use validator::ValidationErrorsKind;
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e.message.as_ref().map(|m| m.to_string()).unwrap_or_else(|| e.code.to_string());
                    invalid.push(path.clone(), message);
                }
            }
            ValidationErrorsKind::Struct(inner) => collect_validation(inner, &path, invalid),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    collect_validation(inner, &format!("{path}[{index}]"), invalid);
                }
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Invalid | AuthError::Revoked => ApiError::Unauthorized(e.to_string()),
            AuthError::Forbidden(_) => ApiError::Forbidden(e.to_string()),
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Contended(_) => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::CurrencyMismatch { .. } => {
                ApiError::Conflict { code: "currency_mismatch", message: e.to_string() }
            }
            StoreError::OverQuota { what, limit, message } => ApiError::OverQuota { message, what, limit },
            // A JSON batch, checked whole: each observation named by its index.
            StoreError::WrongCurrency(list) => {
                let mut invalid = Invalid::new();
                for wrong in &list {
                    let field = format!("observations[{}].currency", wrong.index);
                    for e in crate::api::signals::wrong_currency(field, wrong).errors() {
                        invalid.push(e.field.clone(), e.message.clone());
                    }
                }
                ApiError::Validation(invalid)
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::rules::RuleError> for ApiError {
    fn from(e: crate::rules::RuleError) -> Self {
        use crate::rules::RuleError;
        match e {
            RuleError::Refused(reason) => ApiError::RuleRefused(reason),
            RuleError::UnknownVersion(v) => ApiError::not_found(format!("rule version {v}")),
            RuleError::Invalid(invalid) => ApiError::Validation(invalid),
            RuleError::NothingToRollBack => ApiError::Conflict { code: "nothing_to_roll_back", message: e.to_string() },
            RuleError::Throttled { limit, scope } => ApiError::TooManyRequests { message: e.to_string(), limit, scope },
            RuleError::OverQuota { what, limit } => ApiError::OverQuota { message: e.to_string(), what, limit },
            RuleError::SampleFailed(ref report) => ApiError::SampleFailed {
                message: e.to_string(),
                report: serde_json::to_value(report).expect("a sample report serializes"),
            },
            RuleError::Store(e) => e.into(),
        }
    }
}
