//! Arbitrary bytes as a `PUT /v1/products/{sku}` body: refused in the API's error shape, or a
//! product in range whose guardrails hold for any rule price and whose wire form parses back to
//! the same product.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pricing_fuzz::check_product_body(data));
