//! Several replicas on one PostgreSQL database: price cache fan-out. (Repricing work is
//! shared through claims in the store: see [`crate::engine`].)
//!
//! **Fan-out.** Whenever a replica changes a price in force (a repricer decision, a product
//! created, replaced or deleted, the prior-price setting), it publishes a small note *after
//! the commit* on the `pricing_prices` channel with `pg_notify`: the merchant and the SKUs with
//! the version now in force (0 for a deletion), or a SKU range (a page of a catalogue
//! reprice), or the whole merchant. Notes go through an outbox task, so a write never waits
//! on it; notes queued together share payloads, each kept under PostgreSQL's 8000-byte limit,
//! and a very long SKU list (over 20,000) becomes a note of its range. Every replica, the writer included,
//! listens on the channel and *re-reads* what a note names from the store, then puts it in
//! its cache or removes it: a note carries no price, so a late, duplicated or reordered note
//! can only cause a redundant read, never a wrong price. Guarantees:
//! - at least once: the last re-read of a key starts after its last commit, so every cache
//!   converges on the store; a note whose version the cache already holds is skipped;
//! - versions never go back ([`PriceCache::put`]), except that a lower version which took
//!   effect later replaces a higher one: the product was deleted and created again;
//! - a lost listener connection means notes may have been missed: once listening again, the
//!   replica re-reads every price in force (and it subscribes before the first warm-up).
//!
//! Limits: a replica that dies between a commit and its note leaves the others stale for
//! that key until its next change; a re-read cannot remove a deletion whose note was missed
//! (the cache cannot be listed), so deletions are always sent SKU by SKU, never folded into
//! ranges or whole-merchant notes.

mod notes;
mod reread;

use std::sync::Arc;
use std::time::Duration;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::mpsc;

pub use self::notes::Change;
use self::notes::{decode, encode};
use self::reread::{apply, rewarm};
use crate::cache::PriceCache;
use crate::config::StoreSettings;
use crate::store::{Backend, Store, StoreError};

const CHANNEL: &str = "pricing_prices";

/// Fan-out for one replica; `local()` (SQLite) does nothing.
#[derive(Clone, Default)]
pub struct Replication {
    pg: Option<(PgPool, mpsc::UnboundedSender<Change>)>,
}

/// Opens the store; on PostgreSQL also the fan-out (its outbox task starts now).
pub async fn open(url: &str, settings: &StoreSettings) -> Result<(Store, Replication), StoreError> {
    let store = Store::connect(url, settings).await?;
    if store.backend() != Backend::Postgres {
        return Ok((store, Replication::local()));
    }
    // Notes and listening are PostgreSQL's own: a pool of its native driver.
    let options = PgConnectOptions::from_str(url)?.application_name("pricing-replication");
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_with(options)
        .await?;
    let (outbox, queued) = mpsc::unbounded_channel();
    tokio::spawn(send_notes(pool.clone(), queued));
    Ok((store, Replication { pg: Some((pool, outbox)) }))
}

impl Replication {
    pub fn local() -> Self {
        Self { pg: None }
    }

    /// Tells every replica (this one too) to re-read what changed. Call after the commit.
    pub fn publish(&self, change: Change) {
        if let Some((_, outbox)) = &self.pg
            && !matches!(&change, Change::Skus(_, skus) if skus.is_empty())
        {
            let _ = outbox.send(change); // closed only when the service is going away
        }
    }

    /// Subscribes to notes. Call before warming the cache, so that nothing committed between
    /// the warm-up and the subscription is missed; notes wait until [`Listening::run`].
    pub async fn subscribe(&self) -> Result<Listening, StoreError> {
        let Some((pool, _)) = &self.pg else { return Ok(Listening(None)) };
        Ok(Listening(Some((subscribe(pool).await?, pool.clone()))))
    }
}

pub struct Listening(Option<(PgListener, PgPool)>);

impl Listening {
    /// Applies notes to the cache until the store closes.
    pub fn run(self, store: Store, cache: Arc<PriceCache>) {
        if let Some((listener, pool)) = self.0 {
            tokio::spawn(listen(listener, pool, store, cache));
        }
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn listen(mut listener: PgListener, pool: PgPool, store: Store, cache: Arc<PriceCache>) {
    loop {
        let healthy = match listener.try_recv().await {
            Ok(Some(note)) => match decode(note.payload()) {
                Some(change) => apply(&store, &cache, change).await.map_err(|e| e.to_string()),
                None => Err(format!("unreadable note {:?}", note.payload())),
            },
            // Lost and already listening again on a new connection.
            Ok(None) => Err("the listener connection was lost".into()),
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "the price listener failed; subscribing again");
                listener = loop {
                    match subscribe(&pool).await {
                        Ok(fresh) => break fresh,
                        Err(_) if pool.is_closed() => return,
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                };
                Err("the listener connection was replaced".into())
            }
        };
        if let Err(why) = healthy {
            // Notes may be lost: re-read everything, retrying until the store answers.
            tracing::warn!(reason = %why, "re-warming the price cache");
            while let Err(e) = rewarm(&store, &cache).await {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "re-warming the price cache failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The outbox: sends queued changes in one statement per wake-up, retrying a few times.
async fn send_notes(pool: PgPool, mut queued: mpsc::UnboundedReceiver<Change>) {
    while let Some(first) = queued.recv().await {
        let mut changes = vec![first];
        while let Ok(more) = queued.try_recv() {
            changes.push(more);
        }
        let payloads = encode(changes);
        for attempt in 1..=10 {
            let sent = sqlx::query("SELECT pg_notify($1, note) FROM unnest($2::text[]) AS note")
                .bind(CHANNEL)
                .bind(&payloads)
                .execute(&pool)
                .await;
            match sent {
                Ok(_) => break,
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, notes = payloads.len(), "publishing price notes failed");
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
                }
            }
        }
    }
}
