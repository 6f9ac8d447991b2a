//! The OpenAPI document, generated from the handlers and types themselves.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin_keys, audit, export, history, merchants, price_at, prices, products, rules, settings, signals};

#[derive(OpenApi)]
#[openapi(
    info(title = "Pricing API", description = "Dynamic pricing with merchant rules in a WebAssembly sandbox."),
    paths(
        merchants::create_merchant,
        merchants::get_merchant,
        merchants::create_key,
        merchants::list_keys,
        merchants::revoke_key,
        admin_keys::create_admin_key,
        admin_keys::list_admin_keys,
        admin_keys::revoke_admin_key,
        products::put_product,
        products::get_product,
        products::delete_product,
        products::list_products,
        history::history,
        history::feed,
        history::decision,
        export::export,
        price_at::price_at,
        audit::verify,
        audit::public_key,
        audit::public_keys,
        audit::create_checkpoint,
        audit::verify_checkpoint,
        audit::replay_decision,
        settings::get_settings,
        settings::put_settings,
        prices::get_price,
        prices::lookup,
        rules::upload_rule,
        rules::list_rules,
        rules::get_rule,
        rules::set_params,
        rules::activate,
        rules::roll_back,
        rules::dry_run,
        signals::competitor_prices,
        signals::demand,
    ),
    components(schemas(super::ErrorBody, crate::domain::Rounding)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
