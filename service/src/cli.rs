//! The `pricing` command line: `serve`, `migrate`, `import`, `rule run` and `audit rotate-key`.

mod import;
pub mod new_rule;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::startup::Application;
use crate::{runner, store};

#[derive(Parser)]
#[command(name = "pricing", version, about = "Dynamic pricing service with WebAssembly merchant rules")]
pub struct Cli {
    /// A TOML settings file; `PRICING_*` variables override it.
    #[arg(long, global = true, env = "PRICING_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP service (migrating the database first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Import a catalogue file (CSV or NDJSON) through a running service, following the job.
    Import {
        /// The file; `.csv`, `.ndjson` or `.jsonl` says its format unless `--format` does.
        file: PathBuf,
        /// The service.
        #[arg(long, env = "PRICING_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A `merchant` key of the catalogue's merchant.
        #[arg(long, env = "PRICING_KEY")]
        key: String,
        #[arg(long, value_parser = ["csv", "ndjson"])]
        format: Option<String>,
        /// `upsert` keeps products the file leaves out; `replace` deletes them.
        #[arg(long, default_value = "upsert", value_parser = ["upsert", "replace"])]
        mode: String,
        /// Write every line or none.
        #[arg(long)]
        atomic: bool,
    },
    /// Work with pricing rules locally.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Manage the audit trail's checkpoint signing keys.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Make a new active signing key in `audit.keys_dir` and retire the old one (its public
    /// half is kept so its checkpoints still verify). Restart the service to sign with it.
    RotateKey,
}

#[derive(Subcommand)]
pub enum RuleCommand {
    /// Evaluate a rule on one context with the service's limits, and print what happened.
    Run {
        /// The rule: a component, or a core module built with wit-bindgen.
        #[arg(long)]
        wasm: PathBuf,
        /// The context as JSON (see the README for its shape).
        #[arg(long)]
        input: PathBuf,
        /// The rule's parameters as a JSON object.
        #[arg(long)]
        params: Option<PathBuf>,
    },
    /// Scaffold a rule crate (its policy, tests, README and build settings) anywhere.
    New {
        /// The crate's name (lower-case, digits and `-`).
        name: String,
        /// The folder to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The rule SDK's folder (default: the one this binary was built beside).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Replay a local build over decisions exported from the service
    /// (`GET /v1/decisions/export?format=ndjson`) and print the decisions that differ.
    Replay {
        /// The rule: a component, or a core module built with wit-bindgen.
        #[arg(long)]
        wasm: PathBuf,
        /// The exported decisions, one per line.
        #[arg(long)]
        decisions: PathBuf,
        /// Parameters to use instead of each record's own, as a JSON object.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Exit with status 1 when any decision differs (for CI).
        #[arg(long)]
        fail_on_diff: bool,
    },
}

/// How `pricing rule run` ended, for its exit code.
pub enum Outcome {
    Done,
    /// The rule was refused or failed, or an import failed: exit code 1.
    Failed,
}

pub async fn run(command: Command, settings: Settings) -> Result<Outcome, Box<dyn std::error::Error>> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            if let Some(key) = app.generated_admin_key() {
                // Printed, never logged: this is the one time the secret exists outside a client.
                println!(
                    "No admin key was configured or stored, so one was generated. It is shown only now:\n\n    {key}\n"
                );
            }
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let store = store::connect(&settings.database_url, &settings.store).await?;
            println!("{} database is migrated", store.backend().as_str());
            store.close().await;
        }
        Command::Import { file, url, key, format, mode, atomic } => {
            let request = import::ImportRequest {
                file: &file,
                url: &url,
                key: &key,
                format: format.as_deref(),
                mode: &mode,
                atomic,
            };
            let job = import::import(request).await?;
            println!("{}", import::summary(&job));
            if job["state"] != "completed" {
                return Ok(Outcome::Failed);
            }
        }
        Command::Audit(AuditCommand::RotateKey) => {
            let id = crate::audit::keys::rotate(&settings.audit.keys_dir)?;
            println!("checkpoints are now signed with key {id} (after a restart); older keys still verify");
        }
        Command::Rule(RuleCommand::Run { wasm, input, params }) => {
            let window = settings.pricing.stale_after_secs;
            let report = runner::run(&settings.sandbox, &wasm, &input, params.as_deref(), window).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.error.is_some() {
                return Ok(Outcome::Failed);
            }
        }
        Command::Rule(RuleCommand::New { name, dir, sdk }) => {
            let sdk = sdk.or_else(new_rule::default_sdk).ok_or("no rule SDK found: give --sdk PATH")?;
            let made = new_rule::scaffold(&name, &dir, &sdk)?;
            println!(
                "created {}: `cargo test` there tests it natively; `scripts/build-rules {}` builds it to wasm",
                made.display(),
                made.display()
            );
        }
        Command::Rule(RuleCommand::Replay { wasm, decisions, params, fail_on_diff }) => {
            let summary = runner::replay::replay(&settings.sandbox, &wasm, &decisions, params.as_deref()).await?;
            for difference in &summary.differences {
                println!("{}", runner::replay::describe(difference));
            }
            println!(
                "replayed {} decisions: {} differ, {} the same; {} passed over (not a rule's evaluation)",
                summary.replayed,
                summary.differences.len(),
                summary.same,
                summary.passed_over
            );
            if fail_on_diff && !summary.differences.is_empty() {
                return Ok(Outcome::Failed);
            }
        }
    }
    Ok(Outcome::Done)
}
