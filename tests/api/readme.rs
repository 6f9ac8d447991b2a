//! The README's walkthrough, run as written against a freshly started service, so that what
//! it promises a new user stays true.

use std::process::Command;

use crate::common::Backend;
use crate::helpers::spawn_app;

/// The `n`th (0-based) ```bash block after the heading `## {section}`.
fn bash_block(readme: &str, section: &str, n: usize) -> String {
    let start = readme.find(&format!("\n## {section}\n")).unwrap_or_else(|| panic!("README has no `## {section}`"));
    let rest = &readme[start..];
    let rest = &rest[..rest[4..].find("\n## ").map_or(rest.len(), |end| end + 4)];
    rest.split("```bash\n")
        .nth(n + 1)
        .and_then(|block| block.split("\n```").next())
        .unwrap_or_else(|| panic!("`## {section}` has no bash block {n}"))
        .to_owned()
}

#[tokio::test]
async fn the_readme_walkthrough_works_when_pasted_into_a_shell() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let script = bash_block(&readme, "Walkthrough", 1);
    // The walkthrough builds a rule; build it first, as the rest of the suite does, so its own
    // build is a quick no-op.
    crate::common::rules::built_rule("cost-plus");
    let app = spawn_app(Backend::Sqlite).await;
    let address = app.address.clone();
    let admin_key = app.admin_key.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["120", "bash", "-euo", "pipefail", "-c", &script])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("PRICING_URL", address)
            .env("PRICING_ADMIN_KEY", admin_key)
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("merchant: "), "{stdout}");
    assert!(stdout.contains(r#""sku":"tshirt-red-m""#), "{stdout}");
    assert!(stdout.contains(r#""code":"validation_failed""#), "{stdout}");
    assert!(stdout.contains("rule version: 1"), "{stdout}");
    assert!(stdout.contains(r#""price_minor":1499"#), "the dry run shows 14.99: {stdout}");
    assert!(stdout.contains(r#""active_version":1"#), "{stdout}");
    assert!(stdout.contains(r#""trigger":"rule_activated""#), "the history shows the activation: {stdout}");
    assert!(stdout.contains(r#""intact":true"#), "{stdout}");
    assert!(stdout.contains(r#""trigger":"product_created""#), "the feed starts with the creation: {stdout}");
    assert!(stdout.contains("seq,created_at,sku,trigger"), "the CSV export's header: {stdout}");
    assert!(stdout.contains(r#""valid":true"#), "the checkpoint checks: {stdout}");
    assert!(stdout.contains(r#""prior_price_minor":1999"#), "the prior price is the base price: {stdout}");
    assert!(stdout.contains(r#""state":"pending","reason":"large_increase""#), "a proposal is held: {stdout}");
    assert!(stdout.contains(r#""outcome":"changed","price_minor":1999}"#), "its approval moves the price: {stdout}");
    assert!(stdout.contains(r#"{"state":"frozen""#), "automation freezes: {stdout}");
    assert!(stdout.contains(r#""state":"active""#), "the campaign is in force: {stdout}");
    assert!(stdout.contains(r#""price_minor":1599,"#), "at 20 % off: {stdout}");
    assert!(stdout.contains(r#""trigger":"override_ended""#), "its end is a decision: {stdout}");
    assert!(stdout.contains("review page: http"), "{stdout}");
    let products = app.store.products(first_merchant(&stdout), None, 10).await.unwrap();
    assert_eq!(products.len(), 1, "exactly the one valid product was stored");
}

fn first_merchant(stdout: &str) -> pricing::domain::MerchantId {
    let line = stdout.lines().find_map(|l| l.strip_prefix("merchant: ")).unwrap();
    pricing::domain::MerchantId::parse(line.trim()).unwrap()
}
