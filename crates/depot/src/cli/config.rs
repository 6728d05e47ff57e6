//! `depot config check`.

use std::process::ExitCode;

use clap::Subcommand;
use depot_app::config::{LoadedConfig, Secret};

use super::EXIT_CONFIG;

#[derive(Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration (secrets redacted) with each value's source, then
    /// every problem found.
    Check,
}

/// Prints every key with its (redacted) value and source, then every problem; exits
/// [`EXIT_CONFIG`] when there is one. Writes nothing, not even dev secrets.
pub fn check(loaded: &LoadedConfig) -> ExitCode {
    println!("{:<28} {:<48} source", "key", "value");
    for (key, value, source) in loaded.describe() {
        let value = match value {
            serde_json::Value::Null => "(unset)".to_owned(),
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        println!("{key:<28} {value:<48} {source}");
    }
    let mut settings = loaded.settings.clone();
    if !settings.is_prod() && (settings.jwt_secret.is_none() || settings.app_secret.is_none()) {
        println!(
            "\nnote: dev profile: missing secrets are generated in {} at start",
            settings.data_dir.display()
        );
        // Validate as the server would see it, without writing anything.
        settings
            .jwt_secret
            .get_or_insert_with(|| Secret::new("x".repeat(64)));
        settings
            .app_secret
            .get_or_insert_with(|| Secret::new("y".repeat(64)));
    }
    match settings.validate() {
        Ok(()) => {
            println!("\nconfiguration is valid ({:?} profile)", settings.profile);
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("\n{problems}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
