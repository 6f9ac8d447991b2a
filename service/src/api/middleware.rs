//! Around every request: a tracing span (method, route, status, merchant, latency), the
//! request metrics, and the handler time limit.

use std::cell::RefCell;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ResourceMap, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use tracing::Instrument;
use tracing::field::Empty;

use super::ApiError;
use crate::config::HttpSettings;
use crate::metrics::Metrics;

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    // The route pattern, never the raw path: SKUs and ids stay out of metric labels. Naming it
    // before the call runs every route's pattern against the path a second time (an eighth of
    // a checkout lookup's CPU); once the router has matched, it is a lookup by the matched
    // resource's index. So it is named early only for a span that is recorded, whose name
    // (`otel.name`) cannot change after it starts.
    let early_route = tracing::span_enabled!(tracing::Level::INFO).then(|| route_name(req.match_pattern()));
    let span = match &early_route {
        Some(route) => tracing::info_span!(
            "http.request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = method.as_str(),
            http.route = route.as_str(),
            http.response.status_code = Empty,
            merchant_id = Empty,
            latency_ms = Empty,
        ),
        None => tracing::Span::none(),
    };
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let timeout = req.app_data::<web::Data<HttpSettings>>().map(|h| h.request_timeout());
    // Kept for naming a request that runs out of time: its own copy goes with the handler.
    let uri = (timeout.is_some() && early_route.is_none()).then(|| {
        remember_routes(req.resource_map());
        req.uri().clone()
    });
    let call = next.call(req).instrument(span.clone());
    let result = match timeout {
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Timeout(limit.as_millis() as u64).into()),
        },
        None => call.await,
    };
    let mut result = result;
    if let Ok(response) = &mut result {
        // No browser may guess another content type than the one declared (JSON stays JSON).
        response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    }
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let route = match (early_route, &result) {
        (Some(route), _) => route,
        (None, Ok(response)) => route_name(response.request().match_pattern()),
        (None, Err(_)) => route_name(uri.and_then(|uri| remembered_route(uri.path()))),
    };
    let elapsed = started.elapsed();
    span.record("http.response.status_code", status.as_u16());
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "request failed");
        } else if is_hot(&route) {
            // Checkout lookups and probes come thousands a second: logged only at debug.
            tracing::debug!(status = status.as_u16(), "request answered");
        } else {
            tracing::info!(status = status.as_u16(), "request answered");
        }
    });
    if let Some(metrics) = metrics {
        metrics.record_request(method_name(&method), route, status.as_u16(), elapsed.as_secs_f64());
    }
    result
}

fn route_name(pattern: Option<String>) -> String {
    pattern.unwrap_or_else(|| "unmatched".to_owned())
}

/// Routes too frequent to log every answer at `info`.
fn is_hot(route: &str) -> bool {
    route.starts_with("/v1/prices") || matches!(route, "/healthz" | "/readyz" | "/metrics")
}

/// The method's name as a metric label: the standard methods by name, any other as `_OTHER`
/// (OpenTelemetry's convention), so that made-up methods cannot create new series.
fn method_name(method: &Method) -> std::borrow::Cow<'static, str> {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    let name = KNOWN.iter().find(|(known, _)| known == method).map_or("_OTHER", |(_, name)| name);
    std::borrow::Cow::Borrowed(name)
}

thread_local! {
    /// A copy of this worker's route table (each worker thread serves one app), made on its
    /// first request, for naming requests whose own request object is gone.
    static ROUTES: RefCell<Option<(usize, ResourceMap)>> = const { RefCell::new(None) };
}

/// Makes sure [`ROUTES`] holds `map` (cloned once per worker, not per request).
fn remember_routes(map: &ResourceMap) {
    let address = map as *const ResourceMap as usize;
    ROUTES.with_borrow_mut(|routes| {
        if routes.as_ref().is_none_or(|(held, _)| *held != address) {
            *routes = Some((address, map.clone()));
        }
    });
}

/// The route pattern of `path` in the table [`remember_routes`] last kept.
fn remembered_route(path: &str) -> Option<String> {
    ROUTES.with_borrow(|routes| routes.as_ref().and_then(|(_, map)| map.match_pattern(path)))
}
