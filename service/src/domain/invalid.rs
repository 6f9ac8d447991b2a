//! Field-level problems found while parsing input into domain types.
//!
//! Parsers collect every problem they find rather than stopping at the first, so a merchant
//! fixing a product body sees all that is wrong with it in one answer.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Dotted path of the field in the request body, e.g. `guardrails.floor_minor`.
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalid(Vec<FieldError>);

impl Invalid {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut invalid = Self::new();
        invalid.push(field, message);
        invalid
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    /// Takes over another parser's problems, prefixing their fields with `prefix.`.
    pub fn absorb(&mut self, prefix: &str, other: Invalid) {
        for e in other.0 {
            self.push(format!("{prefix}.{}", e.field), e.message);
        }
    }

    /// Takes over another parser's problems as they are.
    pub fn absorb_all(&mut self, other: Invalid) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(value)` when nothing was found wrong.
    pub fn or_ok<T>(self, value: impl FnOnce() -> T) -> Result<T, Invalid> {
        if self.0.is_empty() { Ok(value()) } else { Err(self) }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for Invalid {}

impl Extend<FieldError> for Invalid {
    fn extend<I: IntoIterator<Item = FieldError>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl IntoIterator for Invalid {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
