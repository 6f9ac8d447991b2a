//! Who may call a route, in the route's signature: a handler takes [`Access<P>`], and the
//! [`Policy`] `P` names the roles admitted, so a route cannot forget its check. Extraction
//! authenticates the bearer key (401 when it is missing, not valid or revoked) and then admits
//! it under `P` (403, naming the roles admitted); a merchant-scoped route's merchant is always
//! the caller's own, so other merchants' resources are simply not found (404).

use std::marker::PhantomData;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::{Either, LocalBoxFuture, Ready, ready};

use super::ApiError;
use crate::auth::{Authenticator, Principal, Recall, Role};
use crate::domain::MerchantId;

/// The roles a route admits.
pub trait Policy: 'static {
    /// A caller holding any one of these is admitted. Their order is the order the refusal
    /// names them in.
    const ROLES: &'static [Role];
    /// Whether the caller must belong to a merchant (every route but the operator's).
    const MERCHANT_SCOPED: bool;
}

macro_rules! policy {
    ($(#[$doc:meta])* $name:ident, [$($role:ident),+], $scoped:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl Policy for $name {
            const ROLES: &'static [Role] = &[$(Role::$role),+];
            const MERCHANT_SCOPED: bool = $scoped;
        }
    };
}

policy!(
    /// The operator: merchants and their keys.
    Operator, [Admin], false
);
policy!(
    /// Changing a merchant's own catalogue, rules and settings.
    Write, [Merchant], true
);
policy!(
    /// Reading a merchant's catalogue and rules.
    Read, [Merchant, Auditor], true
);
policy!(
    /// Reading and checking a merchant's decision history.
    Audit, [Auditor, Merchant], true
);
policy!(
    /// Sending signals: competitor prices and demand.
    Feed, [Feed, Merchant], true
);
policy!(
    /// Checkout's price lookups.
    Checkout, [Checkout], true
);
policy!(
    /// Deciding on proposals (held price changes): the approver, or the merchant.
    Decide, [Approver, Merchant], true
);
policy!(
    /// Reading proposals.
    ReadProposals, [Approver, Merchant, Auditor], true
);

/// A caller admitted by the policy `P`.
pub struct Access<P: Policy> {
    merchant: Option<MerchantId>,
    key: Option<crate::domain::KeyId>,
    policy: PhantomData<P>,
}

/// The operator.
pub type Admin = Access<Operator>;

impl<P: Policy> Access<P> {
    /// The caller's merchant: the one every merchant-scoped route acts on. Only for a
    /// merchant-scoped policy (refused at compile time otherwise), which admits no caller
    /// without one.
    pub fn merchant(&self) -> MerchantId {
        const { assert!(P::MERCHANT_SCOPED, "only a merchant-scoped policy's caller has a merchant") };
        self.merchant.expect("a merchant-scoped policy admits only merchants' keys")
    }

    /// The id of the caller's key, as records name who acted (`configuration` for the
    /// operator's bootstrap key, which has none).
    pub fn key_id(&self) -> String {
        self.key.as_ref().map_or_else(|| "configuration".to_owned(), |k| k.to_string())
    }

    fn admit(principal: Principal) -> Result<Self, ApiError> {
        if let Some(merchant) = principal.merchant {
            tracing::Span::current().record("merchant_id", tracing::field::display(merchant));
        }
        principal.admit(P::ROLES, P::MERCHANT_SCOPED)?;
        Ok(Self { merchant: principal.merchant, key: principal.key, policy: PhantomData })
    }
}

impl<P: Policy> FromRequest for Access<P> {
    type Error = ApiError;
    type Future = Either<Ready<Result<Self, ApiError>>, LocalBoxFuture<'static, Result<Self, ApiError>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator =
            req.app_data::<web::Data<Authenticator>>().expect("the Authenticator is registered as app data");
        let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        // A token verified before is answered here, without boxing a future or copying the
        // header: that is every checkout lookup after a key's first.
        match authenticator.recall(header) {
            Err(e) => Either::Left(ready(Err(e.into()))),
            Ok(Recall::Known(principal)) => Either::Left(ready(Self::admit(principal))),
            Ok(Recall::Unverified(unverified)) => {
                let authenticator = authenticator.clone();
                Either::Right(Box::pin(async move { Self::admit(authenticator.verify(unverified).await?) }))
            }
        }
    }
}
