//! Who is calling: bearer keys, their roles and their merchant.
//!
//! Verified keys are cached (moka) for `auth.key_cache_ttl_secs`, unknown ones too, so a
//! flood of bad keys does not become a flood of store queries; so are the tokens that passed,
//! so that a known caller costs no SHA-256. Revoking a key on this replica evicts both at once.

mod keys;

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::{Either, LocalBoxFuture, Ready, ready};
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
    /// Admits the caller when it holds any of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), AuthError> {
        if self.roles.intersects(Roles::of(allowed)) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            Err(AuthError::Forbidden(names.join(", ")))
        }
    }

    /// Admits a merchant-scoped caller holding any of `allowed`, and returns its merchant.
    pub fn merchant_with(&self, allowed: &[Role]) -> Result<MerchantId, AuthError> {
        self.require(allowed)?;
        let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        self.merchant.ok_or_else(|| AuthError::Forbidden(names.join(", ")))
    }
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
    pub fn new(store: Store, bootstrap_key: Option<&str>, cache_ttl: Duration) -> Self {
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
        }
    }

    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer(authorization)?;
        let fingerprint = self.fingerprints.hash_one(token.as_bytes());
        if let Some(principal) = self.recall(token, fingerprint) {
            return Ok(principal);
        }
        self.verify(token, fingerprint).await
    }

    /// The principal of a token verified before, when that still stands.
    fn recall(&self, token: &str, fingerprint: u64) -> Option<Principal> {
        let hit = self.verified.get(&fingerprint)?;
        // Constant time over the whole token (all tokens of ours have the same length).
        let same: bool = hit.token.as_ref().ct_eq(token.as_bytes()).into();
        let current = hit.revocations == self.revocations.load(Ordering::Acquire) && hit.loaded_at.elapsed() < self.ttl;
        (same && current).then(|| hit.principal.clone())
    }

    /// The full check: the bootstrap key, else the stored key's secret hash.
    async fn verify(&self, token: &str, fingerprint: u64) -> Result<Principal, AuthError> {
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
                let loaded = self.store.key(id).await?.map(Arc::new);
                // A revocation while the key was being read may have evicted an entry that
                // this read would now bring back unrevoked: keep it out of the cache.
                if self.revocations.load(Ordering::Acquire) == revocations {
                    self.cache.insert(id, loaded.clone().map(|key| Arc::new(CachedKey { key, loaded_at })));
                }
                (loaded, loaded_at)
            }
        };
        let stored = stored.ok_or(AuthError::Invalid)?;
        if !keys::same_hash(&stored.secret_sha256, &presented) {
            return Err(AuthError::Invalid);
        }
        if stored.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        let principal = Principal { key: Some(stored.id), merchant: stored.merchant, roles: stored.roles };
        let token = token.as_bytes().into();
        self.verified.insert(
            fingerprint,
            Arc::new(VerifiedToken { token, principal: principal.clone(), revocations, loaded_at }),
        );
        Ok(principal)
    }

    /// Drops a key from the caches, so a revocation takes effect on the next request.
    pub fn forget(&self, id: KeyId) {
        // Bumped before the eviction: a request that read the key before this point does not
        // cache it again.
        self.revocations.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(&id);
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

impl FromRequest for Principal {
    type Error = crate::api::ApiError;
    type Future = Either<Ready<Result<Self, Self::Error>>, LocalBoxFuture<'static, Result<Self, Self::Error>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator =
            req.app_data::<web::Data<Authenticator>>().expect("the Authenticator is registered as app data");
        let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        // A token verified before is answered here, without boxing a future or copying the
        // header: that is every checkout lookup after a key's first.
        let token = match bearer(header) {
            Ok(token) => token,
            Err(e) => return Either::Left(ready(Err(e.into()))),
        };
        let fingerprint = authenticator.fingerprints.hash_one(token.as_bytes());
        if let Some(principal) = authenticator.recall(token, fingerprint) {
            record_merchant(&principal);
            return Either::Left(ready(Ok(principal)));
        }
        let authenticator = authenticator.clone();
        let token = token.to_owned();
        Either::Right(Box::pin(async move {
            let principal = authenticator.verify(&token, fingerprint).await?;
            record_merchant(&principal);
            Ok(principal)
        }))
    }
}

fn record_merchant(principal: &Principal) {
    if let Some(merchant) = principal.merchant {
        tracing::Span::current().record("merchant_id", tracing::field::display(merchant));
    }
}
