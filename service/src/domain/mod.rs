//! The pricing domain's types: they parse input once, and hold only valid values afterwards.

mod currency;
mod guardrails;
mod ids;
mod invalid;
mod money;
mod product;
mod sku;

pub use currency::{Currency, CurrencyError};
pub use guardrails::{Guardrails, GuardrailsInput, MAX_AMOUNT_MINOR, Rounding};
pub use ids::{IdError, KeyId, MerchantId};
pub use invalid::{FieldError, Invalid};
pub use money::{Money, MoneyError};
pub use product::{Attributes, Product, ProductDraft};
pub use sku::{SKU_MAX_LEN, Sku, SkuError};
