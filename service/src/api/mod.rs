//! The HTTP API, v1: one file per resource, each with its `configure`.

mod access;
mod admin_keys;
mod audit;
mod automation;
mod catalogue;
mod error;
mod export;
mod extract;
mod health;
mod history;
mod merchants;
mod middleware;
mod ndjson;
pub mod openapi;
mod overrides;
mod price_at;
mod prices;
mod products;
mod proposals;
mod rules;
mod settings;
pub(crate) mod signals;
mod trials;
mod ui;
mod webhooks;

use actix_web::web;

pub use crate::feeds::MAX_PARSED_BATCH;
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use middleware::observe;
pub use products::parse_product_body;
pub use signals::{parse_competitor_prices_body, parse_demand_body};

/// Registers every route, the extractor settings, and the fallback for unknown routes.
pub fn configure(json_limit: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(extract::json_config(json_limit))
            .app_data(extract::query_config())
            // Checkout's lookups first: actix tries routes in order, and this is the hot one.
            .configure(prices::configure)
            .configure(health::configure)
            .configure(admin_keys::configure)
            .configure(merchants::configure)
            .configure(audit::configure)
            .configure(export::configure)
            .configure(history::configure)
            .configure(price_at::configure)
            .configure(catalogue::configure)
            .configure(products::configure)
            .configure(proposals::configure)
            .configure(automation::configure)
            .configure(overrides::configure)
            .configure(rules::configure)
            .configure(settings::configure)
            .configure(signals::configure)
            .configure(trials::configure)
            .configure(ui::configure)
            .configure(webhooks::configure)
            .default_service(web::to(extract::route_not_found));
    }
}
