//! The rule's log: a few lines per evaluation that end up in the decision's record (the host
//! keeps at most 1 KiB and stops a rule that writes more). Natively, lines go to a buffer
//! that [`crate::testing::take_log`] returns.

/// Appends a line to this evaluation's log.
pub fn log(message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::guest::log(message);
    #[cfg(not(target_arch = "wasm32"))]
    native::push(message);
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn push(message: &str) {
        LINES.with(|lines| lines.borrow_mut().push(message.to_owned()));
    }

    pub(crate) fn take() -> Vec<String> {
        LINES.with(|lines| std::mem::take(&mut *lines.borrow_mut()))
    }
}
