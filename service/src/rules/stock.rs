//! Stock policies: the example rules of `rules/`, built to wasm and shipped inside the service
//! (`service/stock/*.wasm`, made by `scripts/build-rules --stock`), so a merchant who writes
//! no code picks one by name (`POST /v1/rules {"stock": "competitor-match"}`) and tunes its
//! declared parameters. A stock policy becomes an ordinary version of the merchant's: stored,
//! activated, replayed and audited like an upload, its sha256 naming the exact build.

/// One stock policy.
pub struct StockPolicy {
    pub name: &'static str,
    /// One line for people.
    pub summary: &'static str,
    pub wasm: &'static [u8],
}

/// Every stock policy, by name.
pub const POLICIES: &[StockPolicy] = &[
    StockPolicy {
        name: "cost-plus",
        summary: "cost plus a target margin, rounded to a price ending",
        wasm: include_bytes!("../../stock/cost-plus.wasm"),
    },
    StockPolicy {
        name: "competitor-match",
        summary: "just under the cheapest in-stock competitor, above a margin floor",
        wasm: include_bytes!("../../stock/competitor-match.wasm"),
    },
    StockPolicy {
        name: "competitor-position",
        summary: "the n-th cheapest among in-stock competitors, above a margin floor",
        wasm: include_bytes!("../../stock/competitor-position.wasm"),
    },
    StockPolicy {
        name: "demand-based",
        summary: "up when stock sells fast or cover runs low, down for slow movers",
        wasm: include_bytes!("../../stock/demand-based.wasm"),
    },
    StockPolicy {
        name: "markdown",
        summary: "clearance in steps off the base price from a start date",
        wasm: include_bytes!("../../stock/markdown.wasm"),
    },
];

pub fn find(name: &str) -> Option<&'static StockPolicy> {
    POLICIES.iter().find(|policy| policy.name == name)
}
