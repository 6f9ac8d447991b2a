//! A merchant's own rule, written outside this repository: scaffolded by `pricing rule new`,
//! tested natively, built by `scripts/build-rules PATH`, uploaded and run; then one constant
//! changed, and `pricing rule replay` over the service's export finds exactly the decisions
//! that change.

use std::path::Path;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::Backend;
use crate::common::rules::workspace;
use crate::helpers::{expect_status, spawn_app};

/// A tiered rule: double the cost up to the threshold, half again over it.
const TIERED: &str = r#"
use pricing_rule_sdk::{Context, Decision, Params, export_rule};

const THRESHOLD_MINOR: i64 = 2000;

#[derive(Params, Debug)]
pub struct Settings {
    /// Added to every price, in minor units.
    #[param(default = 0, min = 0)]
    pub extra: pricing_rule_sdk::Minor,
}

pub fn policy(ctx: &Context, settings: &Settings) -> Decision {
    let cost = ctx.cost.minor;
    let price = if cost > THRESHOLD_MINOR { cost * 3 / 2 } else { cost * 2 };
    let tier = if cost > THRESHOLD_MINOR { "upper tier" } else { "lower tier" };
    Decision::set(price + settings.extra.0, tier)
}

export_rule!(policy, Settings);
"#;

fn run(command: &mut Command, what: &str) -> std::process::Output {
    command.output().unwrap_or_else(|e| panic!("{what} did not start: {e}"))
}

fn must(output: std::process::Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn build(crate_dir: &Path) -> Vec<u8> {
    must(
        run(Command::new("bash").arg(workspace().join("scripts/build-rules")).arg(crate_dir), "build-rules"),
        "scripts/build-rules PATH",
    );
    std::fs::read(crate_dir.join("target/rules/tiered.wasm")).expect("the module is where the README says")
}

fn replay(wasm: &Path, export: &Path) -> (bool, String) {
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_pricing"))
            .args(["rule", "replay", "--fail-on-diff", "--wasm"])
            .arg(wasm)
            .arg("--decisions")
            .arg(export),
        "pricing rule replay",
    );
    assert!(output.stderr.is_empty() || output.status.code() == Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn a_rule_scaffolded_outside_the_repository_builds_tests_uploads_runs_and_replays() {
    let outside = std::env::temp_dir().join(format!("own-rule-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&outside).unwrap();
    let said = must(
        run(Command::new(env!("CARGO_BIN_EXE_pricing")).args(["rule", "new", "tiered", "--dir"]).arg(&outside), "new"),
        "pricing rule new",
    );
    let crate_dir = outside.join("tiered");
    assert!(said.contains("created"), "{said}");
    for file in ["Cargo.toml", "src/lib.rs", "README.md", "Cargo.lock"] {
        assert!(crate_dir.join(file).is_file(), "the scaffold has {file}");
    }
    // The scaffold's own tests pass natively, with plain cargo (a target folder shared by runs).
    let native = workspace().join("target/scaffolded-rules");
    must(
        run(
            Command::new("cargo")
                .args(["test", "--offline", "-q"])
                .current_dir(&crate_dir)
                .env("CARGO_TARGET_DIR", &native),
            "cargo test",
        ),
        "cargo test in the scaffolded crate",
    );

    // The merchant's own policy, built and uploaded.
    std::fs::write(crate_dir.join("src/lib.rs"), TIERED).unwrap();
    let first = build(&crate_dir);
    let original = outside.join("tiered-2000.wasm");
    std::fs::write(&original, &first).unwrap();
    let app = spawn_app(Backend::Sqlite).await;
    let (_, key) = app.merchant_with_key(&["merchant", "auditor", "checkout"]).await;
    let created = expect_status(app.upload_rule(&key, first).await, StatusCode::CREATED).await;
    assert_eq!(created["params_schema"][0]["name"], "extra", "{created}");
    let version = created["version"].as_i64().unwrap();
    expect_status(
        app.call(Method::POST, &format!("/v1/rules/{version}/activate"), Some(&key), None).await,
        StatusCode::OK,
    )
    .await;
    let costs = [1000, 1800, 2200, 2400, 2600, 3000];
    for cost in costs {
        let body = json!({"currency": "EUR", "cost_minor": cost, "base_price_minor": 5000});
        expect_status(app.put_product(&key, &format!("p-{cost}"), body).await, StatusCode::CREATED).await;
    }
    app.engine.settled().await;
    for cost in costs {
        let price = expect_status(
            app.call(Method::GET, &format!("/v1/prices/p-{cost}"), Some(&key), None).await,
            StatusCode::OK,
        )
        .await;
        let want = if cost > 2000 { cost * 3 / 2 } else { cost * 2 };
        assert_eq!(price["price_minor"], want, "p-{cost}");
    }

    // The service's export, replayed: the same build finds no difference.
    let response = app.call(Method::GET, "/v1/decisions/export?format=ndjson", Some(&key), None).await;
    let export = outside.join("decisions.ndjson");
    std::fs::write(&export, response.bytes().await.unwrap()).unwrap();
    let (same, said) = replay(&original, &export);
    assert!(same, "{said}");
    assert!(said.contains(&format!("replayed {} decisions: 0 differ", costs.len())), "{said}");

    // One constant changed: exactly the products with a cost from 2001 to 2500 differ.
    std::fs::write(crate_dir.join("src/lib.rs"), TIERED.replace("= 2000;", "= 2500;")).unwrap();
    let changed = outside.join("tiered-2500.wasm");
    std::fs::write(&changed, build(&crate_dir)).unwrap();
    let (same, said) = replay(&changed, &export);
    assert!(!same, "--fail-on-diff fails: {said}");
    let mut differing: Vec<&str> =
        said.lines().filter(|l| l.starts_with("decision ")).map(|l| l.split_whitespace().nth(2).unwrap()).collect();
    differing.sort_unstable();
    assert_eq!(differing, ["p-2200:", "p-2400:"], "{said}");
    assert!(said.contains("recorded 3300") && said.contains("local 4400"), "both prices shown: {said}");
    std::fs::remove_dir_all(&outside).ok();
}
