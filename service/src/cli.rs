//! The `pricing` command line: `serve` and `migrate`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::startup::Application;
use crate::store;

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
}

pub async fn run(command: Command, settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
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
            println!("{} database is migrated", store.backend());
            store.close().await;
        }
    }
    Ok(())
}
