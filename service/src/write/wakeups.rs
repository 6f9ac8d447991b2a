//! Telling the engine, in this process, that a merchant has new work. The work itself is in
//! the store (see [`crate::store::work`]); a wake-up only saves the engine the wait until it
//! next looks there, so a lost one delays work, never loses it.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::domain::MerchantId;

pub struct Wakeups {
    send: mpsc::UnboundedSender<MerchantId>,
    receive: Mutex<Option<mpsc::UnboundedReceiver<MerchantId>>>,
}

impl Default for Wakeups {
    fn default() -> Self {
        let (send, receive) = mpsc::unbounded_channel();
        Self { send, receive: Mutex::new(Some(receive)) }
    }
}

impl Wakeups {
    /// Call after the commit that stored the merchant's work.
    pub fn wake(&self, merchant: MerchantId) {
        let _ = self.send.send(merchant); // nobody listens only while the service stops
    }

    /// The receiving end, for the one engine of this process.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<MerchantId>> {
        self.receive.lock().expect("the wake-up lock is not poisoned").take()
    }
}
