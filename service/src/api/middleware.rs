//! Around every request: a tracing span (method, route, status, merchant, latency), the
//! request metrics, and the handler time limit.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
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
    let method = req.method().to_string();
    // The route pattern, never the raw path: SKUs and ids stay out of metric labels.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
        merchant_id = Empty,
        latency_ms = Empty,
    );
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let timeout = req.app_data::<web::Data<HttpSettings>>().map(|h| h.request_timeout());
    let call = next.call(req).instrument(span.clone());
    let result = match timeout {
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Timeout(limit.as_millis() as u64).into()),
        },
        None => call.await,
    };
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => e.as_response_error().status_code(),
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
        metrics.record_request(&method, &route, status.as_u16(), elapsed.as_secs_f64());
    }
    result
}

/// Routes too frequent to log every answer at `info`.
fn is_hot(route: &str) -> bool {
    route.starts_with("/v1/prices") || matches!(route, "/healthz" | "/readyz" | "/metrics")
}
