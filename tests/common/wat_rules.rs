//! Rules written in WebAssembly text, built in the test run: a core module that follows the
//! canonical ABI of `pricing:policy@1.0.0` by hand, with the interface's metadata embedded
//! (as wit-bindgen would), so that each hostile behaviour can be written exactly.
//!
//! Memory map: the decision is written at 64 (40 bytes: action 0..24, explanation 24..32,
//! tags 32..40), constant strings live at 512.., a tag array at 2048, the allocator's heap
//! starts at 4096.

use std::path::Path;

/// Turns a WAT module into an upload: the module with the interface's metadata embedded.
pub fn with_interface(wat: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{wat}"));
    let mut resolve = wit_parser::Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rule-sdk/wit");
    let (package, _) = resolve.push_dir(&wit).expect("the rule interface parses");
    let world = resolve.select_world(&[package], Some("policy")).expect("the interface has the `policy` world");
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8, false)
        .expect("the metadata embeds");
    module
}

/// A rule module whose `evaluate` runs `body` (which must leave a decision pointer on the
/// stack); `extra` adds module fields (tables, functions, a start function, ...).
pub fn rule(body: &str, extra: &str) -> Vec<u8> {
    with_interface(&rule_wat(body, extra, 1))
}

pub fn rule_wat(body: &str, extra: &str, memory_pages: u32) -> String {
    let tags = "\\00\\02\\00\\00\\03\\00\\00\\00".repeat(17);
    format!(
        r#"(module
  (import "$root" "log" (func $log (param i32 i32)))
  (memory (export "memory") {memory_pages})
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 512) "EURUSD\ff\fe")
  (data (i32.const 600) "{log_line}")
  (data (i32.const 2048) "{tags}")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.const 1)
        (i32.div_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)))))))
    (local.get $p))
  (func $keep (result i32)
    (memory.fill (i32.const 64) (i32.const 0) (i32.const 40))
    (i32.const 64))
  (func $set (param $minor i64) (param $currency i32) (result i32)
    (drop (call $keep))
    (i32.store8 (i32.const 64) (i32.const 1))
    (i64.store (i32.const 72) (local.get $minor))
    (i32.store (i32.const 80) (local.get $currency))
    (i32.store (i32.const 84) (i32.const 3))
    (i32.const 64))
  (func $set_approx (param $minor f64) (result i32)
    (drop (call $keep))
    (i32.store8 (i32.const 64) (i32.const 2))
    (f64.store (i32.const 72) (local.get $minor))
    (i32.store (i32.const 80) (i32.const 512))
    (i32.store (i32.const 84) (i32.const 3))
    (i32.const 64))
  {extra}
  (func (export "evaluate") (param $ctx i32) (result i32)
    (local $i i32)
    {body})
  (func (export "evaluate-batch") (param i32 i32) (result i32) unreachable)
)"#,
        log_line = "x".repeat(100),
    )
}

/// The currency strings in the module's data.
pub const EUR: &str = "(i32.const 512)";
pub const USD: &str = "(i32.const 515)";
