//! Repricing work waiting for the engine: per merchant, the SKUs to evaluate (a burst of
//! signals for one SKU becomes one evaluation) and whether the whole catalogue is due.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::domain::{MerchantId, Sku, Trigger};

/// One merchant's queued work.
#[derive(Debug, Default)]
pub struct Pending {
    /// The whole catalogue, and why.
    pub all: Option<Trigger>,
    pub skus: HashMap<Sku, Trigger>,
}

impl Pending {
    /// Adds `older` work under this (newer) work: what is queued since wins.
    pub fn absorb_older(&mut self, older: Pending) {
        self.all = self.all.or(older.all);
        for (sku, trigger) in older.skus {
            self.skus.entry(sku).or_insert(trigger);
        }
    }
}

#[derive(Default)]
pub struct Intents {
    pending: Mutex<HashMap<MerchantId, Pending>>,
    wake: Arc<Notify>,
}

impl Intents {
    pub fn request(&self, merchant: MerchantId, skus: impl IntoIterator<Item = Sku>, trigger: Trigger) {
        let mut pending = self.pending.lock().expect("the queue lock is not poisoned");
        let entry = pending.entry(merchant).or_default();
        for sku in skus {
            entry.skus.insert(sku, trigger);
        }
        drop(pending);
        self.wake.notify_one();
    }

    pub fn request_all(&self, merchant: MerchantId, trigger: Trigger) {
        self.pending.lock().expect("the queue lock is not poisoned").entry(merchant).or_default().all = Some(trigger);
        self.wake.notify_one();
    }

    /// Puts work back that could not be done now.
    pub fn put_back(&self, merchant: MerchantId, older: Pending) {
        self.pending.lock().expect("the queue lock is not poisoned").entry(merchant).or_default().absorb_older(older);
        self.wake.notify_one();
    }

    /// Takes everything queued.
    pub fn take(&self) -> HashMap<MerchantId, Pending> {
        std::mem::take(&mut *self.pending.lock().expect("the queue lock is not poisoned"))
    }

    pub fn is_empty(&self) -> bool {
        self.pending.lock().expect("the queue lock is not poisoned").is_empty()
    }

    /// Notified whenever work is queued.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
