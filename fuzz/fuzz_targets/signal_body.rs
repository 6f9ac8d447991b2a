//! Arbitrary bytes as the bodies of `POST /v1/signals/competitor-prices` and
//! `POST /v1/signals/demand`: refused in the API's error shape, or entries in range whose wire
//! form parses back to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pricing_fuzz::check_signal_body(data));
