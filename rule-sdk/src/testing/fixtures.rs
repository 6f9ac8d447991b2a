//! Decisions exported from the service (`GET /v1/decisions/export?format=ndjson`) as test
//! fixtures: each rule decision's recorded context, as a [`Context`], with what the live rule
//! decided, so a rule's unit tests can check a change against production inputs:
//!
//! ```no_run
//! use pricing_rule_sdk::testing::{decide, fixtures};
//! # use pricing_rule_sdk::{Context, Decision, Params};
//! # #[derive(Params)] struct P {}
//! # fn policy(_: &Context, _: &P) -> Decision { Decision::keep("") }
//! for recorded in fixtures::load("tests/decisions.ndjson").unwrap() {
//!     let decision = decide(policy, &recorded.context);
//!     assert_eq!(decision.price_minor(), recorded.rule_price_minor, "decision {}", recorded.seq);
//! }
//! ```
//!
//! Records that are no rule's evaluation (catalogue events, approvals, overrides) are left out.
//! The live rule's answer is compared before guardrails (`rule_price_minor`): guardrails are
//! the service's, and `pricing rule replay` applies them.

use serde_json::Value as Json;

use super::exponent_of;
use crate::{CompetitorOffer, Context, Demand, Money, Value};

/// One recorded rule decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub seq: i64,
    /// The inputs as the rule saw them, with the parameters it was given.
    pub context: Context,
    /// The price the live rule asked for (`None`: it kept the price, or failed).
    pub rule_price_minor: Option<i64>,
    pub explanation: String,
    /// The failure's kind, when the live rule failed.
    pub error: Option<String>,
}

/// Reads an export (one decision in JSON per line).
pub fn load(path: impl AsRef<std::path::Path>) -> Result<Vec<Recorded>, String> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text)
}

/// Parses an export's text.
pub fn parse(text: &str) -> Result<Vec<Recorded>, String> {
    let mut all = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let view: Json = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if let Some(recorded) = recorded(&view).map_err(|e| format!("line {}: {e}", i + 1))? {
            all.push(recorded);
        }
    }
    Ok(all)
}

fn recorded(view: &Json) -> Result<Option<Recorded>, String> {
    let record = &view["record"];
    let inputs = &record["inputs"];
    if inputs.is_null()
        || record["rule_version"].is_null()
        || !record["resolution"].is_null()
        || !record["override"].is_null()
    {
        return Ok(None);
    }
    let text = |v: &Json, what: &str| v.as_str().map(str::to_owned).ok_or_else(|| format!("no `{what}`"));
    let int = |v: &Json, what: &str| v.as_i64().ok_or_else(|| format!("no `{what}`"));
    let count = |v: &Json| v.as_u64().unwrap_or(0);
    let currency = text(&inputs["currency"], "currency")?;
    let money = |minor: i64| Money { minor, currency: currency.clone() };
    let mut competitors = Vec::new();
    for offer in inputs["competitors"].as_array().into_iter().flatten() {
        competitors.push(CompetitorOffer {
            competitor: text(&offer["competitor"], "competitor")?,
            price: Money {
                minor: int(&offer["price_minor"], "price_minor")?,
                currency: offer["currency"].as_str().map_or_else(|| currency.clone(), str::to_owned),
            },
            in_stock: offer["in_stock"].as_bool().unwrap_or(false),
            age_seconds: offer["age_seconds"].as_i64().unwrap_or(0),
            stale: offer["stale"].as_bool().unwrap_or(false),
        });
    }
    let d = &inputs["demand"];
    let context = Context {
        sku: text(&inputs["sku"], "sku")?,
        currency_exponent: exponent_of(&currency),
        cost: money(int(&inputs["cost_minor"], "cost_minor")?),
        current_price: money(int(&inputs["current_price_minor"], "current_price_minor")?),
        base_price: money(int(&inputs["base_price_minor"], "base_price_minor")?),
        competitors,
        demand: Demand {
            views_1d: count(&d["views_1d"]),
            views_7d: count(&d["views_7d"]),
            add_to_carts_1d: count(&d["add_to_carts_1d"]),
            add_to_carts_7d: count(&d["add_to_carts_7d"]),
            units_sold_1d: count(&d["units_sold_1d"]),
            units_sold_7d: count(&d["units_sold_7d"]),
            units_sold_30d: count(&d["units_sold_30d"]),
            inventory: d["inventory"].as_i64(),
        },
        attributes: entries(&inputs["attributes"]),
        params: entries(&record["params"]),
        now_ms: unix_ms(&text(&inputs["now"], "now")?)?,
        currency,
    };
    Ok(Some(Recorded {
        seq: int(&view["seq"], "seq")?,
        context,
        rule_price_minor: record["rule_price_minor"].as_i64(),
        explanation: record["explanation"].as_str().unwrap_or("").to_owned(),
        error: record["error"].as_str().map(str::to_owned),
    }))
}

fn entries(object: &Json) -> Vec<(String, Value)> {
    let mut entries = Vec::new();
    for (key, value) in object.as_object().into_iter().flatten() {
        let value = match value {
            Json::String(s) => Value::Text(s.clone()),
            Json::Bool(b) => Value::Boolean(*b),
            Json::Number(n) => match n.as_f64() {
                Some(n) => Value::Number(n),
                None => continue,
            },
            _ => continue,
        };
        entries.push((key.clone(), value));
    }
    entries
}

/// Milliseconds since the epoch of an RFC 3339 time (`2026-11-25T12:00:00.123Z`, or with an
/// offset), as the service writes them.
fn unix_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an RFC 3339 time");
    let number = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let (date, rest) = text.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let mut ymd = date.splitn(3, '-');
    let (y, m, d) = (
        number(ymd.next().ok_or_else(bad)?)?,
        number(ymd.next().ok_or_else(bad)?)?,
        number(ymd.next().ok_or_else(bad)?)?,
    );
    let split = rest.find(['Z', 'z', '+', '-']).ok_or_else(bad)?;
    let (clock, zone) = rest.split_at(split);
    let mut hms = clock.splitn(3, ':');
    let (h, min) = (number(hms.next().ok_or_else(bad)?)?, number(hms.next().ok_or_else(bad)?)?);
    let seconds = hms.next().ok_or_else(bad)?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let millis = format!("{fraction:0<3}")[..3].parse::<i64>().map_err(|_| bad())?;
    let offset_minutes = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (oh, om) = zone[1..].split_once(':').ok_or_else(bad)?;
            sign * (number(oh)? * 60 + number(om)?)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + h * 3600 + min * 60 + number(whole)? - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_as_the_service_writes_them() {
        assert_eq!(unix_ms("2026-01-01T00:00:00Z").unwrap(), super::super::DEFAULT_NOW_MS);
        assert_eq!(unix_ms("2026-01-01T00:00:00.250Z").unwrap(), super::super::DEFAULT_NOW_MS + 250);
        assert_eq!(unix_ms("2026-01-01T01:00:00+01:00").unwrap(), super::super::DEFAULT_NOW_MS);
        assert!(unix_ms("yesterday").is_err());
    }

    #[test]
    fn reads_a_rule_decision_and_leaves_out_the_rest() {
        let export = concat!(
            r#"{"seq":1,"record":{"rule_version":null,"inputs":null}}"#,
            "\n",
            r#"{"seq":2,"record":{"rule_version":1,"params":{"margin_bps":2500},"rule_price_minor":1499,"explanation":"cost plus","error":null,"#,
            r#""inputs":{"sku":"tee","currency":"EUR","cost_minor":1200,"current_price_minor":1999,"base_price_minor":1999,"#,
            r#""competitors":[{"competitor":"a","price_minor":1800,"in_stock":true,"age_seconds":60,"stale":false}],"#,
            r#""demand":{"units_sold_7d":3,"inventory":9},"attributes":{"brand":"acme"},"now":"2026-01-01T00:00:00Z"}}}"#,
        );
        let fixtures = parse(export).unwrap();
        assert_eq!(fixtures.len(), 1);
        let one = &fixtures[0];
        assert_eq!((one.seq, one.rule_price_minor), (2, Some(1499)));
        assert_eq!(one.context.cost.minor, 1200);
        assert_eq!(one.context.competitors[0].price.minor, 1800);
        assert_eq!(one.context.demand.inventory, Some(9));
        assert_eq!(one.context.param_i64("margin_bps"), Some(2500));
        assert_eq!(one.context.attribute_str("brand"), Some("acme"));
        assert_eq!(one.context.now_ms, super::super::DEFAULT_NOW_MS);
    }
}
