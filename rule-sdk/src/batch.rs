//! The loop behind both entry points. The host attributes fuel, time and log lines to a
//! context by the `begin-context` marks the loop makes, so `evaluate` runs its one context
//! through this very loop: a context then costs the same fuel alone as in a batch, and a
//! decision record's figures do not depend on how the repricer grouped its work.

/// Evaluates `contexts` in order, calling `begin(i)` before context `i` and `begin(n)` after
/// the last one (n contexts), the sequence the host expects. The contexts may be values
/// (`evaluate-batch`) or indices into a buffer each is decoded from (`evaluate-encoded`).
pub fn each_context<C, D>(
    contexts: impl ExactSizeIterator<Item = C>,
    mut begin: impl FnMut(u32),
    mut evaluate: impl FnMut(C) -> D,
) -> Vec<D> {
    let count = contexts.len();
    // Room for every decision up front: growing the vector inside a context's span would
    // charge that one context for the copy.
    let mut decisions = Vec::with_capacity(count);
    for (index, context) in contexts.enumerate() {
        begin(index as u32);
        decisions.push(evaluate(context));
    }
    begin(count as u32);
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_each_context_in_order_then_one_past_the_last() {
        let marks = std::cell::RefCell::new(Vec::new());
        let mut seen = Vec::new();
        let out = each_context(
            vec!["a", "b", "c"].into_iter(),
            |i| marks.borrow_mut().push(i),
            |c| {
                seen.push((c, marks.borrow().len()));
                c.len()
            },
        );
        assert_eq!(out, [1, 1, 1]);
        assert_eq!(marks.into_inner(), [0, 1, 2, 3]);
        // Each context ran after its own mark and before the next.
        assert_eq!(seen, [("a", 1), ("b", 2), ("c", 3)]);
    }

    #[test]
    fn no_contexts_is_one_closing_mark() {
        let mut marks = Vec::new();
        let out: Vec<()> = each_context(Vec::<()>::new().into_iter(), |i| marks.push(i), |_| ());
        assert!(out.is_empty());
        assert_eq!(marks, [0]);
    }
}
