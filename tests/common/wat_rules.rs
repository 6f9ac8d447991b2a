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

/// Marks every context in order and closes the batch: what the SDK does.
pub const MARKS_IN_ORDER: &str = "(block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (call $begin (local.get $i))
      (call $work (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $begin (local.get $n))";

/// The single `evaluate` of a rule that marks, as the SDK does: its one context, then the end.
pub const MARKS_ONE: &str = "(call $begin (i32.const 0)) (call $work (i32.const 0)) (call $begin (i32.const 1))";

/// A rule that imports `begin-context`, with hand-written marks: `evaluate_marks` runs in
/// `evaluate` and `batch_marks` in `evaluate-batch` (locals `$i`, `$n`; `(call $work i)` does
/// context i's work: it logs i + 1 bytes and burns fuel in proportion to i). Every decision
/// keeps the price; the explanation says which entry point answered ("single" or "batch").
pub fn marking_rule(evaluate_marks: &str, batch_marks: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (import "$root" "log" (func $log (param i32 i32)))
  (import "$root" "begin-context" (func $begin (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 600) "{log_line}")
  (data (i32.const 700) "batch")
  (data (i32.const 710) "single")
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.const 1)
        (i32.div_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)))))))
    (local.get $p))
  (func $work (param $i i32)
    (local $k i32)
    (call $log (i32.const 600) (i32.add (local.get $i) (i32.const 1)))
    (loop $l
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $k) (i32.mul (local.get $i) (i32.const 1000))))))
  (func (export "evaluate") (param $ctx i32) (result i32)
    {evaluate_marks}
    (memory.fill (i32.const 64) (i32.const 0) (i32.const 40))
    (i32.store (i32.const 88) (i32.const 710))
    (i32.store (i32.const 92) (i32.const 6))
    (i32.const 64))
  (func (export "evaluate-batch") (param $ctxs i32) (param $n i32) (result i32)
    (local $i i32) (local $out i32) (local $d i32)
    (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 8) (i32.mul (local.get $n) (i32.const 40))))
    (memory.fill (local.get $out) (i32.const 0) (i32.mul (local.get $n) (i32.const 40)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $d (i32.add (local.get $out) (i32.mul (local.get $i) (i32.const 40))))
      (i32.store offset=24 (local.get $d) (i32.const 700))
      (i32.store offset=28 (local.get $d) (i32.const 5))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.set $i (i32.const 0))
    {batch_marks}
    (i32.store (i32.const 48) (local.get $out))
    (i32.store (i32.const 52) (local.get $n))
    (i32.const 48))
)"#,
        log_line = "x".repeat(100),
    );
    with_interface(&wat)
}
