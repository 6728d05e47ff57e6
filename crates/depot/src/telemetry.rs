//! Logging: JSON lines in prod, human-readable in dev; `RUST_LOG` overrides `log_filter`.
//! Every line inside a request carries its `request_id` (from the request span).

use depot_app::config::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber, writing to stdout (`to_stdout`, servers) or stderr
/// (one-shot commands, whose stdout is their result). Safe to call more than once (later calls
/// do nothing).
pub fn init(settings: &Settings, to_stdout: bool) {
    let writer = move || -> BoxMakeWriter {
        if to_stdout {
            BoxMakeWriter::new(std::io::stdout)
        } else {
            BoxMakeWriter::new(std::io::stderr)
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.log_format() {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer())
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(writer()))
            .try_init(),
    };
}
