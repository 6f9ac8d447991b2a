//! Whether a write may still commit. A write runs detached from the request that asked for it
//! (see [`super::Prices`]); if that request is gone (a timeout, a closed connection) before the
//! write commits, the write rolls back, so a request answered with an error wrote nothing; once
//! the commit has begun, the write and its post-commit work (cache, replicas, repricing) run to
//! their end whatever happens to the request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::StoreError;

#[derive(Clone, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    /// A gate nobody abandons (tools, tests, the engine).
    pub fn open() -> Self {
        Self::default()
    }

    pub(super) fn abandon(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Call right before committing: an abandoned write stops here (its transaction rolls
    /// back when dropped).
    pub fn check(&self) -> Result<(), StoreError> {
        if self.0.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("the request was abandoned before its change was committed".into()))
        } else {
            Ok(())
        }
    }
}

/// Abandons the gate when dropped: held by the caller of a detached write.
pub(super) struct AbandonOnDrop(pub(super) Gate);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}
