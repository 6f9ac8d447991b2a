//! Helpers a pricing author needs, all in integer minor units: which competitor offers count
//! and their cheapest or median price, margins over cost and percentage moves in basis points
//! (1 bp = 0.01 %), rounding to price endings such as .99 or ¥980, and formatting amounts and
//! percentages for explanations without floating point (a float format costs a rule some 25 KB). Arithmetic is checked:
//! a result that would overflow, or an input that makes no sense, gives `None`, never a
//! wrapped or made-up number.

mod competitors;
mod endings;
mod format;
mod margins;

pub use competitors::{cheapest_competitor, eligible_offers, median_competitor_price, nth_cheapest_competitor};
pub use endings::{round_down_to_ending, round_to_ending};
pub use format::{format_bps, format_money};
pub use margins::{margin_bps, move_bps, price_for_margin};
