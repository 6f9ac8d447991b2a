//! What every operation of the document shares, added to what the handlers declare: its path
//! parameters with their schemas, and the error answers its shape implies, each a reference to
//! one shared response in the error shape (see [`super`]).

use utoipa::Modify;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Header, Ref, RefOr, Required, ResponseBuilder, Schema};

/// A path parameter's description and schema, by its name. A name missing here panics, so the
/// unit tests below find a path that adds one.
fn path_parameter(name: &str) -> Parameter {
    let number = || ObjectBuilder::new().schema_type(Type::Integer).format(Some(int64())).minimum(Some(1)).into();
    let (description, schema): (&str, RefOr<Schema>) = match name {
        "sku" => ("The product's SKU.", Ref::from_schema_name("Sku").into()),
        "merchant_id" => ("The merchant's id.", Ref::from_schema_name("MerchantId").into()),
        "key_id" => ("The key's id (the `id` of a key view).", Ref::from_schema_name("KeyId").into()),
        "webhook_id" => ("The webhook's id (the `id` of a webhook view).", Ref::from_schema_name("WebhookId").into()),
        "job_id" => ("The job's id (the `id` of a job view).", Ref::from_schema_name("JobId").into()),
        "version" => ("A rule version number.", number()),
        "seq" => ("A decision's sequence number.", number()),
        other => panic!("the path parameter `{other}` has no schema in api/openapi.rs"),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn int64() -> utoipa::openapi::SchemaFormat {
    utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)
}

/// The shared error answers (`components/responses`): status, name, description.
const ERROR_RESPONSES: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "`invalid_json` (the body is not JSON), `invalid_body` (JSON of the wrong shape), `invalid_path` (a \
         malformed SKU, id or number in the path) or `invalid_query` (a bad query parameter or cursor).",
    ),
    ("401", "Unauthorized", "`unauthorized`: no key, or a malformed, unknown or revoked one."),
    ("403", "Forbidden", "`forbidden`: the key lacks every role the operation admits."),
    (
        "404",
        "NotFound",
        "`not_found` (no such resource for this merchant; another merchant's is not found either) or \
         `route_not_found` (no route matches, e.g. an empty path segment).",
    ),
    (
        "409",
        "Conflict",
        "The request conflicts with the state of the resource: `currency_mismatch`, `nothing_to_roll_back`, \
         `chain_broken`, `not_a_rule_decision`, `unreadable_record`, `last_admin_key`, `trial_running` or \
         `trial_not_running`.",
    ),
    ("413", "PayloadTooLarge", "`payload_too_large`: the body is over the limit (`details.limit_bytes`)."),
    (
        "415",
        "UnsupportedMediaType",
        "`unsupported_media_type`: the body was not sent with the content type the operation takes.",
    ),
    (
        "422",
        "Unprocessable",
        "Well-formed but refused: `validation_failed` (`details.fields` names each field and why), \
         `rule_refused` (`details.reason`) or `over_quota` (`details.limit`, `details.quota`).",
    ),
    (
        "429",
        "TooManyRequests",
        "`too_many_requests`: too many of these at once (`details.limit`, `details.scope`); try again after \
         `Retry-After` seconds.",
    ),
    (
        "503",
        "Unavailable",
        "`timeout` (the request took longer than the service's limit) or `unavailable` (the database cannot be \
         reached or stayed contended).",
    ),
];

/// Completes the generated document with what every operation shares; see [`super`].
pub(super) struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description) in ERROR_RESPONSES {
            let mut response = ResponseBuilder::new()
                .description(*description)
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))));
            if *status == "401" {
                response = response.header(
                    "WWW-Authenticate",
                    header(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["Bearer"])), "Bearer"),
                );
            }
            if *status == "429" {
                response = response.header(
                    "Retry-After",
                    header(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)), "Seconds to wait."),
                );
            }
            components.responses.insert((*name).to_owned(), response.build().into());
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let names = path_names(path);
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
                complete(operation, &names);
            }
        }
    }
}

fn header(schema: ObjectBuilder, description: &str) -> Header {
    let mut header = Header::new(schema);
    header.description = Some(description.to_owned());
    header
}

/// The `{name}`s of a path template.
pub(super) fn path_names(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).collect()
}

fn complete(operation: &mut Operation, path_names: &[&str]) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for name in path_names {
        let declared = parameters.iter().any(|p| matches!(p, RefOr::T(p) if p.name == *name));
        if !declared {
            parameters.push(RefOr::T(path_parameter(name)));
        }
    }
    let has_query = parameters.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    if parameters.is_empty() {
        operation.parameters = None;
    }
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut statuses = vec!["503"];
    if secured {
        statuses.extend(["401", "403"]);
    }
    if !path_names.is_empty() {
        statuses.extend(["400", "404"]);
    }
    if has_query {
        statuses.push("400");
    }
    if operation.request_body.is_some() {
        statuses.extend(["400", "413", "415"]);
    }
    let responses = &mut operation.responses.responses;
    for status in statuses {
        responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(ResponseBuilder::new().build()));
    }
    for (status, response) in responses.iter_mut() {
        if !(status.starts_with('4') || status.starts_with('5')) {
            continue;
        }
        let name = ERROR_RESPONSES
            .iter()
            .find(|(known, ..)| known == status)
            .map(|(_, name, _)| *name)
            .unwrap_or_else(|| panic!("no shared error response for status {status} in api/openapi.rs"));
        let mut shared = Ref::from_response_name(name);
        if let RefOr::T(own) = response {
            shared.description = own.description.clone();
        }
        *response = RefOr::Ref(shared);
    }
}

#[cfg(test)]
mod tests {
    use super::path_names;
    use crate::api::openapi::document;

    #[test]
    fn every_path_parameter_is_declared_with_a_schema() {
        let doc = serde_json::to_value(document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let declared = operation["parameters"].as_array().cloned().unwrap_or_default();
                for name in path_names(path) {
                    let parameter = declared.iter().find(|p| p["name"] == name && p["in"] == "path");
                    let parameter = parameter.unwrap_or_else(|| panic!("{method} {path}: `{name}` is not declared"));
                    assert_eq!(parameter["required"], true, "{method} {path}: {name}");
                    assert!(parameter["schema"].is_object(), "{method} {path}: {name}");
                }
            }
        }
    }

    #[test]
    fn every_operation_declares_its_errors_by_status_in_the_one_shape() {
        let doc = serde_json::to_value(document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(responses.contains_key("503"), "{method} {path}");
                for (status, response) in responses {
                    assert!(
                        status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
                        "{method} {path}: {status}"
                    );
                    if status.starts_with('4') || status.starts_with('5') {
                        let name = response["$ref"].as_str().unwrap_or_else(|| panic!("{method} {path} {status}"));
                        assert!(name.starts_with("#/components/responses/"), "{method} {path} {status}");
                    }
                }
                if operation.get("security").is_some() {
                    assert!(responses.contains_key("401") && responses.contains_key("403"), "{method} {path}");
                }
            }
        }
    }
}
