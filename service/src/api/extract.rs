//! Extractor settings and fallbacks, so that malformed input of every kind (bad JSON, unknown
//! fields, wrong content type, oversized body, bad query, unknown route, wrong method) is
//! answered in the API's one error shape.

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, ResponseError, web};

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
        JsonPayloadError::Deserialize(e) => body_error(e),
        other => ApiError::InvalidJson(format!("the body could not be read: {other}")),
    }
}

/// A JSON body that does not deserialize: `invalid_body` when it is well-formed JSON of the
/// wrong shape, `invalid_json` when it is not JSON at all.
fn body_error(e: serde_json::Error) -> ApiError {
    if e.is_data() {
        ApiError::InvalidBody(format!("the body does not have the expected shape: {e}"))
    } else {
        ApiError::InvalidJson(format!("the body is not well-formed JSON: {e}"))
    }
}

/// Decodes a JSON body as the API's extractor does (after its content-type and size checks).
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(body_error)
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

/// A resource whose unlisted methods answer `405 method_not_allowed` in the error shape, with
/// the `Allow` header naming the methods it has (RFC 9110). Its methods are added with
/// [`Endpoint::get`] and its siblings, so the header cannot drift from the routes.
pub fn resource(path: &str) -> Endpoint {
    Endpoint { resource: web::resource(path), allowed: Vec::new() }
}

/// A resource being built by [`resource`]; registered with `cfg.service(...)`.
pub struct Endpoint {
    resource: Resource,
    allowed: Vec<Method>,
}

impl Endpoint {
    pub fn route<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.allowed.push(method);
        self
    }

    pub fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::GET, handler)
    }

    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::POST, handler)
    }

    pub fn put<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::PUT, handler)
    }

    pub fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::DELETE, handler)
    }
}

impl HttpServiceFactory for Endpoint {
    fn register(self, config: &mut AppService) {
        let allow = self.allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        let not_allowed = move |req: HttpRequest| {
            let error = ApiError::MethodNotAllowed { method: req.method().to_string(), allow: allow.clone() };
            async move { error.error_response() }
        };
        self.resource.default_service(web::to(not_allowed)).register(config)
    }
}

pub async fn route_not_found(req: HttpRequest) -> HttpResponse {
    ApiError::RouteNotFound { method: req.method().to_string(), path: req.path().to_owned() }.error_response()
}
