//! API key tokens: `pk_<key id>_<secret>`, where the secret is 256 random bits.
//!
//! The id half finds the stored key; the secret half is kept only as its SHA-256 and compared
//! in constant time. A token is shown once, when it is issued.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::Roles;
use crate::domain::{KeyId, MerchantId, sha256};
use crate::store::{StoredKey, now};

const PREFIX: &str = "pk_";

/// A freshly issued key: what to store, and the token to hand over once.
pub struct IssuedKey {
    pub stored: StoredKey,
    pub token: String,
}

pub fn issue(merchant: Option<MerchantId>, roles: Roles, label: Option<String>) -> IssuedKey {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random source is available");
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let id = KeyId::generate();
    IssuedKey {
        token: format!("{PREFIX}{}_{secret}", id.simple()),
        stored: StoredKey {
            id,
            merchant,
            roles,
            secret_sha256: sha256(secret.as_bytes()),
            label,
            created_at: now(),
            revoked_at: None,
        },
    }
}

/// A token split into its id and the hash of its secret; `None` when it is not one of ours.
pub fn parse_token(token: &str) -> Option<(KeyId, [u8; 32])> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    let id = KeyId::parse_simple(id).ok()?;
    Some((id, sha256(secret.as_bytes())))
}

/// Constant-time equality of two hashes.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn an_issued_token_parses_back_to_its_id_and_secret_hash() {
        let issued = issue(None, Roles::of(&[Role::Admin]), None);
        let (id, hash) = parse_token(&issued.token).unwrap();
        assert_eq!(id, issued.stored.id);
        assert!(same_hash(&hash, &issued.stored.secret_sha256));
        assert!(!issued.token.contains(&hex::encode(issued.stored.secret_sha256)));
    }

    #[test]
    fn two_tokens_never_share_a_secret() {
        let a = issue(None, Roles::default(), None);
        let b = issue(None, Roles::default(), None);
        assert_ne!(a.stored.secret_sha256, b.stored.secret_sha256);
    }

    #[test]
    fn a_tampered_or_foreign_token_does_not_match() {
        let issued = issue(None, Roles::default(), None);
        let mut tampered = issued.token.clone();
        tampered.pop();
        tampered.push(if issued.token.ends_with('A') { 'B' } else { 'A' });
        let (_, hash) = parse_token(&tampered).unwrap();
        assert!(!same_hash(&hash, &issued.stored.secret_sha256));
        for foreign in ["", "pk_", "pk_nothex_secret", "Bearer x", "sk_live_123"] {
            assert!(parse_token(foreign).is_none(), "{foreign}");
        }
    }
}
