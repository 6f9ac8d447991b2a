//! OpenAPI links: from an answer that names a product, rule version, key or decision to the
//! operations on it, so that a client (and schemathesis' stateful phase) can go from creating
//! or listing one to reading, changing and deleting it.

use utoipa::Modify;
use utoipa::openapi::RefOr;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;

/// OpenAPI links: (operation, its statuses, target operation, the target's parameters as
/// runtime expressions). A link's name is its target operation. Links carry parameters only:
/// none goes from a signed checkpoint to its check, which takes it as the body, because
/// schemathesis varies a linked body in part and then reads the check's 404 (a checkpoint of
/// another merchant) as a created resource gone missing.
#[allow(clippy::type_complexity)]
const LINKS: &[(&str, &[&str], &str, &[(&str, &str)])] = &[
    ("create_merchant", &["201"], "get_merchant", &[("merchant_id", "$response.body#/id")]),
    ("create_merchant", &["201"], "create_key", &[("merchant_id", "$response.body#/id")]),
    ("create_merchant", &["201"], "list_keys", &[("merchant_id", "$response.body#/id")]),
    (
        "create_key",
        &["201"],
        "revoke_key",
        &[("merchant_id", "$request.path.merchant_id"), ("key_id", "$response.body#/id")],
    ),
    (
        "list_keys",
        &["200"],
        "revoke_key",
        &[("merchant_id", "$request.path.merchant_id"), ("key_id", "$response.body#/0/id")],
    ),
    ("create_admin_key", &["201"], "revoke_admin_key", &[("key_id", "$response.body#/id")]),
    ("list_admin_keys", &["200"], "revoke_admin_key", &[("key_id", "$response.body#/0/id")]),
    ("create_webhook", &["201"], "get_webhook", &[("webhook_id", "$response.body#/id")]),
    ("create_webhook", &["201"], "list_deliveries", &[("webhook_id", "$response.body#/id")]),
    ("create_webhook", &["201"], "enable_webhook", &[("webhook_id", "$response.body#/id")]),
    ("create_webhook", &["201"], "delete_webhook", &[("webhook_id", "$response.body#/id")]),
    ("list_products", &["200"], "get_product", &[("sku", "$response.body#/items/0/sku")]),
    ("list_products", &["200"], "put_product", &[("sku", "$response.body#/items/0/sku")]),
    ("list_products", &["200"], "delete_product", &[("sku", "$response.body#/items/0/sku")]),
    ("list_products", &["200"], "history", &[("sku", "$response.body#/items/0/sku")]),
    ("put_product", &["200", "201"], "get_product", &[("sku", "$response.body#/sku")]),
    ("put_product", &["200", "201"], "delete_product", &[("sku", "$response.body#/sku")]),
    ("put_product", &["200", "201"], "get_price", &[("sku", "$response.body#/sku")]),
    ("put_product", &["200", "201"], "history", &[("sku", "$response.body#/sku")]),
    ("list_rules", &["200"], "get_rule", &[("version", "$response.body#/versions/0/version")]),
    ("list_rules", &["200"], "set_params", &[("version", "$response.body#/versions/0/version")]),
    ("list_rules", &["200"], "activate", &[("version", "$response.body#/versions/0/version")]),
    ("list_rules", &["200"], "dry_run", &[("version", "$response.body#/versions/0/version")]),
    ("upload_rule", &["200", "201"], "get_rule", &[("version", "$response.body#/version")]),
    ("upload_rule", &["200", "201"], "set_params", &[("version", "$response.body#/version")]),
    ("upload_rule", &["200", "201"], "activate", &[("version", "$response.body#/version")]),
    ("upload_rule", &["200", "201"], "dry_run", &[("version", "$response.body#/version")]),
    ("activate", &["200"], "get_rule", &[("version", "$response.body#/active_version")]),
    ("roll_back", &["200"], "get_rule", &[("version", "$response.body#/active_version")]),
    ("feed", &["200"], "decision", &[("seq", "$response.body#/items/0/seq")]),
    ("feed", &["200"], "replay_decision", &[("seq", "$response.body#/items/0/seq")]),
    ("history", &["200"], "decision", &[("seq", "$response.body#/items/0/seq")]),
    ("create_override", &["201"], "get_override", &[("id", "$response.body#/id")]),
    ("create_override", &["201"], "end_override", &[("id", "$response.body#/id")]),
    ("list_overrides", &["200"], "get_override", &[("id", "$response.body#/items/0/id")]),
    ("list_proposals", &["200"], "get_proposal", &[("seq", "$response.body#/items/0/seq")]),
    ("list_proposals", &["200"], "approve_proposal", &[("seq", "$response.body#/items/0/seq")]),
    ("list_proposals", &["200"], "reject_proposal", &[("seq", "$response.body#/items/0/seq")]),
];

/// Adds [`LINKS`] to the document.
pub(super) struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let ids: Vec<String> = operations(openapi).filter_map(|o| o.operation_id.clone()).collect();
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
                link(operation, &ids);
            }
        }
    }
}

fn operations(openapi: &utoipa::openapi::OpenApi) -> impl Iterator<Item = &Operation> {
    openapi.paths.paths.values().flat_map(|item| [&item.get, &item.put, &item.post, &item.delete].into_iter().flatten())
}

/// Adds the operation's [`LINKS`].
fn link(operation: &mut Operation, ids: &[String]) {
    let Some(id) = operation.operation_id.clone() else { return };
    for (from, statuses, to, parameters) in LINKS.iter().filter(|(from, ..)| *from == id) {
        assert!(ids.iter().any(|known| known == to), "api/openapi.rs links {from} to an unknown operation {to}");
        for status in *statuses {
            let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
                panic!("api/openapi.rs links {from}'s {status}, which it does not answer");
            };
            let link = parameters
                .iter()
                .fold(LinkBuilder::new().operation_id(*to), |link, (name, value)| link.parameter(*name, *value));
            response.links.insert((*to).to_owned(), RefOr::T(link.build()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LINKS;
    use crate::api::openapi::document;
    use crate::api::openapi::shared::path_names;

    #[test]
    fn every_link_names_parameters_its_target_has() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut targets = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for operation in item.as_object().unwrap().values() {
                let names: Vec<String> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect();
                targets.insert(operation["operationId"].as_str().unwrap().to_owned(), (path.clone(), names));
            }
        }
        for (from, _, to, parameters) in LINKS {
            let (path, names) = &targets[*to];
            for (name, _) in *parameters {
                assert!(names.contains(&(*name).to_owned()), "{from} -> {to} ({path}): no parameter {name}");
            }
            for name in path_names(path) {
                assert!(parameters.iter().any(|(n, _)| *n == name), "{from} -> {to}: path parameter {name} not given");
            }
        }
    }
}
