//! What a policy answers: keep the price, or set one (in the context's currency), with a
//! short explanation for people and optional tags. The host checks every answer and then
//! applies the merchant's guardrails, so a policy can never set a price outside them.

/// What to do with the price.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Keep the price in force.
    Keep,
    /// An exact price, in minor units of the context's currency.
    Set(i64),
    /// A price computed in floating point, in minor units; the host rounds it half away from
    /// zero after checking that it is finite and in range.
    SetApprox(f64),
}

/// A policy's answer for one product.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    /// Why, in a sentence (the host keeps at most 512 bytes).
    pub explanation: String,
    /// Labels for filtering the price history, such as `"competitor-match"`.
    pub tags: Vec<String>,
}

impl Decision {
    /// Keep the price in force.
    pub fn keep(explanation: impl Into<String>) -> Self {
        Self { action: Action::Keep, explanation: explanation.into(), tags: Vec::new() }
    }

    /// Set this exact price, in minor units of the context's currency.
    pub fn set(price_minor: i64, explanation: impl Into<String>) -> Self {
        Self { action: Action::Set(price_minor), explanation: explanation.into(), tags: Vec::new() }
    }

    /// Set a price computed in floating point, in minor units (19.99 EUR is `1999.0`). The one
    /// place money crosses the interface as a float: prefer [`Decision::set`] and the integer
    /// helpers of [`crate::pricing`].
    pub fn set_approx(price_minor: f64, explanation: impl Into<String>) -> Self {
        Self { action: Action::SetApprox(price_minor), explanation: explanation.into(), tags: Vec::new() }
    }

    /// Adds a label for filtering the price history.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The price asked for, if any: a `SetApprox` rounded half away from zero as the host rounds
    /// it, or `None` when the host would refuse it (not finite, beyond an i64).
    pub fn price_minor(&self) -> Option<i64> {
        // 2^63 as f64; every finite f64 strictly inside ±2^63 converts to i64 exactly.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        match self.action {
            Action::Keep => None,
            Action::Set(minor) => Some(minor),
            Action::SetApprox(minor) => {
                let rounded = minor.round();
                (rounded.is_finite() && rounded.abs() < LIMIT).then_some(rounded as i64)
            }
        }
    }

    /// Whether the decision carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_asks_for_no_price() {
        let decision = Decision::keep("nothing changed");
        assert_eq!(decision.action, Action::Keep);
        assert_eq!(decision.price_minor(), None);
        assert_eq!(decision.explanation, "nothing changed");
    }

    #[test]
    fn set_asks_for_the_exact_price() {
        assert_eq!(Decision::set(1999, "why").price_minor(), Some(1999));
    }

    #[test]
    fn an_approximate_price_rounds_half_away_from_zero_like_the_host() {
        assert_eq!(Decision::set_approx(1998.5, "why").price_minor(), Some(1999));
        assert_eq!(Decision::set_approx(1998.49, "why").price_minor(), Some(1998));
        assert_eq!(Decision::set_approx(-2.5, "why").price_minor(), Some(-3));
    }

    #[test]
    fn an_approximate_price_the_host_would_refuse_has_no_price() {
        assert_eq!(Decision::set_approx(f64::NAN, "why").price_minor(), None);
        assert_eq!(Decision::set_approx(f64::INFINITY, "why").price_minor(), None);
        assert_eq!(Decision::set_approx(1e19, "why").price_minor(), None);
    }

    #[test]
    fn tags_are_kept_in_the_order_they_were_added() {
        let decision = Decision::set(1999, "why").with_tag("competitor-match").with_tag("margin-floor");
        assert_eq!(decision.tags, ["competitor-match", "margin-floor"]);
        assert!(decision.has_tag("margin-floor"));
        assert!(!decision.has_tag("markdown"));
    }
}
