//! `depot openapi`.

use std::process::ExitCode;

/// Prints the OpenAPI document (pretty JSON) to stdout.
pub fn print() -> ExitCode {
    match serde_json::to_string_pretty(&depot_http::openapi()) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
