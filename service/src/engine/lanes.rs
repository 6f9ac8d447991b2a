//! Which merchants have a lane running in this process. A wake-up for a merchant whose lane
//! runs marks it, so a lane that finds nothing to claim looks once more instead of ending
//! while work it was told about is on its way (no wake-up falls between the lane's last look
//! and its end).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Inner, lane};
use crate::domain::MerchantId;

#[derive(Default)]
pub(super) struct Lanes {
    /// Running lanes, and whether each was woken since it last looked for work.
    running: Mutex<HashMap<MerchantId, bool>>,
}

impl Lanes {
    pub fn is_empty(&self) -> bool {
        self.running.lock().expect("the lanes lock is not poisoned").is_empty()
    }

    /// Called by a lane that found nothing to do: true when it may end (and is removed),
    /// false when it was woken meanwhile and must look again.
    pub fn finish(&self, merchant: MerchantId) -> bool {
        let mut running = self.running.lock().expect("the lanes lock is not poisoned");
        match running.get_mut(&merchant) {
            Some(woken) if *woken => {
                *woken = false;
                false
            }
            _ => {
                running.remove(&merchant);
                true
            }
        }
    }

    /// Removes a lane that stops whatever it was told (shutdown).
    pub fn end(&self, merchant: MerchantId) {
        self.running.lock().expect("the lanes lock is not poisoned").remove(&merchant);
    }
}

/// Makes sure the merchant's lane runs and looks for work.
pub(super) fn wake(inner: &Arc<Inner>, merchant: MerchantId) {
    if inner.stopping() {
        return;
    }
    let mut running = inner.lanes.running.lock().expect("the lanes lock is not poisoned");
    match running.get_mut(&merchant) {
        Some(woken) => *woken = true,
        None => {
            running.insert(merchant, false);
            tokio::spawn(lane::run(inner.clone(), merchant));
        }
    }
}
