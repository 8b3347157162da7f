//! What happens to traced bus messages: each one becomes a span.
//!
//! Pages and clients only carry the W3C trace context in the message headers (see
//! `weft_proto::trace_context`); the broker reports every routed message that has one
//! to the observer made here. Built with the `otlp` feature and given a collector
//! (`tracing.otlp_endpoint` in config.toml, or `OTEL_EXPORTER_OTLP_ENDPOINT`), the shell
//! exports one span per message over OTLP/HTTP, with the message's own span id and its
//! cause as parent, so a chain of messages across apps is one trace. Otherwise traced
//! messages are logged at debug level (target `weft::trace`).

use std::sync::Arc;

use weft_broker::{TraceObserver, TracedMessage};

#[cfg(feature = "otlp")]
use anyhow::Context as _;

use crate::config::{Config, without_url_credentials};

/// The environment variable OpenTelemetry SDKs read for the collector's address.
const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Logs traced messages.
#[derive(Debug)]
struct TraceLog;

impl TraceObserver for TraceLog {
    fn routed(&self, m: &TracedMessage<'_>) {
        log(m);
    }
}

fn log(m: &TracedMessage<'_>) {
    tracing::debug!(
        target: "weft::trace",
        trace_id = %m.trace.span.trace_id_hex(),
        span_id = %m.trace.span.span_id_hex(),
        caused_by = m.trace.caused_by.map(hex_id).as_deref(),
        kind = m.kind.as_str(),
        topic = m.topic,
        sender = %m.sender,
        delivered = m.delivered,
        "traced message"
    );
}

fn hex_id(id: [u8; 8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps the export running; dropping it flushes what is left.
pub struct ExportGuard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for ExportGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!("flushing the trace export failed: {e}");
        }
    }
}

/// The collector to export to, from the config file or the environment.
fn endpoint(config: &Config) -> Option<String> {
    config
        .tracing
        .otlp_endpoint
        .clone()
        .or_else(|| std::env::var(OTLP_ENDPOINT_ENV).ok())
        .filter(|e| !e.is_empty())
}

/// The broker's trace observer for this shell, if traced messages go anywhere.
pub fn observer(config: &Config) -> anyhow::Result<(Option<Arc<dyn TraceObserver>>, ExportGuard)> {
    let endpoint = endpoint(config);
    // Logged without any credentials the address may hold.
    let shown = endpoint
        .as_deref()
        .map(|e| without_url_credentials(e).unwrap_or_else(|| e.to_owned()));
    #[cfg(feature = "otlp")]
    if let (Some(endpoint), Some(shown)) = (&endpoint, &shown) {
        let export = otlp::OtlpExport::start(endpoint)
            .with_context(|| format!("setting up the OTLP export to {shown}"))?;
        let provider = Some(export.provider());
        tracing::info!("exporting traced messages to {shown} (OTLP/HTTP)");
        return Ok((Some(Arc::new(export)), ExportGuard { provider }));
    }
    #[cfg(not(feature = "otlp"))]
    if let Some(shown) = shown {
        tracing::warn!(
            "this weft was built without the `otlp` feature: traces are not exported to {shown}"
        );
    }
    let logging = tracing::enabled!(target: "weft::trace", tracing::Level::DEBUG);
    let observer = logging.then(|| Arc::new(TraceLog) as Arc<dyn TraceObserver>);
    Ok((
        observer,
        ExportGuard {
            #[cfg(feature = "otlp")]
            provider: None,
        },
    ))
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::time::{Duration, SystemTime};

    use opentelemetry::{
        Context, KeyValue,
        trace::{
            SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
            Tracer, TracerProvider,
        },
    };
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::{
        Resource,
        trace::{Sampler, SdkTracer, SdkTracerProvider},
    };
    use weft_broker::{MessageKind, TraceObserver, TracedMessage};

    /// Exports each traced message as a span.
    #[derive(Debug)]
    pub struct OtlpExport {
        provider: SdkTracerProvider,
        tracer: SdkTracer,
    }

    impl OtlpExport {
        /// Starts exporting to the collector at `endpoint` (its base URL).
        pub fn start(endpoint: &str) -> anyhow::Result<Self> {
            let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(url)
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_sampler(Sampler::AlwaysOn)
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("weft").build())
                .build();
            let tracer = provider.tracer("weft-bus");
            Ok(Self { provider, tracer })
        }

        pub fn provider(&self) -> SdkTracerProvider {
            self.provider.clone()
        }
    }

    fn time(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    impl TraceObserver for OtlpExport {
        fn routed(&self, m: &TracedMessage<'_>) {
            super::log(m);
            let trace_id = TraceId::from_bytes(m.trace.span.trace_id);
            let parent = match m.trace.caused_by {
                Some(cause) => Context::new().with_remote_span_context(SpanContext::new(
                    trace_id,
                    SpanId::from_bytes(cause),
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::default(),
                )),
                None => Context::new(),
            };
            let kind = match m.kind {
                MessageKind::Publish | MessageKind::Send => SpanKind::Producer,
                MessageKind::Request | MessageKind::Dispatch => SpanKind::Client,
            };
            let span = self
                .tracer
                .span_builder(format!("{} {}", m.kind.as_str(), m.topic))
                .with_trace_id(trace_id)
                .with_span_id(SpanId::from_bytes(m.trace.span.span_id))
                .with_kind(kind)
                .with_start_time(time(m.ts_ms))
                .with_end_time(time(m.routed_ms.max(m.ts_ms)))
                .with_attributes([
                    KeyValue::new("messaging.system", "weft"),
                    KeyValue::new("messaging.operation.type", m.kind.as_str()),
                    KeyValue::new("messaging.destination.name", m.topic.to_owned()),
                    KeyValue::new("weft.sender.app_id", m.sender.app_id.clone()),
                    KeyValue::new("weft.sender.instance_id", m.sender.instance_id.clone()),
                    KeyValue::new("weft.delivered", m.delivered as i64),
                    KeyValue::new("weft.dropped", m.dropped as i64),
                ])
                .start_with_context(&self.tracer, &parent);
            // The end time was given: the span is complete and goes to the exporter.
            drop(span);
        }
    }
}
