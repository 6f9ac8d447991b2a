//! Valid rules (the example policies, as core modules and as components, in
//! `fuzz/corpus/rule_upload_mutated`) mutated by libFuzzer, as uploads: refused with a reason,
//! or accepted, stored, loaded, recompiled and evaluated within the sandbox's limits, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pricing_fuzz::check_upload(data));
