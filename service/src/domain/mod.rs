//! The pricing domain's types: they parse input once, and hold only valid values afterwards;
//! and the pure rules that everything above shares (the chain's hashing, the prior price's
//! window). Nothing here does I/O.

pub mod chain;
mod currency;
mod decision;
mod digest;
mod guardrails;
mod ids;
mod invalid;
mod money;
pub mod object;
pub mod overrides;
pub mod params;
pub mod prior;
mod product;
pub mod product_file;
mod roles;
pub mod safety;
mod sku;
pub mod whole;

pub use currency::{Currency, CurrencyError};
pub use decision::{Outcome, Trigger, UnknownName};
pub use digest::{sha256, sha256_hex};
pub use guardrails::{
    Guardrails, GuardrailsInput, MAX_AMOUNT_MINOR, MAX_MARGIN_BPS, MAX_MIN_INTERVAL_SECS, MAX_STEP_BPS, Rounding,
};
pub use ids::{ID_PATTERN, IdError, JobId, KeyId, MerchantId, WebhookId};
pub use invalid::{FieldError, Invalid};
pub use money::{Money, MoneyError};
pub use product::{Attributes, Product, ProductDraft};
pub use roles::{Role, Roles};
pub use sku::{SKU_MAX_LEN, SKU_PATTERN, Sku, SkuError};
