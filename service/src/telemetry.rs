//! Logging and tracing: `tracing` everywhere, printed as pretty text or JSON, and exported as
//! OpenTelemetry traces over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard
//! `OTEL_*` variables configure the exporter). Logs go to standard error; standard output is
//! kept for what a command prints (a generated admin key, the rule runner's report).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings};

pub const SERVICE_NAME: &str = "pricing";

/// Keeps the exporters alive; dropping it flushes what is buffered.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

/// True when the environment asks for OTLP export.
pub fn otlp_enabled() -> bool {
    std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some_and(|v| !v.is_empty())
        || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some_and(|v| !v.is_empty())
}

pub fn resource() -> Resource {
    Resource::builder().with_service_name(SERVICE_NAME).build()
}

/// Installs the process-wide subscriber. Call once, before the async runtime starts (the
/// OTLP exporter uses a blocking HTTP client on its own thread).
pub fn init(settings: &LogSettings) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let fmt = match settings.format {
        LogFormat::Json => {
            // Standard error, like the pretty format: standard output is for what commands print.
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_current_span(true)
                .with_span_list(false)
                .boxed()
        }
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).boxed(),
    };
    let (otel, tracer_provider) = match otlp_enabled().then(build_tracer_provider) {
        Some(Ok(provider)) => {
            let tracer = provider.tracer(SERVICE_NAME);
            (Some(tracing_opentelemetry::layer().with_tracer(tracer)), Some(provider))
        }
        Some(Err(e)) => {
            eprintln!("OTLP trace export disabled: {e}");
            (None, None)
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).init();
    Telemetry { tracer_provider }
}

fn build_tracer_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    Ok(SdkTracerProvider::builder().with_resource(resource()).with_batch_exporter(exporter).build())
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}
