//! Who is calling: bearer keys, their roles and their merchant.
//!
//! Verified keys are cached (moka) for `auth.key_cache_ttl_secs`, unknown ones too, so a
//! flood of bad keys does not become a flood of store queries. Revoking a key on this replica
//! evicts it at once.

mod keys;
mod roles;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};

pub use keys::{IssuedKey, issue, parse_token, sha256};
pub use roles::{Role, Roles};

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
    store: Arc<dyn Store>,
    bootstrap_sha256: Option<[u8; 32]>,
    cache: moka::sync::Cache<KeyId, Option<Arc<StoredKey>>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, bootstrap_key: Option<&str>, cache_ttl: Duration) -> Self {
        Self {
            store,
            bootstrap_sha256: bootstrap_key.map(|k| sha256(k.as_bytes())),
            cache: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(cache_ttl).build(),
        }
    }

    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        if let Some(bootstrap) = &self.bootstrap_sha256
            && keys::same_hash(bootstrap, &sha256(token.as_bytes()))
        {
            return Ok(Principal { key: None, merchant: None, roles: Roles::of(&[Role::Admin]) });
        }
        let (id, presented) = parse_token(token).ok_or(AuthError::Invalid)?;
        let stored = match self.cache.get(&id) {
            Some(cached) => cached,
            None => {
                let loaded = self.store.key(id).await?.map(Arc::new);
                self.cache.insert(id, loaded.clone());
                loaded
            }
        };
        let stored = stored.ok_or(AuthError::Invalid)?;
        if !keys::same_hash(&stored.secret_sha256, &presented) {
            return Err(AuthError::Invalid);
        }
        if stored.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(Principal { key: Some(stored.id), merchant: stored.merchant, roles: stored.roles })
    }

    /// Drops a key from the cache, so a revocation takes effect on the next request.
    pub fn forget(&self, id: KeyId) {
        self.cache.invalidate(&id);
    }
}

impl FromRequest for Principal {
    type Error = crate::api::ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Box::pin(async move {
            let authenticator = authenticator.expect("the Authenticator is registered as app data");
            let principal = authenticator.authenticate(header.as_deref()).await?;
            if let Some(merchant) = principal.merchant {
                tracing::Span::current().record("merchant_id", tracing::field::display(merchant));
            }
            Ok(principal)
        })
    }
}
