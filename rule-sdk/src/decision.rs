//! What a policy answers: keep the price, or set one (in the context's currency), with a
//! short explanation for people and optional tags. The host checks every answer and then
//! applies the merchant's guardrails, so a policy can never set a price outside them.

/// What to do with the price.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Keep,
    /// An exact price, in minor units of the context's currency.
    Set(i64),
    /// A price computed in floating point, in minor units; the host rounds it half away from
    /// zero after checking that it is finite and in range.
    SetApprox(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    /// Why, in a sentence (the host keeps at most 512 bytes).
    pub explanation: String,
    pub tags: Vec<String>,
}

impl Decision {
    pub fn keep(explanation: impl Into<String>) -> Self {
        Self { action: Action::Keep, explanation: explanation.into(), tags: Vec::new() }
    }

    pub fn set(price_minor: i64, explanation: impl Into<String>) -> Self {
        Self { action: Action::Set(price_minor), explanation: explanation.into(), tags: Vec::new() }
    }

    pub fn set_approx(price_minor: f64, explanation: impl Into<String>) -> Self {
        Self { action: Action::SetApprox(price_minor), explanation: explanation.into(), tags: Vec::new() }
    }

    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The exact price asked for, if any (`SetApprox` rounded as the host will round it).
    pub fn price_minor(&self) -> Option<i64> {
        match self.action {
            Action::Keep => None,
            Action::Set(minor) => Some(minor),
            Action::SetApprox(minor) => minor.is_finite().then(|| minor.round() as i64),
        }
    }
}
