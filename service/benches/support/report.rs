//! One line per measured figure, for `scripts/bench` to gather into `bench/RESULTS.md`:
//! `BENCH-RESULT` and a JSON object (figure, value, unit, the same-run baseline and the
//! ratio to it when there is one, and the target with whether it was met). Every bench also
//! prints its own table for a person reading the terminal; these lines are what the report
//! reads, so a figure's meaning lives next to the code that measured it.

#![allow(dead_code)]

use serde_json::json;

/// What a figure has to reach.
#[derive(Clone, Copy)]
pub enum Target {
    /// The value itself at most this.
    AtMost(f64),
    /// The value itself at least this.
    AtLeast(f64),
    /// The value over its baseline at least this.
    RatioAtLeast(f64),
    /// The value over its baseline at most this.
    RatioAtMost(f64),
}

impl Target {
    fn judge(self, value: f64, ratio: Option<f64>) -> (String, Option<bool>) {
        match self {
            Target::AtMost(t) => (format!("≤ {}", number(t)), Some(value <= t)),
            Target::AtLeast(t) => (format!("≥ {}", number(t)), Some(value >= t)),
            Target::RatioAtLeast(t) => (format!("≥ {t}x baseline"), ratio.map(|r| r >= t)),
            Target::RatioAtMost(t) => (format!("≤ {t}x baseline"), ratio.map(|r| r <= t)),
        }
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.3}") }
}

/// Prints one figure. `group` is the bench's name (one section of the report); `baseline`
/// is what the figure is compared with in the same run, by name and value.
pub fn figure(group: &str, name: &str, value: f64, unit: &str, baseline: Option<(&str, f64)>, target: Option<Target>) {
    let ratio = baseline.and_then(|(_, b)| (b != 0.0).then_some(value / b));
    let (target_text, met) = match target {
        Some(t) => {
            let (text, met) = t.judge(value, ratio);
            (Some(text), met)
        }
        None => (None, None),
    };
    let line = json!({
        "group": group,
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline.map(|(n, _)| n),
        "baseline_value": baseline.map(|(_, v)| v),
        "ratio": ratio,
        "target": target_text,
        "met": met,
    });
    println!("BENCH-RESULT {line}");
}
