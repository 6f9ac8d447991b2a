//! `pricing rule new NAME`: a rule crate anywhere, ready to test natively (`cargo test`), build
//! to wasm (`scripts/build-rules PATH`) and upload. It depends on the SDK by path (the one this
//! binary was built beside, or `--sdk`), declares its parameters, and carries the build
//! settings (`[profile.rules]`) and a README. The SDK workspace's `Cargo.lock` is copied in, so
//! the crate builds with the dependency versions the SDK was tested with.

use std::path::{Path, PathBuf};

/// The SDK this binary was built beside, when it is still there.
pub fn default_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rule-sdk");
    sdk.join("Cargo.toml").is_file().then(|| sdk.canonicalize().unwrap_or(sdk))
}

#[derive(Debug, thiserror::Error)]
pub enum NewRuleError {
    #[error("`{0}` is not a crate name: use lower-case letters, digits and `-`, starting with a letter")]
    BadName(String),
    #[error("{0} already exists; choose another name or folder")]
    Exists(String),
    #[error("no rule SDK at {0} (give --sdk PATH to the SDK's folder)")]
    NoSdk(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Writes the crate `name` in `parent`; returns its folder.
pub fn scaffold(name: &str, parent: &Path, sdk: &Path) -> Result<PathBuf, NewRuleError> {
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 64;
    if !well_formed {
        return Err(NewRuleError::BadName(name.to_owned()));
    }
    if !sdk.join("Cargo.toml").is_file() {
        return Err(NewRuleError::NoSdk(sdk.display().to_string()));
    }
    let sdk = sdk.canonicalize().unwrap_or_else(|_| sdk.to_path_buf());
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewRuleError::Exists(dir.display().to_string()));
    }
    let write = |relative: &str, text: &str| {
        let path = dir.join(relative);
        let made = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, text));
        made.map_err(|source| NewRuleError::Write { path: path.display().to_string(), source })
    };
    let sdk_text = sdk.display().to_string().replace('\\', "/");
    write("Cargo.toml", &CARGO_TOML.replace("{name}", name).replace("{sdk}", &sdk_text))?;
    write("src/lib.rs", LIB_RS)?;
    write("README.md", &README.replace("{name}", name))?;
    write(".gitignore", "/target\n")?;
    if let Ok(lock) = std::fs::read_to_string(sdk.join("../Cargo.lock")) {
        write("Cargo.lock", &lock)?;
    }
    Ok(dir)
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A rule is a cdylib for wasm (what is uploaded) and an rlib for its native tests.
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
pricing-rule-sdk = { path = "{sdk}" }

# A crate of its own, whatever folder it sits in.
[workspace]

# What scripts/build-rules builds with: fast code, small, self-contained, abort on panic.
[profile.rules]
inherits = "release"
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
debug = false
"#;

const LIB_RS: &str = r#"//! A pricing rule: a margin over cost, never under the cheapest competitor by more than a
//! set amount. Edit it, run `cargo test`, build it to wasm and upload it (see the README).

use pricing_rule_sdk::{Bps, Context, Decision, Minor, Params, export_rule, pricing};

/// The parameters merchants set (`PUT /v1/rules/{version}/params`); the service checks them
/// against these declarations and hands the rule only values that passed.
#[derive(Params, Debug)]
pub struct Settings {
    /// Margin over cost, in basis points (2500 = 25 %).
    #[param(default = 2500, min = 0, max = 100_000)]
    pub margin_bps: Bps,
    /// At most this much over the cheapest in-stock competitor, in minor units; unset, no cap.
    #[param(min = 0)]
    pub max_over_cheapest: Option<Minor>,
}

pub fn policy(ctx: &Context, settings: &Settings) -> Decision {
    let Some(price) = pricing::price_for_margin(ctx.cost.minor, settings.margin_bps.0) else {
        return Decision::keep("the margin gives no price");
    };
    let cap = settings.max_over_cheapest.zip(pricing::cheapest_competitor(ctx, Some(24 * 3600)));
    match cap {
        Some((Minor(over), offer)) if price > offer.price.minor.saturating_add(over) => {
            let capped = offer.price.minor.saturating_add(over);
            Decision::set(capped, format!("capped at {over} over {}", offer.competitor))
        }
        _ => Decision::set(price, format!("{} bp over cost", settings.margin_bps.0)),
    }
}

export_rule!(policy, Settings);

#[cfg(test)]
mod tests {
    use super::*;
    use pricing_rule_sdk::testing::{ContextBuilder, decide};

    #[test]
    fn adds_the_margin_to_the_cost() {
        let ctx = ContextBuilder::new("tee", "EUR").cost(1000).build();
        assert_eq!(decide(policy, &ctx).price_minor(), Some(1250));
    }

    #[test]
    fn caps_the_price_over_the_cheapest_competitor() {
        let ctx = ContextBuilder::new("tee", "EUR")
            .cost(1000)
            .competitor("rival", 1100, true, 60)
            .param("max_over_cheapest", 50)
            .build();
        assert_eq!(decide(policy, &ctx).price_minor(), Some(1150));
    }
}
"#;

const README: &str = r#"# {name}

A pricing rule for the dynamic pricing service, in Rust, compiled to WebAssembly.

- `src/lib.rs`: the policy (`fn(&Context, &Settings) -> Decision`) and its declared parameters
  (`#[derive(Params)] struct Settings`), with unit tests.
- Test natively: `cargo test`.
- Build to wasm: `scripts/build-rules /path/to/{name}` from the service's repository; the module
  is written to `target/rules/{name}.wasm` here.
- Try it locally on a context: `pricing rule run --wasm target/rules/*.wasm --input context.json`.
- Replay it over decisions exported from the service:
  `pricing rule replay --wasm target/rules/*.wasm --decisions decisions.ndjson --fail-on-diff`.
- Upload: `curl -X POST $PRICING/v1/rules -H "Authorization: Bearer $KEY" -H 'Content-Type: application/wasm' --data-binary @target/rules/*.wasm`,
  then shadow, backtest and activate it (the service's README walks through them).
"#;
