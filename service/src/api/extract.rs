//! Extractor settings and fallbacks, so that malformed input of every kind (bad JSON, unknown
//! fields, wrong content type, oversized body, bad query, unknown route, wrong method) is
//! answered in the API's one error shape.

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, web};

use super::ApiError;

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .error_handler(move |err, _req| json_error(err, limit).into())
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("the body must be JSON, sent with `Content-Type: application/json`".into())
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::InvalidBody(format!("the body does not have the expected shape: {e}"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::InvalidJson(format!("the body is not well-formed JSON: {e}")),
        other => ApiError::InvalidJson(format!("the body could not be read: {other}")),
    }
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = match err {
            QueryPayloadError::Deserialize(e) => format!("the query string is not valid: {e}"),
            other => format!("the query string is not valid: {other}"),
        };
        ApiError::InvalidQuery(message).into()
    })
}

/// A resource whose unlisted methods answer `method_not_allowed` in the error shape.
pub fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::MethodNotAllowed { method: req.method().to_string() }.error_response()
}

pub async fn route_not_found(req: HttpRequest) -> HttpResponse {
    ApiError::RouteNotFound { method: req.method().to_string(), path: req.path().to_owned() }.error_response()
}
