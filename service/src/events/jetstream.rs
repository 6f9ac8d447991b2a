//! Price events to JetStream: when `nats.url` is set, each change of a price in force is
//! published to `<nats.price_prefix>.<merchant id>` (stream `nats.price_stream`, file storage,
//! created when missing) as [`super::PriceEvent`] JSON, with the header `Nats-Msg-Id:
//! <merchant id>:<decision seq>`, so that JetStream itself drops a duplicate within its
//! duplicate window (2 minutes by default) and consumers drop older ones by `decision_seq`.
//! Each publication's acknowledgement is awaited before the next is sent: a merchant's events
//! are stored in the stream in chain order, never one overtaking another after a failure.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::{Channel, PriceEvent, owner_id, publish_pass};
use crate::config::NatsSettings;
use crate::domain::MerchantId;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::outbox::PriceChange;

/// The outbox channel of JetStream price events.
pub const CHANNEL: &str = "jetstream";

/// How often the outbox is looked at when idle (the most a change waits to be published).
const POLL: Duration = Duration::from_millis(100);

struct Publisher {
    context: jetstream::Context,
    prefix: String,
}

impl Channel for Publisher {
    fn name(&self) -> &str {
        CHANNEL
    }

    async fn deliver(&mut self, merchant: MerchantId, changes: &[PriceChange]) -> Result<usize, String> {
        let subject = format!("{}.{merchant}", self.prefix);
        let mut taken = 0;
        for change in changes {
            let body = serde_json::to_vec(&PriceEvent::from(change)).expect("an event serializes");
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("{merchant}:{}", change.seq).as_str());
            let stored = match self.context.publish_with_headers(subject.clone(), headers, body.into()).await {
                Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match stored {
                Ok(()) => taken += 1,
                Err(why) if taken == 0 => return Err(why),
                Err(_) => break,
            }
        }
        Ok(taken)
    }
}

/// Starts publishing in the background (connecting and reconnecting by itself) until the
/// store is closed; `None` when no NATS server is configured.
pub fn start(settings: NatsSettings, store: Store, metrics: Arc<Metrics>) -> Option<tokio::task::JoinHandle<()>> {
    let url = settings.url.clone()?;
    Some(tokio::spawn(async move {
        let owner = owner_id();
        // Opened before the first pass: a first start publishes from every merchant's head on.
        while let Err(e) = store.open_channel(CHANNEL).await {
            tracing::warn!(error = %e, "cannot open the price events outbox; retrying");
            if store.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        while !store.is_closed() {
            match connect(&url, &settings).await {
                Ok(context) => {
                    tracing::info!(url = %url, stream = %settings.price_stream, "publishing price events to JetStream");
                    let mut publisher = Publisher { context, prefix: settings.price_prefix.clone() };
                    run(&store, &mut publisher, &owner, &metrics).await;
                }
                Err(e) => tracing::warn!(url = %url, error = %e, "cannot reach JetStream for price events; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}

async fn connect(url: &str, settings: &NatsSettings) -> Result<jetstream::Context, async_nats::Error> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .name("pricing-price-events")
        .connect(url)
        .await?;
    let context = jetstream::new(client);
    context
        .get_or_create_stream(stream::Config {
            name: settings.price_stream.clone(),
            subjects: vec![format!("{}.*", settings.price_prefix)],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    Ok(context)
}

/// Passes over the outbox until publishing fails (then the caller reconnects) or the store
/// closes.
async fn run(store: &Store, publisher: &mut Publisher, owner: &str, metrics: &Metrics) {
    while !store.is_closed() {
        match publish_pass(store, publisher, owner).await {
            Ok(pass) => {
                metrics.record_price_events(CHANNEL, pass.published as u64);
                metrics.set_outbox_depth(CHANNEL, pass.behind);
                if pass.failed {
                    return;
                }
                if pass.behind > 0 && pass.published > 0 {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the price events outbox failed; trying again"),
        }
        tokio::time::sleep(POLL).await;
    }
}
