//! The OpenAPI document (`GET /openapi.json`), generated from the handlers and types themselves,
//! and completed here with what every operation shares, so that no handler can forget it:
//!
//! - each `{name}` in a path is declared as a path parameter with its schema (the SKU and id
//!   patterns come from the domain's own parsers);
//! - the error answers an operation can give because of its shape, each in the one error shape
//!   ([`super::ErrorBody`]): 401 and 403 when it needs a key (the extractor [`super::access::Access`]),
//!   400 and 404 when it has path parameters (a malformed or unknown one, or an empty segment
//!   that matches no route), 400 when it has query parameters, 400, 413 and 415 when it takes
//!   a body, and 503 always (the request time limit; the database). What only some operations
//!   give (409, 422, 429) is declared on the handler, by status, with a description of when.
//!   Every error answer is a reference to the shared response of its status
//!   (`components/responses`), with the handler's description when it has one ([`shared`]).
//!
//! It also links the answers that name a resource to the operations on it ([`links`]), so that
//! a client (and schemathesis' stateful phase) can go from a created product, rule version, key
//! or decision to reading, changing and deleting it.
//!
//! A method that a path does not list answers `405 method_not_allowed` with an `Allow` header
//! naming the methods it has ([`super::extract::resource`]); those are not operations, so the
//! document has nothing to declare for them. `scripts/schemathesis` checks the service against
//! this document (every check, every role).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin_keys, audit, automation, catalogue, export, health, history, merchants, overrides, price_at, prices,
    products, proposals, rules, settings, signals, trials, webhooks,
};
use crate::domain::{Currency, JobId, KeyId, MerchantId, Sku, WebhookId};

mod links;
mod shared;

use links::Links;
use shared::SharedAnswers;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pricing API",
        description = "Dynamic pricing with merchant rules in a WebAssembly sandbox. Every error is \
                       `{\"error\":{\"code\",\"message\",\"details\"}}` with a stable `code`; a method a path \
                       does not list answers 405 with `Allow`."
    ),
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
        catalogue::import_products,
        catalogue::export_products,
        catalogue::list_jobs,
        catalogue::get_job,
        catalogue::cancel_job,
        catalogue::deleted_products,
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
        automation::get_automation,
        automation::freeze,
        automation::unfreeze,
        automation::resume,
        proposals::list,
        proposals::one,
        proposals::approve,
        proposals::reject,
        proposals::approve_matching,
        proposals::reject_matching,
        overrides::create_override,
        overrides::list_overrides,
        overrides::get_override,
        overrides::end_override,
        prices::get_price,
        prices::get_price_named_lookup,
        prices::lookup,
        rules::upload_rule,
        rules::list_stock_policies,
        rules::list_rules,
        rules::get_rule,
        rules::set_params,
        rules::activate,
        rules::roll_back,
        rules::dry_run,
        trials::start_shadow,
        trials::start_backtest,
        trials::list_shadows,
        trials::get_shadow,
        trials::stop_shadow,
        trials::activate_shadow,
        trials::list_backtests,
        trials::get_backtest,
        trials::cancel_backtest,
        signals::competitor_prices,
        signals::demand,
        signals::confirm_competitor_prices,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::delete_webhook,
        webhooks::enable_webhook,
        webhooks::list_deliveries,
        health::healthz,
        health::readyz,
        health::metrics,
        health::openapi_json,
    ),
    components(schemas(
        super::ErrorBody,
        crate::domain::Rounding,
        Sku,
        Currency,
        MerchantId,
        KeyId,
        WebhookId,
        JobId,
        // The decision queries' enums, which the hand-made parameter lists of `history` name.
        history::Order,
        history::ExportFormat,
        crate::store::OutcomeFilter,
        crate::domain::Trigger,
        // The proposal list's enums, which its hand-read parameters name.
        crate::domain::safety::HoldReason,
        crate::domain::safety::ProposalState,
        proposals::StateFilter,
        overrides::StateParam,
        crate::domain::overrides::Phase,
        crate::domain::overrides::OverridePrice,
    )),
    modifiers(&BearerAuth, &SharedAnswers, &Links)
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

#[cfg(test)]
mod tests {
    use super::document;

    /// The bounds written as literals in schema attributes are the constants the parsers
    /// check.
    #[test]
    fn the_documented_bounds_are_the_checked_ones() {
        use crate::domain::{MAX_AMOUNT_MINOR, MAX_MARGIN_BPS, MAX_MIN_INTERVAL_SECS, MAX_STEP_BPS};
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut amounts = 0;
        for (name, schema) in schemas {
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                let property = property.get("oneOf").and_then(|o| o.get(0)).unwrap_or(property);
                if field.ends_with("_minor") && property.get("maximum").is_some() {
                    assert_eq!(property["maximum"], MAX_AMOUNT_MINOR, "{name}.{field}");
                    amounts += 1;
                }
            }
        }
        assert!(amounts >= 9, "{amounts} amounts found");
        let guardrails = &schemas["GuardrailsInput"]["properties"];
        for (field, max) in [
            ("min_margin_bps", MAX_MARGIN_BPS),
            ("max_step_bps", MAX_STEP_BPS),
            ("min_interval_secs", MAX_MIN_INTERVAL_SECS),
        ] {
            assert_eq!(guardrails[field]["maximum"], max, "{field}");
        }
        assert_eq!(schemas["LookupRequest"]["properties"]["skus"]["maxItems"], super::super::prices::MAX_LOOKUP);
        assert_eq!(schemas["DryRunRequest"]["properties"]["skus"]["maxItems"], super::super::rules::MAX_DRY_RUN);
        assert_eq!(
            schemas["ObservationBatch"]["properties"]["observations"]["maxItems"],
            super::super::MAX_PARSED_BATCH
        );
        assert_eq!(schemas["DemandBatch"]["properties"]["events"]["maxItems"], super::super::MAX_PARSED_BATCH);
        let limit = |path: &str| {
            let parameters = doc["paths"][path]["get"]["parameters"].as_array().unwrap().clone();
            parameters.into_iter().find(|p| p["name"] == "limit").unwrap()["schema"]["maximum"].clone()
        };
        assert_eq!(limit("/v1/products"), super::super::products::MAX_PAGE);
        assert_eq!(limit("/v1/decisions"), 1000);
    }
}
