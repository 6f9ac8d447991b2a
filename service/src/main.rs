//! `pricing`: parse the command line, load settings, start telemetry, run.

use std::process::ExitCode;

use clap::Parser;
use pricing::cli::{self, Cli, Outcome};
use pricing::config::Settings;
use pricing::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("pricing: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = telemetry::init(&settings.log);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime starts");
    let outcome = runtime.block_on(cli::run(cli.command, settings));
    drop(runtime);
    match outcome {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!(error = %e, "pricing failed");
            eprintln!("pricing: {e}");
            ExitCode::FAILURE
        }
    }
}
