//! The rules of a merchant's decision chain, in one place: each record's hash covers the
//! previous record's hash and the record's canonical JSON, starting from a genesis hash. The
//! store appends by these rules and the audit side checks by them.

/// The hash before a merchant's first decision.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of a record: SHA-256 over the previous hash, a newline, and the record's JSON.
pub fn chain_hash(prev_hash: &str, record: &str) -> String {
    let mut bytes = Vec::with_capacity(prev_hash.len() + 1 + record.len());
    bytes.extend_from_slice(prev_hash.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(record.as_bytes());
    super::sha256_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_depends_on_the_previous_hash_and_the_record() {
        let first = chain_hash(GENESIS_HASH, "{}");
        assert_eq!(first.len(), 64);
        assert_ne!(chain_hash(&first, "{}"), first);
        assert_ne!(chain_hash(GENESIS_HASH, "{ }"), first);
    }
}
