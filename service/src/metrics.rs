//! Service metrics, recorded through the OpenTelemetry metrics API and read two ways: as
//! Prometheus text on `/metrics` (always) and over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set. Each `Application` has its own registry, so tests running several apps in one process
//! see only their own numbers.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::telemetry;

/// The repricing engine's numbers, read when metrics are collected.
#[derive(Debug, Clone, Default)]
pub struct RepricingReadings {
    pub evaluations: u64,
    /// Seconds each worker has spent evaluating.
    pub worker_busy_seconds: Vec<f64>,
    /// Products queued for evaluation, by merchant id.
    pub queued: Vec<(String, i64)>,
    /// Merchants with a catalogue sweep pending.
    pub sweeps: i64,
    /// Age of the oldest stored request, in seconds (0 when none).
    pub oldest_seconds: f64,
}

pub struct Metrics {
    registry: Registry,
    provider: SdkMeterProvider,
    http_requests: Counter<u64>,
    http_duration: Histogram<f64>,
    signal_rows: Counter<u64>,
    dead_letters: Counter<u64>,
    /// Messages the JetStream signal consumer has still to read, as last seen.
    feed_lag: Arc<AtomicU64>,
    price_events: Counter<u64>,
    webhook_failures: Counter<u64>,
    /// Chain records each price event channel has yet to look at, as last seen.
    outbox_depth: Arc<Mutex<BTreeMap<&'static str, i64>>>,
    held: Counter<u64>,
    breaker_trips: Counter<u64>,
    rule_failures: Counter<u64>,
    trial_evaluations: Counter<u64>,
    trial_busy: Counter<f64>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let prometheus = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .build()
            .expect("a fresh registry accepts the exporter");
        let mut builder = SdkMeterProvider::builder().with_resource(telemetry::resource()).with_reader(prometheus);
        if telemetry::otlp_enabled() {
            match opentelemetry_otlp::MetricExporter::builder().with_http().build() {
                Ok(exporter) => builder = builder.with_periodic_exporter(exporter),
                Err(e) => tracing::warn!(error = %e, "OTLP metric export disabled"),
            }
        }
        let provider = builder.build();
        let meter = provider.meter(telemetry::SERVICE_NAME);
        let http_requests = meter
            .u64_counter("http.server.requests")
            .with_description("HTTP requests answered, by route and status")
            .build();
        let http_duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Time to answer an HTTP request")
            .with_boundaries(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0, 10.0,
            ])
            .build();
        let signal_rows = meter
            .u64_counter("pricing.signals.rows")
            .with_description("Signal rows stored, by kind (competitor, demand)")
            .build();
        let dead_letters = meter
            .u64_counter("pricing.signals.dead_letters")
            .with_description("JetStream signal messages that could never be stored, copied to the dead-letter subject")
            .build();
        let feed_lag = Arc::new(AtomicU64::new(0));
        let lag = feed_lag.clone();
        meter
            .u64_observable_gauge("pricing.signals.feed.lag")
            .with_description("Messages the JetStream signal consumer has not yet delivered")
            .with_callback(move |o| o.observe(lag.load(Ordering::Relaxed), &[]))
            .build();
        let price_events = meter
            .u64_counter("pricing.price_events.published")
            .with_description("Price events published, by channel (jetstream, webhooks)")
            .build();
        let webhook_failures = meter
            .u64_counter("pricing.webhooks.failures")
            .with_description("Webhook deliveries that failed (each attempt)")
            .build();
        let outbox_depth = Arc::new(Mutex::new(BTreeMap::new()));
        let depth = outbox_depth.clone();
        meter
            .i64_observable_gauge("pricing.price_events.outbox_depth")
            .with_description("Decision records a price event channel has not yet published or passed")
            .with_callback(move |o| {
                for (channel, depth) in depth.lock().expect("the depth lock is not poisoned").iter() {
                    o.observe(*depth, &[KeyValue::new("channel", *channel)]);
                }
            })
            .build();
        let held = meter
            .u64_counter("pricing.decisions.held")
            .with_description("Rule changes held instead of moving a price, by reason")
            .build();
        let breaker_trips = meter
            .u64_counter("pricing.breaker.trips")
            .with_description("Circuit breaker trips (a merchant's automation paused), by the limit crossed")
            .build();
        let rule_failures = meter
            .u64_counter("pricing.rule.failures")
            .with_description("Recorded rule evaluations that failed, by the failure's kind")
            .build();
        let trial_evaluations = meter
            .u64_counter("pricing.trial.evaluations")
            .with_description(
                "Evaluations of shadowed and backtested versions, by trial kind and result (compared, skipped)",
            )
            .build();
        let trial_busy = meter
            .f64_counter("pricing.trial.busy")
            .with_unit("s")
            .with_description("Wall time spent evaluating shadowed and backtested versions, by trial kind")
            .build();
        Self {
            registry,
            provider,
            held,
            trial_evaluations,
            trial_busy,
            breaker_trips,
            rule_failures,
            http_requests,
            http_duration,
            signal_rows,
            dead_letters,
            feed_lag,
            price_events,
            webhook_failures,
            outbox_depth,
        }
    }

    /// Counts price events a channel (`jetstream`, `webhooks`) published.
    pub fn record_price_events(&self, channel: &'static str, events: u64) {
        if events > 0 {
            self.price_events.add(events, &[KeyValue::new("channel", channel)]);
        }
    }

    /// Counts held changes by reason (a fixed vocabulary).
    pub fn record_held(&self, reason: &'static str, held: u64) {
        self.held.add(held, &[KeyValue::new("reason", reason)]);
    }

    /// Counts a trial's evaluations (`result`: `compared` or `skipped`) and the time they took,
    /// kept apart from live repricing's metrics.
    pub fn record_trial(&self, kind: &'static str, result: &'static str, count: u64, busy: std::time::Duration) {
        let labels = [KeyValue::new("kind", kind), KeyValue::new("result", result)];
        self.trial_evaluations.add(count, &labels);
        if !busy.is_zero() {
            self.trial_busy.add(busy.as_secs_f64(), &[KeyValue::new("kind", kind)]);
        }
    }

    /// Counts recorded failed evaluations by kind (the sandbox's fixed vocabulary).
    pub fn record_rule_failures(&self, kind: &'static str, failed: u64) {
        self.rule_failures.add(failed, &[KeyValue::new("kind", kind)]);
    }

    /// Counts a breaker trip by the limit crossed (one of the breaker's field names).
    pub fn record_breaker_trip(&self, limit: String) {
        self.breaker_trips.add(1, &[KeyValue::new("limit", limit)]);
    }

    pub fn record_webhook_failure(&self) {
        self.webhook_failures.add(1, &[]);
    }

    pub fn set_outbox_depth(&self, channel: &'static str, depth: i64) {
        self.outbox_depth.lock().expect("the depth lock is not poisoned").insert(channel, depth);
    }

    /// Counts signal rows stored (over HTTP or from JetStream); `kind` is `competitor` or `demand`.
    pub fn record_signals(&self, kind: &'static str, rows: u64) {
        self.signal_rows.add(rows, &[KeyValue::new("kind", kind)]);
    }

    /// Counts one dead-lettered message of a kind (`competitor`, `demand` or `unknown`).
    pub fn record_dead_letter(&self, kind: &'static str) {
        self.dead_letters.add(1, &[KeyValue::new("kind", kind)]);
    }

    pub fn set_feed_lag(&self, pending: u64) {
        self.feed_lag.store(pending, Ordering::Relaxed);
    }

    /// Takes the method and route as owned or static text, so that recording copies neither.
    pub fn record_request(&self, method: Cow<'static, str>, route: String, status: u16, seconds: f64) {
        let attributes = [
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ];
        self.http_requests.add(1, &attributes);
        self.http_duration.record(seconds, &attributes);
    }

    /// Reports the repricing engine's readings: evaluations, each worker's busy time, queued
    /// products per merchant, pending sweeps and the oldest request's age.
    pub fn observe_repricing(&self, read: impl Fn() -> RepricingReadings + Send + Sync + 'static) {
        let meter = self.provider.meter(telemetry::SERVICE_NAME);
        let read = std::sync::Arc::new(read);
        let r = read.clone();
        meter
            .u64_observable_counter("pricing.reprice.evaluations")
            .with_description("Rule evaluations run by the repricing engine")
            .with_callback(move |o| o.observe(r().evaluations, &[]))
            .build();
        let r = read.clone();
        meter
            .f64_observable_counter("pricing.reprice.worker.busy")
            .with_unit("s")
            .with_description("Time each repricing worker has spent evaluating")
            .with_callback(move |o| {
                for (worker, seconds) in r().worker_busy_seconds.into_iter().enumerate() {
                    o.observe(seconds, &[KeyValue::new("worker", worker as i64)]);
                }
            })
            .build();
        let r = read.clone();
        meter
            .i64_observable_gauge("pricing.reprice.queued")
            .with_description("Products queued for repricing, by merchant")
            .with_callback(move |o| {
                for (merchant, queued) in r().queued {
                    o.observe(queued, &[KeyValue::new("merchant_id", merchant)]);
                }
            })
            .build();
        let r = read.clone();
        meter
            .i64_observable_gauge("pricing.reprice.sweeps")
            .with_description("Merchants with a catalogue reprice pending")
            .with_callback(move |o| o.observe(r().sweeps, &[]))
            .build();
        meter
            .f64_observable_gauge("pricing.reprice.oldest")
            .with_unit("s")
            .with_description("Age of the oldest stored repricing request")
            .with_callback(move |o| o.observe(read().oldest_seconds, &[]))
            .build();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding into memory does not fail");
        String::from_utf8(out).expect("the text exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}
