//! Logging and tracing.
//!
//! Logs: JSON lines in prod, human-readable in dev; `RUST_LOG` overrides `log_filter`. Every
//! line inside a request carries its `request_id` (found on the request's span, however deep
//! the line is logged), and, when tracing is on, the `trace_id` and `span_id` it was logged in.
//!
//! Tracing (OpenTelemetry): off unless `otlp_endpoint` is set. Then every `tracing` span the
//! filter lets through — HTTP requests, database transactions, Redis calls, outbox
//! publications, consumers, scheduled jobs — is also an OpenTelemetry span, sampled at
//! `otlp_sample_ratio` for new traces (a caller's or a message's sampling decision is followed),
//! and exported over OTLP/HTTP by a batch processor on its own thread with a bounded queue: a
//! slow or absent collector drops spans, it never holds up a request.

use std::time::Duration;

use anyhow::Context as _;
use depot_app::config::{LogFormat, Settings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::util::SubscriberInitExt;

/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps the span exporter alive; dropping it flushes what is buffered and stops it. Drop it
/// outside the async runtime (the exporter's HTTP client is a blocking one).
#[must_use = "tracing stops when this is dropped"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("warning: flushing trace spans failed: {err}");
        }
    }
}

/// Installs the global subscriber, writing to stdout (`to_stdout`, servers) or stderr
/// (one-shot commands, whose stdout is their result). Safe to call more than once (later calls
/// do nothing). `service` names this process in traces (`depot-api`, `depot-worker`, …).
pub fn init(settings: &Settings, to_stdout: bool, service: &str) -> Telemetry {
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
    let provider = settings.otlp_endpoint.as_deref().and_then(|endpoint| {
        tracer_provider(endpoint, settings.otlp_sample_ratio, service)
            .inspect_err(|err| eprintln!("warning: tracing stays off: {err:#}"))
            .ok()
    });
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("depot"))
            .with_error_events_to_status(true)
            .with_threads(false)
            .with_tracked_inactivity(false)
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(RequestIds);
    let _ = match settings.log_format() {
        LogFormat::Json => registry.with(json_layer(writer())).try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(writer()))
            .try_init(),
    };
    Telemetry { provider }
}

/// Spans exported to `<endpoint>/v1/traces` in batches, new traces sampled at `ratio`.
fn tracer_provider(endpoint: &str, ratio: f64, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("cannot build the OTLP span exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build())
}

/// JSON lines: time, level, target, the event's fields at the top level, the current span, and
/// the request id, trace id and span id of where the line was logged.
fn json_layer<S>(writer: BoxMakeWriter) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut layer = json_subscriber::fmt::layer()
        .with_writer(writer)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false);
    let inner = layer.inner_layer_mut();
    inner.add_from_span("request_id", |span| {
        span.scope()
            .find_map(|s| s.extensions().get::<RequestIdOf>().map(|r| r.0.clone()))
    });
    inner.add_from_span("trace_id", |span| otel_ids(span).map(|(trace, _)| trace));
    inner.add_from_span("span_id", |span| otel_ids(span).map(|(_, span)| span));
    layer
}

/// The OpenTelemetry trace and span ids of `span`, when tracing is on and it is being traced.
fn otel_ids<S>(span: &SpanRef<'_, S>) -> Option<(String, String)>
where
    S: for<'a> LookupSpan<'a>,
{
    use opentelemetry::trace::TraceContextExt as _;
    tracing::dispatcher::get_default(|dispatch| {
        let context = tracing_opentelemetry::get_otel_context(&span.id(), dispatch)?;
        let otel = context.span();
        let ids = otel.span_context();
        ids.is_valid()
            .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
    })
}

/// The request id a span was opened with (its `request_id` field), kept with the span so every
/// line logged inside it, at any depth, can name it.
struct RequestIdOf(String);

/// Remembers the `request_id` field of the spans that have one.
struct RequestIds;

impl<S> Layer<S> for RequestIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut found = FindRequestId(None);
        attrs.record(&mut found);
        if let (Some(request_id), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().insert(RequestIdOf(request_id));
        }
    }
}

struct FindRequestId(Option<String>);

impl Visit for FindRequestId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "request_id" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "request_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}
