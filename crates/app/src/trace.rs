//! Trace context across process boundaries (W3C `traceparent`).
//!
//! The spans themselves are plain `tracing` spans; when tracing is on (`otlp_endpoint`), the
//! binary's subscriber turns them into OpenTelemetry spans. This module moves a trace from a
//! request into the events it emits and from an event into the consumer that handles it: the
//! HTTP layer continues a caller's `traceparent`, [`crate::uow::UnitOfWork::emit`] stamps each
//! event with the current one, the relay re-stamps it with its publication span, and a
//! consumer's span continues it. With tracing off every function here is a cheap no-op.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` naming the current span, when a trace is being kept.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The `traceparent` naming `span`, when a trace is being kept (tracing on, span enabled).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` continue the trace that `traceparent` names (a caller's, or the publication of
/// a message). Call it right after creating the span, before anything is logged in it. An
/// absent or malformed value leaves `span` the root of a new trace.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Fails only when tracing is off or the span has already started: nothing to join.
        let _ = span.set_parent(parent);
    }
}

/// Names `span` in its trace once its name is known (an HTTP request's span learns its route
/// after routing); the name it was opened with stays in the logs.
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_tracing_subscriber_nothing_is_carried() {
        let span = tracing::info_span!("work");
        continue_trace(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(traceparent_of(&span), None);
        assert_eq!(current_traceparent(), None);
    }

    #[test]
    fn a_span_continues_the_trace_it_is_given_and_names_itself_in_it() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("request");
            continue_trace(&span, Some(caller));
            let own = traceparent_of(&span).unwrap_or_default();
            assert!(
                own.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{own}"
            );
            assert!(own.ends_with("-01"), "{own}");
            assert_ne!(own, caller, "the span names itself, not its parent");

            // A child span in the same trace; the current one is what events are stamped with.
            let child = span.in_scope(|| {
                let child = tracing::info_span!("step");
                child.in_scope(current_traceparent)
            });
            assert!(child.is_some_and(|c| c.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")));

            // A malformed value starts a new trace instead.
            let fresh = tracing::info_span!("request");
            continue_trace(&fresh, Some("00-nonsense"));
            let fresh = traceparent_of(&fresh).unwrap_or_default();
            assert!(
                fresh.starts_with("00-") && !fresh.contains("4bf92f3577b34da6a3ce929d0e0e4736")
            );
        });
    }
}
