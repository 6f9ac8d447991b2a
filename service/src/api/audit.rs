//! `/v1/audit`: proving the history. Verification of the merchant's chain (whole or a range
//! of sequence numbers), signed checkpoints and their later check, the published checkpoint
//! keys (the active one and retired ones), and the replay of a recorded decision. `auditor` and `merchant` keys, own merchant
//! only; the public key is public.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use super::access::{Access, Audit};
use super::extract::resource;
use super::history::parse_seq;
use crate::audit::checkpoint::{CheckpointSigner, PublicKey, SignedCheckpoint};
use crate::audit::replay::{self, Replay, ReplayError};
use crate::audit::verify::{self, Scope, Verification};
use crate::domain::chain::GENESIS_HASH;
use crate::rules::Rules;
use crate::store::Store;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/audit/verify").get(verify))
        .service(resource("/v1/audit/public-key").get(public_key))
        .service(resource("/v1/audit/public-keys").get(public_keys))
        .service(resource("/v1/audit/checkpoints").post(create_checkpoint))
        .service(resource("/v1/audit/checkpoints/verify").post(verify_checkpoint))
        .service(resource("/v1/decisions/{seq}/replay").post(replay_decision));
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// First sequence number to check (default 1). A range after 1 trusts the record before it.
    #[param(minimum = 1)]
    pub from: Option<i64>,
    /// Last sequence number to check (default: the head); not below `from`.
    #[param(minimum = 1)]
    pub to: Option<i64>,
    /// Re-hash from record 1 instead of from the newest signed checkpoint (ignored with `from`).
    pub full: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointCheckQuery {
    /// Re-hash from record 1 instead of from the newest kept checkpoint at or before this one.
    pub full: Option<bool>,
}

fn scope(full: Option<bool>) -> Scope {
    if full == Some(true) { Scope::Full } else { Scope::SinceCheckpoint }
}

/// Checks the merchant's decision chain, or a range of it, and names the first broken record.
/// Without `from`, the check starts at the newest signed checkpoint the service made (its
/// record must still have the hash it states) and re-hashes every record after it; `full=true`
/// re-hashes from record 1.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyQuery), security(("bearer" = [])),
    responses((status = 200, description = "The result; `intact`, or the first broken record", body = Verification)))]
pub async fn verify(
    access: Access<Audit>,
    store: web::Data<Store>,
    signer: web::Data<CheckpointSigner>,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let from = query.from.unwrap_or(1);
    if from < 1 || query.to.is_some_and(|to| to < from) {
        return Err(ApiError::InvalidQuery("give 1 <= from <= to".into()));
    }
    let verification = match query.from {
        Some(from) => verify::verify_range(&store, merchant, from, query.to).await?,
        None => verify::verify_to(&store, &signer, merchant, query.to, scope(query.full)).await?,
    };
    Ok(HttpResponse::Ok().json(verification))
}

/// The key that signs checkpoints, to check them without the service.
#[utoipa::path(get, path = "/v1/audit/public-key", tag = "audit",
    responses((status = 200, description = "The key", body = PublicKey)))]
pub async fn public_key(signer: web::Data<CheckpointSigner>) -> HttpResponse {
    HttpResponse::Ok().json(signer.public_key())
}

#[derive(Serialize, ToSchema)]
pub struct PublicKeys {
    /// The active key first, then retired keys whose checkpoints still verify.
    pub keys: Vec<PublicKey>,
}

/// Every key whose checkpoints verify: the active one and those retired by a rotation.
#[utoipa::path(get, path = "/v1/audit/public-keys", tag = "audit",
    responses((status = 200, description = "The keys", body = PublicKeys)))]
pub async fn public_keys(signer: web::Data<CheckpointSigner>) -> HttpResponse {
    HttpResponse::Ok().json(PublicKeys { keys: signer.public_keys() })
}

/// Signs the chain as it stands: its length and head hash, now. The chain is verified first
/// (from the newest checkpoint, as `GET /v1/audit/verify` does); a broken chain is never
/// signed. The service keeps the checkpoint, so later checks start from it.
#[utoipa::path(post, path = "/v1/audit/checkpoints", tag = "audit", security(("bearer" = [])),
    responses((status = 201, description = "The signed checkpoint", body = SignedCheckpoint),
              (status = 409, description = "`chain_broken`: the chain does not verify, so it is not signed")))]
pub async fn create_checkpoint(
    access: Access<Audit>,
    store: web::Data<Store>,
    signer: web::Data<CheckpointSigner>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let verification = verify::verify_to(&store, &signer, merchant, None, Scope::SinceCheckpoint).await?;
    if let Some(broken) = verification.first_broken {
        return Err(ApiError::Conflict {
            code: "chain_broken",
            message: format!("the chain is broken at record {}: {}; it cannot be signed", broken.seq, broken.reason),
        });
    }
    // What the checkpoint covers must survive a power loss before it is signed.
    store.make_durable().await?;
    let signed = signer.sign(merchant.to_string(), verification.head_seq, verification.head_hash, Utc::now());
    let json = serde_json::to_string(&signed).expect("a checkpoint serializes");
    store.save_checkpoint(merchant, signed.checkpoint.seq, &json).await?;
    Ok(HttpResponse::Created().json(signed))
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointCheck {
    /// Everything holds: the service signed it, and the chain up to it is unchanged.
    pub valid: bool,
    pub signature_valid: bool,
    /// The records up to `seq` verify (from the newest kept checkpoint at or before it, or from
    /// record 1 with `full=true`) and record `seq` still has the checkpoint's hash.
    pub chain_matches: bool,
    pub verification: Verification,
    pub reason: Option<String>,
}

/// Checks a checkpoint made earlier: its signature, and that nothing up to it has changed.
#[utoipa::path(post, path = "/v1/audit/checkpoints/verify", tag = "audit", request_body = SignedCheckpoint,
    params(CheckpointCheckQuery), security(("bearer" = [])),
    responses((status = 200, description = "The check's result", body = CheckpointCheck),
              (status = 404, description = "`not_found`: the checkpoint is another merchant's")))]
pub async fn verify_checkpoint(
    access: Access<Audit>,
    store: web::Data<Store>,
    signer: web::Data<CheckpointSigner>,
    query: web::Query<CheckpointCheckQuery>,
    body: web::Json<SignedCheckpoint>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let checkpoint = &body.checkpoint;
    if checkpoint.merchant_id != merchant.to_string() {
        return Err(ApiError::not_found("a checkpoint of this merchant"));
    }
    if checkpoint.seq < 0 {
        return Err(ApiError::InvalidBody("checkpoint.seq must not be negative".into()));
    }
    let signature_valid = signer.signed_this(&body);
    let verification = verify::verify_to(&store, &signer, merchant, Some(checkpoint.seq), scope(query.full)).await?;
    let stored_hash = match checkpoint.seq {
        0 => Some(GENESIS_HASH.to_owned()),
        seq => store.decision(merchant, seq).await?.map(|d| d.hash),
    };
    let head_matches = stored_hash.as_deref() == Some(checkpoint.head_hash.as_str());
    let chain_matches = verification.intact && head_matches;
    let reason = if !signature_valid {
        Some("the signature is not this service's signature over this checkpoint".to_owned())
    } else if let Some(broken) = &verification.first_broken {
        Some(format!("record {} is broken: {}", broken.seq, broken.reason))
    } else if !head_matches {
        Some(format!("record {} no longer has the checkpoint's hash", checkpoint.seq))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(CheckpointCheck {
        valid: signature_valid && chain_matches,
        signature_valid,
        chain_matches,
        verification,
        reason,
    }))
}

/// Runs a recorded decision again with its recorded inputs, parameters, rule version and
/// guardrails, and reports whether the result is identical, with the differences if not.
#[utoipa::path(post, path = "/v1/decisions/{seq}/replay", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "The replay's result", body = Replay),
              (status = 409, description = "`not_a_rule_decision` (a catalogue price event: no rule ran) or \
                                            `unreadable_record`"),
              (status = 429, description = "`too_many_requests`: too many rule runs at once")))]
pub async fn replay_decision(
    access: Access<Audit>,
    store: web::Data<Store>,
    rules: web::Data<Rules>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = access.merchant();
    let seq = parse_seq(&path)?;
    match replay::replay(&store, &rules, merchant, seq).await {
        Ok(replay) => Ok(HttpResponse::Ok().json(replay)),
        Err(ReplayError::UnknownDecision(seq)) => Err(ApiError::not_found(format!("decision {seq}"))),
        Err(e @ ReplayError::NotARuleDecision(_)) => {
            Err(ApiError::Conflict { code: "not_a_rule_decision", message: e.to_string() })
        }
        Err(e @ ReplayError::UnreadableRecord(..)) => {
            Err(ApiError::Conflict { code: "unreadable_record", message: e.to_string() })
        }
        Err(ReplayError::Rule(e)) => Err(e.into()),
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}
