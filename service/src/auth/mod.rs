//! Who is calling: bearer keys, their roles and their merchant.
//!
//! Verified keys are cached (moka) for `auth.key_cache_ttl_secs`, unknown ones too, so a
//! flood of bad keys does not become a flood of store queries; so are the tokens that passed,
//! so that a known caller costs no SHA-256. Revoking a key on this replica evicts both at once.
//!
//! When the store cannot be reached (an outage, a restart), a key this replica verified within
//! `auth.outage_grace_secs` is still accepted as it was last read: checkout's lookups go on
//! answering from the price cache while the database is down. Nothing can be revoked while the
//! store is down, so the only key this lets through is one revoked on another replica in the
//! cache's last `key_cache_ttl_secs` before the outage.

mod keys;

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

pub use keys::{IssuedKey, issue, parse_token};

pub use crate::domain::{Role, Roles, sha256};

use crate::domain::{KeyId, MerchantId};
use crate::store::{Store, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs an `Authorization: Bearer <key>` header")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key has been revoked")]
    Revoked,
    #[error("this key lacks the role this endpoint needs (one of: {0})")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `None` for the bootstrap admin key from configuration.
    pub key: Option<KeyId>,
    pub merchant: Option<MerchantId>,
    pub roles: Roles,
}

impl Principal {
    /// Admits the caller when it holds any of `allowed` and, when `merchant_scoped`, belongs
    /// to a merchant. Both refusals name the roles the endpoint admits.
    pub fn admit(&self, allowed: &[Role], merchant_scoped: bool) -> Result<(), AuthError> {
        if self.roles.intersects(Roles::of(allowed)) && (!merchant_scoped || self.merchant.is_some()) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            Err(AuthError::Forbidden(names.join(", ")))
        }
    }
}

/// What [`Authenticator::recall`] found for a bearer token.
pub enum Recall {
    /// A token verified before, still standing.
    Known(Principal),
    /// A token that needs the full check, [`Authenticator::verify`].
    Unverified(Unverified),
}

/// A bearer token awaiting its full check.
pub struct Unverified {
    token: String,
    fingerprint: u64,
}

pub struct Authenticator {
    store: Store,
    bootstrap_sha256: Option<[u8; 32]>,
    /// The bootstrap key's [`Self::fingerprint`]: a request whose token does not share it is
    /// not the bootstrap key, so the SHA-256 comparison runs only for likely candidates.
    bootstrap_fingerprint: Option<u64>,
    cache: moka::sync::Cache<KeyId, Option<Arc<CachedKey>>>,
    /// Tokens that passed the full check, by fingerprint: a hit costs one keyed hash, one map
    /// read and a constant-time comparison of the whole token instead of parsing it and
    /// hashing its secret with SHA-256 (the bulk of authenticating a checkout lookup).
    verified: moka::sync::Cache<u64, Arc<VerifiedToken>>,
    /// Keyed SipHash with a key drawn at start, so that nobody can choose tokens whose
    /// fingerprints collide with a given one.
    fingerprints: std::hash::RandomState,
    /// Bumped by every [`Self::forget`]; a verified token recorded under an older value is
    /// checked again in full, so a revocation is seen by the very next request.
    revocations: AtomicU64,
    ttl: Duration,
    /// Keys as last read from the store, for when it cannot be reached.
    last_read: moka::sync::Cache<KeyId, Arc<StoredKey>>,
}

/// A stored key and when it was read.
struct CachedKey {
    key: Arc<StoredKey>,
    loaded_at: Instant,
}

/// A token that was checked in full, and what it proved.
struct VerifiedToken {
    token: Box<[u8]>,
    principal: Principal,
    /// [`Authenticator::revocations`] before the key was read.
    revocations: u64,
    /// When the key was read from the store: the entry lives no longer than the key cache
    /// would keep the key, so revocations on other replicas arrive as soon as before.
    loaded_at: Instant,
}

impl Authenticator {
    pub fn new(store: Store, bootstrap_key: Option<&str>, cache_ttl: Duration, outage_grace: Duration) -> Self {
        let fingerprints = std::hash::RandomState::new();
        Self {
            store,
            bootstrap_sha256: bootstrap_key.map(|k| sha256(k.as_bytes())),
            bootstrap_fingerprint: bootstrap_key.map(|k| fingerprints.hash_one(k.as_bytes())),
            cache: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(cache_ttl).build(),
            verified: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(cache_ttl).build(),
            fingerprints,
            revocations: AtomicU64::new(0),
            ttl: cache_ttl,
            last_read: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(outage_grace).build(),
        }
    }

    /// Who presents `authorization` (an `Authorization` header's value), when that is known
    /// without the store: a token verified before is answered here, without a store query,
    /// SHA-256 or a copy of the header. That is every checkout lookup after a key's first;
    /// the others go on to [`Self::verify`].
    pub fn recall(&self, authorization: Option<&str>) -> Result<Recall, AuthError> {
        let token = bearer(authorization)?;
        let fingerprint = self.fingerprints.hash_one(token.as_bytes());
        Ok(match self.recalled(token, fingerprint) {
            Some(principal) => Recall::Known(principal),
            None => Recall::Unverified(Unverified { token: token.to_owned(), fingerprint }),
        })
    }

    /// The principal of a token verified before, when that still stands.
    fn recalled(&self, token: &str, fingerprint: u64) -> Option<Principal> {
        let hit = self.verified.get(&fingerprint)?;
        // Constant time over the whole token (all tokens of ours have the same length).
        let same: bool = hit.token.as_ref().ct_eq(token.as_bytes()).into();
        let current = hit.revocations == self.revocations.load(Ordering::Acquire) && hit.loaded_at.elapsed() < self.ttl;
        (same && current).then(|| hit.principal.clone())
    }

    /// The full check: the bootstrap key, else the stored key's secret hash.
    pub async fn verify(&self, unverified: Unverified) -> Result<Principal, AuthError> {
        let Unverified { token, fingerprint } = unverified;
        let token = token.as_str();
        if let Some(bootstrap) = &self.bootstrap_sha256
            && self.bootstrap_fingerprint == Some(fingerprint)
            && keys::same_hash(bootstrap, &sha256(token.as_bytes()))
        {
            return Ok(Principal { key: None, merchant: None, roles: Roles::of(&[Role::Admin]) });
        }
        let (id, presented) = parse_token(token).ok_or(AuthError::Invalid)?;
        let revocations = self.revocations.load(Ordering::Acquire);
        let (stored, loaded_at) = match self.cache.get(&id) {
            Some(cached) => cached.map_or((None, Instant::now()), |c| (Some(c.key.clone()), c.loaded_at)),
            None => {
                let loaded_at = Instant::now();
                let loaded = match self.store.key(id).await {
                    Ok(loaded) => loaded.map(Arc::new),
                    // The store is out of reach: the key as last read, checked as below, but
                    // neither cached nor remembered as verified (the next request asks again).
                    Err(e) => {
                        let last = self.last_read.get(&id).ok_or(e)?;
                        return self.admit_stored(&last, &presented);
                    }
                };
                if let Some(key) = &loaded {
                    self.last_read.insert(id, key.clone());
                }
                // A revocation while the key was being read may have evicted an entry that
                // this read would now bring back unrevoked: keep it out of the cache.
                if self.revocations.load(Ordering::Acquire) == revocations {
                    self.cache.insert(id, loaded.clone().map(|key| Arc::new(CachedKey { key, loaded_at })));
                }
                (loaded, loaded_at)
            }
        };
        let stored = stored.ok_or(AuthError::Invalid)?;
        let principal = self.admit_stored(&stored, &presented)?;
        let token = token.as_bytes().into();
        self.verified.insert(
            fingerprint,
            Arc::new(VerifiedToken { token, principal: principal.clone(), revocations, loaded_at }),
        );
        Ok(principal)
    }

    /// The principal of a stored key whose secret hashes to `presented`, unless revoked.
    fn admit_stored(&self, stored: &StoredKey, presented: &[u8; 32]) -> Result<Principal, AuthError> {
        if !keys::same_hash(&stored.secret_sha256, presented) {
            return Err(AuthError::Invalid);
        }
        if stored.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(Principal { key: Some(stored.id), merchant: stored.merchant, roles: stored.roles })
    }

    /// Whether a bootstrap admin key comes from configuration (`PRICING_ADMIN_KEY`).
    pub fn has_bootstrap_key(&self) -> bool {
        self.bootstrap_sha256.is_some()
    }

    /// Drops a key from the caches, so a revocation takes effect on the next request.
    pub fn forget(&self, id: KeyId) {
        // Bumped before the eviction: a request that read the key before this point does not
        // cache it again.
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(&id);
        self.last_read.invalidate(&id);
        self.verified.invalidate_all();
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(merchant: bool, roles: &[Role]) -> Principal {
        Principal { key: None, merchant: merchant.then(MerchantId::generate), roles: Roles::of(roles) }
    }

    #[test]
    fn a_caller_is_admitted_by_any_one_of_the_roles_and_its_merchant() {
        let both = principal(true, &[Role::Checkout, Role::Feed]);
        assert!(both.admit(&[Role::Feed, Role::Merchant], true).is_ok());
        let refused = both.admit(&[Role::Auditor, Role::Merchant], true).unwrap_err();
        assert_eq!(refused.to_string(), "this key lacks the role this endpoint needs (one of: auditor, merchant)");
        let admin = principal(false, &[Role::Admin]);
        assert!(admin.admit(&[Role::Admin], false).is_ok());
        assert!(matches!(admin.admit(&[Role::Admin], true), Err(AuthError::Forbidden(_))));
        assert!(matches!(admin.admit(&[Role::Merchant], true), Err(AuthError::Forbidden(_))));
    }
}
