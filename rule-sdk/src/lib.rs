//! The pricing-rule SDK: everything a merchant needs to write a pricing policy in Rust.
//!
//! A policy is a function from a [`Context`] to a [`Decision`], exported with
//! [`export_rule!`]:
//!
//! ```
//! use pricing_rule_sdk::{Context, Decision, export_rule, pricing};
//!
//! fn cost_plus(ctx: &Context) -> Decision {
//!     let margin = ctx.param_i64("margin_bps").unwrap_or(3000);
//!     match pricing::price_for_margin(ctx.cost.minor, margin) {
//!         Some(price) => Decision::set(price, format!("cost plus {margin} bp")),
//!         None => Decision::keep("the price for that margin is out of range"),
//!     }
//! }
//!
//! export_rule!(cost_plus);
//! ```
//!
//! Built for `wasm32-unknown-unknown`, the crate becomes a module that implements the
//! `pricing:policy@1.2.0` interface (`wit/policy.wit`; its `encoded-policy` world, which takes
//! a batch of contexts in one buffer: [`encoding`]); built natively, the same code runs in
//! plain `cargo test` with the builders of [`testing`]. The interface's generated types never
//! appear in a policy: the SDK converts them.
//!
//! Money is integer minor units of the context's currency (cents for EUR, yen for JPY), and
//! the helpers of [`pricing`] keep it that way: margins and moves in basis points, rounding to
//! price endings, the cheapest or median competitor, all checked against overflow.
//!
//! A policy's unit test builds a context, runs the policy and reads what it logged:
//!
//! ```
//! use pricing_rule_sdk::testing::{ContextBuilder, run};
//! use pricing_rule_sdk::{Context, Decision, log, pricing};
//!
//! fn match_cheapest(ctx: &Context) -> Decision {
//!     match pricing::cheapest_competitor(ctx, Some(24 * 3600)) {
//!         Some(offer) => {
//!             log(&format!("matching {}", offer.competitor));
//!             Decision::set(offer.price.minor, "matched").with_tag("match")
//!         }
//!         None => Decision::keep("no competitor"),
//!     }
//! }
//!
//! let ctx = ContextBuilder::new("sku-1", "EUR").cost(1200).competitor("acme", 1899, true, 3600).build();
//! let (decision, log) = run(match_cheapest, &ctx);
//! assert_eq!(decision.price_minor(), Some(1899));
//! assert_eq!(log, ["matching acme"]);
//! ```
//!
//! `scripts/build-rules` in the repository builds a policy crate to a `.wasm` module the
//! service accepts at upload.

// Lets the generated bindings name this crate by its public name, from inside it too.
extern crate self as pricing_rule_sdk;

#[doc(hidden)]
pub mod batch;
mod context;
mod decision;
pub mod encoding;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;
mod log;
pub mod params;
pub mod pricing;
pub mod testing;

pub use context::{CompetitorOffer, Context, Demand, Money, Value};
pub use decision::{Action, Decision};
pub use log::log;
pub use params::{Bps, Minor, Params};
/// Derives [`Params`] for a struct of parameters (see [`params`]).
pub use pricing_rule_sdk_macros::Params;

/// What [`export_rule!`] exports: a pricing policy.
pub type Policy = fn(&Context) -> Decision;

/// A policy with declared parameters, `P` (see [`params`]).
pub type TypedPolicy<P> = fn(&Context, &P) -> Decision;

/// Exports a policy as the rule's entry points: `evaluate`, and `evaluate-batch` and
/// `evaluate-encoded`, which map the policy over the contexts in order. Both tell the host, through the interface's
/// `begin-context`, which context they are on, so each context in a batch gets its own fuel,
/// deadline and log (natively, [`testing::run_batch`] shows the same split).
///
/// Two forms:
/// - `export_rule!(policy)` with `policy: fn(&Context) -> Decision`: an untyped rule, which
///   reads its parameters by name (`ctx.param_i64("margin_bps")`) from whatever flat object
///   the merchant sets;
/// - `export_rule!(policy, P)` with `policy: fn(&Context, &P) -> Decision` and
///   `#[derive(Params)] struct P`: a rule that declares its parameters (`pricing:policy@1.1.0`),
///   so the service checks every value against the declaration and the policy reads
///   `params.margin_bps` (see [`params`]).
///
/// On `wasm32` it implements the bindings' `Guest` trait and exports it with wit-bindgen's
/// export macro. On other targets it only checks the policy's type, so the crate's unit tests
/// build and run with plain `cargo test`. A function of another signature is refused with an
/// error at the name passed in:
///
/// ```compile_fail,E0308
/// use pricing_rule_sdk::{Context, Decision, export_rule};
///
/// fn takes_the_context_by_value(ctx: Context) -> Decision {
///     Decision::keep(ctx.sku)
/// }
///
/// export_rule!(takes_the_context_by_value); // expected fn pointer `fn(&Context) -> Decision`
/// ```
///
/// Export one policy per crate: a module has one `evaluate`.
// rustfmt cannot parse wit-bindgen's `with_types_in` form and re-indents that line on every
// run, so this macro is formatted by hand.
#[rustfmt::skip]
#[macro_export]
macro_rules! export_rule {
    (@export $kind:ty, $policy:expr, $untyped:expr, $schema:expr) => {
        const _: () = {
            // A policy of the wrong type fails here, on every target.
            #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
            const POLICY: $kind = $policy;

            #[cfg(target_arch = "wasm32")]
            const _: () = {
                struct ExportedRule;

                impl $crate::guest::Guest for ExportedRule {
                    fn evaluate(ctx: $crate::guest::GuestContext) -> $crate::guest::GuestDecision {
                        $crate::guest::evaluate(ctx, ($untyped)(POLICY))
                    }

                    fn evaluate_batch(
                        ctxs: ::std::vec::Vec<$crate::guest::GuestContext>,
                    ) -> ::std::vec::Vec<$crate::guest::GuestDecision> {
                        $crate::guest::evaluate_batch(ctxs, ($untyped)(POLICY))
                    }

                    fn evaluate_encoded(batch: ::std::vec::Vec<u8>) -> ::std::vec::Vec<$crate::guest::GuestDecision> {
                        $crate::guest::evaluate_encoded(batch, ($untyped)(POLICY))
                    }

                    fn params_schema() -> ::core::option::Option<::std::vec::Vec<$crate::guest::GuestParamSpec>> {
                        $schema
                    }
                }

                // Not `export!(ExportedRule)`: naming the bindings through `$crate` keeps
                // working when a rule crate renames its SDK dependency.
                $crate::guest::export!(ExportedRule with_types_in $crate::guest);
            };
        };
    };
    // `expr`, not `path`: rustc then points a type error at the caller's tokens rather than at
    // the whole macro call.
    ($policy:expr $(,)?) => {
        $crate::export_rule!(@export $crate::Policy, $policy, |policy| policy, ::core::option::Option::None);
    };
    ($policy:expr, $params:ty $(,)?) => {
        $crate::export_rule!(
            @export $crate::TypedPolicy<$params>,
            $policy,
            |policy| $crate::guest::with_params::<$params>(policy),
            $crate::guest::schema::<$params>()
        );
    };
}
