//! Limits on the rule work that runs on the request path (dry runs, uploads), so that one
//! merchant cannot crowd out the others, nor the repricing engine:
//! - each merchant runs at most `per_merchant` such requests at once;
//! - all merchants together use at most the sandbox's instance slots minus those reserved for
//!   the engine's workers, so a flood of dry runs never leaves repricing without an instance.
//!
//! A request over a limit is refused at once ([`RuleError::Throttled`], `429`), never queued:
//! a client retries, and nothing waits behind a hostile tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::RuleError;
use crate::domain::MerchantId;

pub struct RequestLimits {
    per_merchant: usize,
    running: Mutex<HashMap<MerchantId, usize>>,
    shared: Arc<Semaphore>,
    shared_limit: usize,
}

/// A request admitted; its place is given back when dropped.
pub struct Admitted<'a> {
    limits: &'a RequestLimits,
    merchant: MerchantId,
    _shared: OwnedSemaphorePermit,
}

impl RequestLimits {
    /// `slots` instances exist; `reserved` of them are kept for the engine.
    pub fn new(per_merchant: usize, slots: usize, reserved: usize) -> Self {
        let shared_limit = slots.saturating_sub(reserved).max(1);
        Self {
            per_merchant: per_merchant.max(1),
            running: Mutex::new(HashMap::new()),
            shared: Arc::new(Semaphore::new(shared_limit)),
            shared_limit,
        }
    }

    pub fn admit(&self, merchant: MerchantId) -> Result<Admitted<'_>, RuleError> {
        let mut running = self.running.lock().expect("the limits lock is not poisoned");
        let mine = running.entry(merchant).or_default();
        if *mine >= self.per_merchant {
            return Err(RuleError::Throttled { limit: self.per_merchant, scope: "merchant" });
        }
        let shared = self
            .shared
            .clone()
            .try_acquire_owned()
            .map_err(|_| RuleError::Throttled { limit: self.shared_limit, scope: "service" })?;
        *mine += 1;
        Ok(Admitted { limits: self, merchant, _shared: shared })
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut running = self.limits.running.lock().expect("the limits lock is not poisoned");
        if let Some(mine) = running.get_mut(&self.merchant) {
            *mine -= 1;
            if *mine == 0 {
                running.remove(&self.merchant);
            }
        }
    }
}
