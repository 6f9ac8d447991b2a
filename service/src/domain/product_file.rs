//! The catalogue's file formats, read and written: one product per NDJSON line (the `PUT`
//! body with its `sku`), or one per CSV record under a header that names the columns.
//!
//! CSV columns (any order; the first four are required, the others may be left out or empty):
//! `sku`, `currency`, `cost_minor`, `base_price_minor`; the guardrails `floor_minor`,
//! `min_margin_bps`, `ceiling_minor`, `map_minor`, `max_step_bps`, `min_interval_secs` and
//! `rounding` (`ending:99` or `multiple:5`); one `attr.<key>` column per attribute; and
//! `price_in_force_minor`, which exports write and imports ignore (the price in force is a
//! rule's or the base price's, never a file's). An attribute cell holds its value as text: empty
//! is no attribute, `true`/`false` a boolean, a JSON number a number, anything else text; text
//! that would read as one of those is written as a JSON string (`"42"`, `""`), which reads back
//! as that text. An NDJSON line may carry `price_in_force_minor` too, ignored likewise.
//!
//! Exports write products in SKU order, CSV columns in the order above with the attributes'
//! columns sorted, so exporting, importing the file and exporting again gives the same bytes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{GuardrailsInput, Invalid, Product, ProductDraft, Rounding, Sku};

/// A line that could not be taken, in the API's error terms.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    /// `invalid_json`, `invalid_body`, `validation_failed` or `currency_mismatch`.
    pub code: &'static str,
    pub message: String,
    /// As the error shape's `details`.
    pub details: Value,
}

impl LineError {
    fn invalid(invalid: Invalid) -> Self {
        LineError {
            code: "validation_failed",
            message: "the request is not valid".to_owned(),
            details: json!({ "fields": invalid.errors() }),
        }
    }

    fn body(e: serde_json::Error) -> Self {
        if e.is_data() {
            LineError {
                code: "invalid_body",
                message: format!("the line does not have the expected shape: {e}"),
                details: json!({}),
            }
        } else {
            LineError {
                code: "invalid_json",
                message: format!("the line is not well-formed JSON: {e}"),
                details: json!({}),
            }
        }
    }

    pub fn csv(message: String) -> Self {
        LineError { code: "invalid_body", message, details: json!({}) }
    }
}

/// One product as an NDJSON line.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ProductLine {
    sku: String,
    currency: String,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    cost_minor: i64,
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    base_price_minor: i64,
    #[serde(default)]
    guardrails: GuardrailsInput,
    #[serde(default)]
    attributes: Map<String, Value>,
    /// Written by exports, ignored by imports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    price_in_force_minor: Option<Value>,
}

fn parse_sku(text: &str, invalid: &mut Invalid) -> Option<Sku> {
    Sku::parse(text).map_err(|e| invalid.push("sku", e.to_string())).ok()
}

/// The SKU an NDJSON line or CSV record names, when it names a valid one (a replace import
/// keeps a product whose line was refused for another reason).
pub fn named_sku(draft: &Result<ProductDraft, (Option<Sku>, LineError)>) -> Option<&Sku> {
    match draft {
        Ok(draft) => Some(&draft.sku),
        Err((sku, _)) => sku.as_ref(),
    }
}

/// An NDJSON line as a product, checked like a `PUT` body.
pub fn ndjson_product(line: &[u8]) -> Result<ProductDraft, (Option<Sku>, LineError)> {
    let parsed: ProductLine = serde_json::from_slice(line).map_err(|e| {
        // A line that is JSON with a valid SKU still names it (replace keeps that product).
        let sku = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("sku").and_then(Value::as_str).and_then(|s| Sku::parse(s).ok()));
        (sku, LineError::body(e))
    })?;
    let mut invalid = Invalid::new();
    let sku = parse_sku(&parsed.sku, &mut invalid);
    let Some(sku) = sku else { return Err((None, LineError::invalid(invalid))) };
    ProductDraft::parse(
        sku.clone(),
        &parsed.currency,
        parsed.cost_minor,
        parsed.base_price_minor,
        parsed.guardrails,
        parsed.attributes,
    )
    .map_err(|e| (Some(sku), LineError::invalid(e)))
}

/// A product as an NDJSON line (no newline), with its price in force.
pub fn ndjson_line(product: &Product, price_in_force: Option<i64>) -> String {
    let line = ProductLine {
        sku: product.sku.to_string(),
        currency: product.currency().to_string(),
        cost_minor: product.cost.minor(),
        base_price_minor: product.base_price.minor(),
        guardrails: product.guardrails.as_input().clone(),
        attributes: product.attributes.as_map().clone(),
        price_in_force_minor: price_in_force.map(Value::from),
    };
    serde_json::to_string(&line).expect("a product serializes")
}

/// A CSV column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Sku,
    Currency,
    Cost,
    BasePrice,
    Floor,
    MinMargin,
    Ceiling,
    Map,
    MaxStep,
    MinInterval,
    Rounding,
    PriceInForce,
    Attribute(String),
}

/// The fixed columns, in the order exports write them.
const FIXED: &[(&str, Column)] = &[
    ("sku", Column::Sku),
    ("currency", Column::Currency),
    ("cost_minor", Column::Cost),
    ("base_price_minor", Column::BasePrice),
    ("floor_minor", Column::Floor),
    ("min_margin_bps", Column::MinMargin),
    ("ceiling_minor", Column::Ceiling),
    ("map_minor", Column::Map),
    ("max_step_bps", Column::MaxStep),
    ("min_interval_secs", Column::MinInterval),
    ("rounding", Column::Rounding),
    ("price_in_force_minor", Column::PriceInForce),
];

const ATTRIBUTE_PREFIX: &str = "attr.";

/// A CSV file's header: what each column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvHeader {
    columns: Vec<Column>,
}

impl CsvHeader {
    /// Reads a header record; every problem at once (fields named `header.<column>`).
    pub fn parse(record: &csv::ByteRecord) -> Result<Self, Invalid> {
        let mut invalid = Invalid::new();
        let mut columns = Vec::with_capacity(record.len());
        for cell in record {
            let name = String::from_utf8_lossy(cell).trim().to_owned();
            let column = if let Some((_, column)) = FIXED.iter().find(|(fixed, _)| *fixed == name) {
                column.clone()
            } else if let Some(key) = name.strip_prefix(ATTRIBUTE_PREFIX) {
                Column::Attribute(key.to_owned())
            } else {
                invalid.push(
                    format!("header.{name}"),
                    "not a column of the catalogue's CSV (see the README's import section)",
                );
                continue;
            };
            if columns.contains(&column) {
                invalid.push(format!("header.{name}"), "this column appears twice");
            }
            columns.push(column);
        }
        for (name, required) in &FIXED[..4] {
            if !columns.contains(required) {
                invalid.push(format!("header.{name}"), "a required column is missing");
            }
        }
        invalid.or_ok(|| CsvHeader { columns })
    }

    /// The header of an export holding these attribute keys.
    pub fn for_export(attribute_keys: impl IntoIterator<Item = String>) -> Self {
        let mut columns: Vec<Column> = FIXED.iter().map(|(_, c)| c.clone()).collect();
        columns.extend(attribute_keys.into_iter().map(Column::Attribute));
        CsvHeader { columns }
    }

    /// The header record.
    pub fn names(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| match c {
                Column::Attribute(key) => format!("{ATTRIBUTE_PREFIX}{key}"),
                fixed => FIXED.iter().find(|(_, f)| f == fixed).map(|(n, _)| (*n).to_owned()).unwrap_or_default(),
            })
            .collect()
    }

    /// A record under this header as a product, checked like a `PUT` body.
    pub fn product(&self, record: &csv::ByteRecord) -> Result<ProductDraft, (Option<Sku>, LineError)> {
        if record.len() != self.columns.len() {
            return Err((
                None,
                LineError::csv(format!("the record has {} fields, the header {}", record.len(), self.columns.len())),
            ));
        }
        let mut invalid = Invalid::new();
        let mut sku = None;
        let (mut currency, mut cost, mut base) = (String::new(), None, None);
        let mut guardrails = GuardrailsInput::default();
        let mut attributes = Map::new();
        for (column, cell) in self.columns.iter().zip(record) {
            let Ok(text) = std::str::from_utf8(cell) else {
                invalid.push(self.field(column), "not UTF-8 text");
                continue;
            };
            let mut integer = |field: String| -> Option<i64> {
                if text.is_empty() {
                    return None;
                }
                text.parse().map_err(|_| invalid.push(field, "a whole number")).ok()
            };
            match column {
                Column::Sku => sku = Some(text.to_owned()),
                Column::Currency => currency = text.to_owned(),
                Column::Cost => cost = integer("cost_minor".into()),
                Column::BasePrice => base = integer("base_price_minor".into()),
                Column::Floor => guardrails.floor_minor = integer("guardrails.floor_minor".into()),
                Column::MinMargin => guardrails.min_margin_bps = integer("guardrails.min_margin_bps".into()),
                Column::Ceiling => guardrails.ceiling_minor = integer("guardrails.ceiling_minor".into()),
                Column::Map => guardrails.map_minor = integer("guardrails.map_minor".into()),
                Column::MaxStep => guardrails.max_step_bps = integer("guardrails.max_step_bps".into()),
                Column::MinInterval => guardrails.min_interval_secs = integer("guardrails.min_interval_secs".into()),
                Column::Rounding => match parse_rounding(text) {
                    Ok(rounding) => guardrails.rounding = rounding,
                    Err(message) => invalid.push("guardrails.rounding", message),
                },
                Column::PriceInForce => {}
                Column::Attribute(key) => {
                    if let Some(value) = attribute_value(text) {
                        attributes.insert(key.clone(), value);
                    }
                }
            }
        }
        let sku = sku.and_then(|s| parse_sku(&s, &mut invalid));
        if cost.is_none() && !invalid.errors().iter().any(|e| e.field == "cost_minor") {
            invalid.push("cost_minor", "required");
        }
        if base.is_none() && !invalid.errors().iter().any(|e| e.field == "base_price_minor") {
            invalid.push("base_price_minor", "required");
        }
        let (Some(sku_ok), Some(cost), Some(base), true) = (sku.clone(), cost, base, invalid.is_empty()) else {
            // Report the draft's own findings too, when there is enough to check.
            return Err((sku, LineError::invalid(invalid)));
        };
        ProductDraft::parse(sku_ok, &currency, cost, base, guardrails, attributes)
            .map_err(|e| (sku, LineError::invalid(e)))
    }

    fn field(&self, column: &Column) -> String {
        match column {
            Column::Attribute(key) => format!("attributes.{key}"),
            Column::Floor
            | Column::MinMargin
            | Column::Ceiling
            | Column::Map
            | Column::MaxStep
            | Column::MinInterval
            | Column::Rounding => {
                format!("guardrails.{}", FIXED.iter().find(|(_, c)| c == column).map_or("", |(n, _)| n))
            }
            fixed => FIXED.iter().find(|(_, c)| c == fixed).map_or("", |(n, _)| n).to_owned(),
        }
    }

    /// A product as a record under this header, with its price in force.
    pub fn record(&self, product: &Product, price_in_force: Option<i64>) -> Vec<String> {
        let g = product.guardrails.as_input();
        let opt = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        self.columns
            .iter()
            .map(|column| match column {
                Column::Sku => product.sku.to_string(),
                Column::Currency => product.currency().to_string(),
                Column::Cost => product.cost.minor().to_string(),
                Column::BasePrice => product.base_price.minor().to_string(),
                Column::Floor => opt(g.floor_minor),
                Column::MinMargin => opt(g.min_margin_bps),
                Column::Ceiling => opt(g.ceiling_minor),
                Column::Map => opt(g.map_minor),
                Column::MaxStep => opt(g.max_step_bps),
                Column::MinInterval => opt(g.min_interval_secs),
                Column::Rounding => g.rounding.map(rounding_cell).unwrap_or_default(),
                Column::PriceInForce => opt(price_in_force),
                Column::Attribute(key) => product.attributes.as_map().get(key).map(attribute_cell).unwrap_or_default(),
            })
            .collect()
    }
}

fn parse_rounding(text: &str) -> Result<Option<Rounding>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let wanted = "`ending:<minor units>` or `multiple:<minor units>`";
    let (mode, value) = text.split_once(':').ok_or_else(|| wanted.to_owned())?;
    let value: i64 = value.parse().map_err(|_| wanted.to_owned())?;
    match mode {
        "ending" => Ok(Some(Rounding::Ending { ending_minor: value })),
        "multiple" => Ok(Some(Rounding::Multiple { step_minor: value })),
        _ => Err(wanted.to_owned()),
    }
}

fn rounding_cell(rounding: Rounding) -> String {
    match rounding {
        Rounding::Ending { ending_minor } => format!("ending:{ending_minor}"),
        Rounding::Multiple { step_minor } => format!("multiple:{step_minor}"),
    }
}

/// An attribute cell's value (`None`: empty, no attribute).
pub fn attribute_value(text: &str) -> Option<Value> {
    match text {
        "" => None,
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ if text.starts_with('"') => {
            Some(serde_json::from_str::<String>(text).map_or_else(|_| Value::String(text.to_owned()), Value::String))
        }
        _ => match serde_json::from_str::<serde_json::Number>(text) {
            Ok(number) => Some(Value::Number(number)),
            Err(_) => Some(Value::String(text.to_owned())),
        },
    }
}

/// An attribute's cell: the inverse of [`attribute_value`].
fn attribute_cell(value: &Value) -> String {
    match value {
        Value::String(text) => {
            if attribute_value(text) == Some(Value::String(text.clone())) && !text.starts_with('"') {
                text.clone()
            } else {
                serde_json::to_string(text).expect("a string serializes")
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Result<CsvHeader, Invalid> {
        CsvHeader::parse(&csv::ByteRecord::from(names.to_vec()))
    }

    #[test]
    fn attribute_cells_read_back_as_what_was_written() {
        for value in
            [json!("acme"), json!("42"), json!(""), json!("true"), json!("\"q\""), json!(1.5), json!(7), json!(false)]
        {
            let cell = attribute_cell(&value);
            if value == json!("") {
                assert_eq!(cell, "\"\"");
            }
            assert_eq!(attribute_value(&cell), Some(value.clone()), "{value} as {cell}");
        }
        assert_eq!(attribute_value("acme"), Some(json!("acme")));
        assert_eq!(attribute_value(""), None);
    }

    #[test]
    fn headers_need_the_four_required_columns_and_no_unknown_or_twice() {
        assert!(header(&["sku", "currency", "cost_minor", "base_price_minor", "attr.brand"]).is_ok());
        let fields = |r: Result<CsvHeader, Invalid>| -> Vec<String> {
            r.unwrap_err().errors().iter().map(|e| e.field.clone()).collect()
        };
        assert_eq!(
            fields(header(&["sku", "currency", "cost_minor", "colour"])),
            ["header.colour", "header.base_price_minor"]
        );
        assert_eq!(fields(header(&["sku", "sku", "currency", "cost_minor", "base_price_minor"])), ["header.sku"]);
    }

    #[test]
    fn a_record_is_checked_like_a_put_body() {
        let h = header(&["sku", "currency", "cost_minor", "base_price_minor", "floor_minor", "rounding", "attr.brand"])
            .unwrap();
        let ok =
            h.product(&csv::ByteRecord::from(vec!["a-1", "EUR", "1000", "1999", "", "ending:99", "acme"])).unwrap();
        assert_eq!(ok.base_price.minor(), 1999);
        assert_eq!(ok.guardrails.as_input().rounding, Some(Rounding::Ending { ending_minor: 99 }));
        assert_eq!(ok.attributes.as_map()["brand"], json!("acme"));
        let (sku, e) = h.product(&csv::ByteRecord::from(vec!["a-2", "EUR", "x", "0", "5", "round", ""])).unwrap_err();
        assert_eq!(sku.unwrap().as_str(), "a-2");
        assert_eq!(e.code, "validation_failed");
        let fields: Vec<&str> =
            e.details["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["cost_minor", "guardrails.rounding"]);
    }

    #[test]
    fn ndjson_lines_are_put_bodies_with_their_sku() {
        let ok = ndjson_product(
            br#"{"sku":"a-1","currency":"EUR","cost_minor":1,"base_price_minor":2,"price_in_force_minor":3}"#,
        )
        .unwrap();
        assert_eq!(ok.sku.as_str(), "a-1");
        let (sku, e) = ndjson_product(br#"{"sku":"a-1","currency":"EUR","cost_minor":1}"#).unwrap_err();
        assert_eq!((sku.unwrap().as_str(), e.code), ("a-1", "invalid_body"));
        assert_eq!(ndjson_product(b"{nope").unwrap_err().1.code, "invalid_json");
    }
}
