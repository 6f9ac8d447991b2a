//! Signals from NATS JetStream: when `nats.url` is set, `pricing serve` consumes competitor
//! observations and demand events from the stream `nats.signal_stream` (created when missing,
//! file storage) with the durable pull consumer `nats.consumer` (explicit acks; replicas share
//! it and so split the messages).
//!
//! - **Subjects carry the merchant**: `<nats.signal_prefix>.<merchant id>.competitor` and
//!   `.demand`. The service trusts the subject, so who may publish to a merchant's subjects is
//!   NATS's to decide (accounts and permissions, README "Feeds over NATS").
//! - **Bodies** are the JSON of one HTTP entry, or of a whole HTTP batch
//!   (`{"observations": [...]}`, `{"events": [...]}`), checked as over HTTP: a message with a
//!   bad entry is refused whole.
//! - **Acknowledged only after its rows commit.** The messages of one fetch (up to
//!   `nats.fetch_batch`) are grouped by merchant and kind and each group is stored in one
//!   transaction, then acknowledged. A crash before the ack means redelivery, which the ids
//!   make harmless (the latest-observation rule and the events' dedup window), so nothing is
//!   lost or counted twice.
//! - **A message that can never be stored** (not JSON, the wrong shape, a bad entry, an unknown
//!   merchant or subject, over a quota, a currency that differs from its product's) is copied
//!   with its error (headers `Pricing-Error`, `Pricing-Error-Code`, `Pricing-Subject`) to
//!   `<nats.dead_letter_prefix>.<merchant id or "unknown">.<kind>`, kept in the stream
//!   `nats.dead_letter_stream`, and then terminated: never retried forever, never blocking the
//!   rest. When a group fails that way, its messages are stored one at a time so that only the
//!   bad ones are dead-lettered.
//! - **The store unavailable** (an outage, lasting contention): the group is negatively
//!   acknowledged with a delay and comes back.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::Message;
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use serde::Deserialize;

use super::input::{DemandBatch, DemandInput, ObservationBatch, ObservationInput};
use crate::config::{NatsSettings, PricingSettings};
use crate::domain::{Invalid, MerchantId};
use crate::metrics::Metrics;
use crate::store::{DemandEvent, Observation, StoreError};
use crate::write::{Prices, SignalQuotas, WrongCurrencies};

/// What a subject's last part names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FeedKind {
    Competitor,
    Demand,
}

impl FeedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Competitor => "competitor",
            FeedKind::Demand => "demand",
        }
    }
}

/// The checked signals of one message.
enum Signals {
    Observations(Vec<Observation>),
    Demand(Vec<DemandEvent>),
}

/// Why a message can never be stored.
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// One entry, or a batch, as a message body.
#[derive(Deserialize)]
#[serde(untagged)]
enum Body<B, E> {
    Batch(B),
    One(E),
}

/// The merchant and kind a subject names, `<prefix>.<merchant id>.<kind>`.
fn parse_subject(prefix: &str, subject: &str) -> Result<(MerchantId, FeedKind), Refusal> {
    let unknown = || Refusal::new("unknown_subject", format!("{subject} is not {prefix}.<merchant id>.<kind>"));
    let rest = subject.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')).ok_or_else(unknown)?;
    let (merchant, kind) = rest.split_once('.').ok_or_else(unknown)?;
    let kind = match kind {
        "competitor" => FeedKind::Competitor,
        "demand" => FeedKind::Demand,
        _ => return Err(unknown()),
    };
    let merchant = merchant.parse::<MerchantId>().map_err(|_| unknown())?;
    Ok((merchant, kind))
}

fn invalid(invalid: Invalid) -> Refusal {
    Refusal::new("validation_failed", invalid.to_string())
}

/// A body's signals, checked as over HTTP.
fn parse_body(kind: FeedKind, payload: &[u8], settings: &PricingSettings) -> Result<Signals, Refusal> {
    let not_json = |e: serde_json::Error| {
        let code = if e.is_data() { "invalid_body" } else { "invalid_json" };
        Refusal::new(code, e.to_string())
    };
    match kind {
        FeedKind::Competitor => {
            let batch =
                match serde_json::from_slice::<Body<ObservationBatch, ObservationInput>>(payload).map_err(not_json)? {
                    Body::Batch(batch) => batch,
                    Body::One(one) => ObservationBatch { observations: vec![one] },
                };
            Ok(Signals::Observations(batch.into_observations(settings).map_err(invalid)?))
        }
        FeedKind::Demand => {
            let batch = match serde_json::from_slice::<Body<DemandBatch, DemandInput>>(payload).map_err(not_json)? {
                Body::Batch(batch) => batch,
                Body::One(one) => DemandBatch { events: vec![one] },
            };
            Ok(Signals::Demand(batch.into_events(settings).map_err(invalid)?))
        }
    }
}

/// A store error: refused for good, or to be tried again later.
enum Failure {
    Refused(Refusal),
    Retry(String),
}

fn failure(e: StoreError) -> Failure {
    match e {
        StoreError::Unavailable(why) | StoreError::Contended(why) => Failure::Retry(why),
        StoreError::OverQuota { message, .. } => Failure::Refused(Refusal::new("over_quota", message)),
        e @ StoreError::CurrencyMismatch { .. } => Failure::Refused(Refusal::new("currency_mismatch", e.to_string())),
        StoreError::WrongCurrency(list) => {
            let names: Vec<String> = list
                .iter()
                .map(|w| {
                    format!(
                        "product {} is priced in {}; the observation is in {}",
                        w.sku, w.product_currency, w.currency
                    )
                })
                .collect();
            Failure::Refused(Refusal::new("currency_mismatch", names.join("; ")))
        }
        other => Failure::Retry(other.to_string()),
    }
}

/// How long a message whose store was unavailable waits before it comes back.
const RETRY_DELAY: Duration = Duration::from_secs(2);
/// How long one pull waits for messages.
const PULL_WAIT: Duration = Duration::from_secs(1);

/// The consumer, running until the process ends.
pub struct SignalFeed {
    settings: NatsSettings,
    pricing: PricingSettings,
    prices: Prices,
    metrics: Arc<Metrics>,
    /// Merchants known to exist (a merchant is never deleted).
    known: HashSet<MerchantId>,
}

impl SignalFeed {
    /// Starts consuming in the background: connects (and reconnects) by itself, and says in the
    /// log when it cannot.
    pub fn start(
        settings: NatsSettings,
        pricing: PricingSettings,
        prices: Prices,
        metrics: Arc<Metrics>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let url = settings.url.clone()?;
        let mut feed = SignalFeed { settings, pricing, prices, metrics, known: HashSet::new() };
        Some(tokio::spawn(async move {
            while !feed.prices.store().is_closed() {
                match feed.connect(&url).await {
                    Ok((context, consumer)) => {
                        tracing::info!(url = %url, stream = %feed.settings.signal_stream, "consuming signals from JetStream");
                        if let Err(e) = feed.consume(&context, consumer).await {
                            tracing::warn!(error = %e, "the JetStream signal consumer stopped; reconnecting");
                        }
                    }
                    Err(e) => tracing::warn!(url = %url, error = %e, "cannot reach JetStream for signals; retrying"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }

    /// The stream and the dead-letter stream (created when missing), and the durable consumer.
    async fn connect(&self, url: &str) -> Result<(jetstream::Context, PullConsumer), async_nats::Error> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name("pricing")
            .connect(url)
            .await?;
        let context = jetstream::new(client);
        let prefix = &self.settings.signal_prefix;
        let stream = context
            .get_or_create_stream(stream::Config {
                name: self.settings.signal_stream.clone(),
                subjects: vec![format!("{prefix}.*.competitor"), format!("{prefix}.*.demand")],
                storage: StorageType::File,
                ..Default::default()
            })
            .await?;
        context
            .get_or_create_stream(stream::Config {
                name: self.settings.dead_letter_stream.clone(),
                subjects: vec![format!("{}.>", self.settings.dead_letter_prefix)],
                storage: StorageType::File,
                ..Default::default()
            })
            .await?;
        let consumer = stream
            .get_or_create_consumer(
                &self.settings.consumer,
                pull::Config {
                    durable_name: Some(self.settings.consumer.clone()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(self.settings.ack_wait_secs.max(1)),
                    ..Default::default()
                },
            )
            .await?;
        Ok((context, consumer))
    }

    async fn consume(
        &mut self,
        context: &jetstream::Context,
        mut consumer: PullConsumer,
    ) -> Result<(), async_nats::Error> {
        while !self.prices.store().is_closed() {
            let mut batch =
                consumer.batch().max_messages(self.settings.fetch_batch.max(1)).expires(PULL_WAIT).messages().await?;
            let mut messages = Vec::new();
            while let Some(message) = batch.next().await {
                messages.push(message?);
            }
            if !messages.is_empty() {
                self.handle(context, messages).await?;
            }
            if let Ok(info) = consumer.info().await {
                self.metrics.set_feed_lag(info.num_pending);
            }
        }
        Ok(())
    }

    /// Stores one fetch's messages, grouped, and acknowledges each as it ends.
    async fn handle(&mut self, context: &jetstream::Context, messages: Vec<Message>) -> Result<(), async_nats::Error> {
        let mut groups: BTreeMap<(MerchantId, FeedKind), Vec<(Message, Signals)>> = BTreeMap::new();
        for message in messages {
            let subject = message.subject.to_string();
            let parsed = match parse_subject(&self.settings.signal_prefix, &subject) {
                Ok((merchant, kind)) => match self.check_merchant(merchant).await {
                    Ok(true) => parse_body(kind, &message.payload, &self.pricing).map(|s| (merchant, kind, s)),
                    Ok(false) => Err(Refusal::new("unknown_merchant", format!("no merchant {merchant}"))),
                    Err(why) => {
                        tracing::warn!(error = %why, "cannot check a signal message's merchant; retrying it later");
                        message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await?;
                        continue;
                    }
                },
                Err(refusal) => Err(refusal),
            };
            match parsed {
                Ok((merchant, kind, signals)) => groups.entry((merchant, kind)).or_default().push((message, signals)),
                Err(refusal) => self.dead_letter(context, &message, refusal).await?,
            }
        }
        for ((merchant, kind), group) in groups {
            let (messages, signals): (Vec<Message>, Vec<Signals>) = group.into_iter().unzip();
            match self.record(merchant, merged(signals)).await {
                Ok(()) => {
                    for message in &messages {
                        message.ack().await?;
                    }
                }
                Err(Failure::Retry(why)) => {
                    tracing::warn!(error = %why, %merchant, "signals from JetStream not stored; they come back");
                    for message in &messages {
                        message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await?;
                    }
                }
                Err(Failure::Refused(refusal)) if messages.len() == 1 => {
                    self.dead_letter(context, &messages[0], refusal).await?;
                }
                // One of them is refused: each on its own, so that only the bad ones are.
                Err(Failure::Refused(_)) => {
                    for message in messages {
                        let signals = parse_body(kind, &message.payload, &self.pricing).ok();
                        match signals.map(|s| self.record(merchant, s)) {
                            Some(recording) => match recording.await {
                                Ok(()) => message.ack().await?,
                                Err(Failure::Retry(_)) => message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await?,
                                Err(Failure::Refused(refusal)) => self.dead_letter(context, &message, refusal).await?,
                            },
                            None => message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await?,
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn check_merchant(&mut self, merchant: MerchantId) -> Result<bool, StoreError> {
        if self.known.contains(&merchant) {
            return Ok(true);
        }
        let exists = self.prices.store().merchant(merchant).await?.is_some();
        if exists {
            self.known.insert(merchant);
        }
        Ok(exists)
    }

    async fn record(&self, merchant: MerchantId, signals: Signals) -> Result<(), Failure> {
        let quotas = SignalQuotas::from(&self.pricing);
        match signals {
            Signals::Observations(list) => {
                self.prices.record_observations(merchant, list, quotas, WrongCurrencies::RefuseBatch).await
            }
            Signals::Demand(list) => self.prices.record_demand(merchant, list, quotas).await,
        }
        .map(drop)
        .map_err(failure)
    }

    /// Copies the message with its error to the dead-letter subject, then terminates it.
    async fn dead_letter(
        &self,
        context: &jetstream::Context,
        message: &Message,
        refusal: Refusal,
    ) -> Result<(), async_nats::Error> {
        let subject = message.subject.to_string();
        let (merchant, kind) = match parse_subject(&self.settings.signal_prefix, &subject) {
            Ok((merchant, kind)) => (merchant.to_string(), kind.as_str()),
            Err(_) => ("unknown".to_owned(), "unknown"),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Pricing-Error-Code", refusal.code);
        headers.insert("Pricing-Error", refusal.message.replace(['\r', '\n'], " ").as_str());
        headers.insert("Pricing-Subject", subject.as_str());
        let target = format!("{}.{merchant}.{kind}", self.settings.dead_letter_prefix);
        context.publish_with_headers(target, headers, message.payload.clone()).await?.await?;
        tracing::warn!(subject = %subject, code = refusal.code, error = %refusal.message, "signal message dead-lettered");
        self.metrics.record_dead_letter(kind);
        message.ack_with(AckKind::Term).await?;
        Ok(())
    }
}

/// One group's signals as one list (they are of one kind).
fn merged(signals: Vec<Signals>) -> Signals {
    let mut observations = Vec::new();
    let mut events = Vec::new();
    for s in signals {
        match s {
            Signals::Observations(list) => observations.extend(list),
            Signals::Demand(list) => events.extend(list),
        }
    }
    if events.is_empty() { Signals::Observations(observations) } else { Signals::Demand(events) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_a_merchant_and_a_kind() {
        let merchant = MerchantId::generate();
        let (m, kind) = parse_subject("pricing.signals", &format!("pricing.signals.{merchant}.demand")).ok().unwrap();
        assert_eq!((m, kind), (merchant, FeedKind::Demand));
        for bad in
            ["pricing.signals.x.demand", "pricing.signals.demand", "other.1.competitor", "pricing.signalsx.1.demand"]
        {
            assert!(parse_subject("pricing.signals", bad).is_err(), "{bad}");
        }
        let wrong_kind = format!("pricing.signals.{merchant}.views");
        assert!(parse_subject("pricing.signals", &wrong_kind).is_err());
    }
}
