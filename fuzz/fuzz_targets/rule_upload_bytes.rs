//! Arbitrary bytes as a rule upload (`POST /v1/rules`): refused with a reason or accepted,
//! never a panic. The first byte picks how the rest is sent: as it is, behind a core module's
//! header, or behind a component's header (so that most inputs reach the parsers).
#![no_main]

use libfuzzer_sys::fuzz_target;

const CORE_HEADER: &[u8] = b"\0asm\x01\0\0\0";
const COMPONENT_HEADER: &[u8] = b"\0asm\x0d\0\x01\0";

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return pricing_fuzz::check_upload(data);
    };
    match how % 3 {
        0 => pricing_fuzz::check_upload(rest),
        1 => pricing_fuzz::check_upload(&[CORE_HEADER, rest].concat()),
        _ => pricing_fuzz::check_upload(&[COMPONENT_HEADER, rest].concat()),
    }
});
