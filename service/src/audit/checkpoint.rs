//! Signed checkpoints of a merchant's decision chain: the chain's length and head hash at an
//! instant, signed with the service's Ed25519 key. An auditor who keeps a checkpoint can later
//! show that nothing up to it changed: the stored record at `seq` must still hash to
//! `head_hash`, and the chain up to it must verify; editing, deleting or reordering anything
//! before the checkpoint breaks one or the other, and the signature stops anyone but the
//! service from making a checkpoint for an edited chain.
//!
//! The keys live outside the database (see [`super::keys`]); the active key's public half is
//! published (raw, hex and PEM) at `GET /v1/audit/public-key`, and every key whose checkpoints
//! still verify, retired ones included, at `GET /v1/audit/public-keys`. The signed message is the domain tag `pricing-checkpoint-v1`,
//! a newline, and the checkpoint's canonical JSON (fields in the order below), so a signature
//! can be checked offline with any Ed25519 tool.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::keys::KeyRing;

const DOMAIN_TAG: &[u8] = b"pricing-checkpoint-v1\n";
const ALGORITHM: &str = "ed25519";
/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// What a checkpoint states. Field order is the canonical JSON's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub merchant_id: String,
    /// The chain's length: records 1 to `seq`.
    #[serde(deserialize_with = "crate::domain::whole::integer")]
    #[schema(minimum = 0)]
    pub seq: i64,
    /// The hash of record `seq` (the genesis hash for an empty chain).
    pub head_hash: String,
    pub signed_at: DateTime<Utc>,
    pub algorithm: String,
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// Base64 of the Ed25519 signature over the domain tag and the checkpoint's JSON.
    pub signature: String,
}

/// The published verifying key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicKey {
    pub algorithm: &'static str,
    pub key_id: String,
    pub public_key_hex: String,
    /// SubjectPublicKeyInfo PEM, for `openssl pkeyutl -verify -rawin`.
    pub public_key_pem: String,
    /// How the signed message is made.
    pub message: &'static str,
}

pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
    /// Every key whose checkpoints verify, by id (the active one included).
    verifying: BTreeMap<String, VerifyingKey>,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

fn message(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut message = DOMAIN_TAG.to_vec();
    message.extend_from_slice(&serde_json::to_vec(checkpoint).expect("a checkpoint serializes"));
    message
}

impl CheckpointSigner {
    pub fn new(ring: KeyRing) -> Self {
        Self { key: ring.active, key_id: ring.active_id, verifying: ring.verifying }
    }

    /// The key that signs.
    pub fn public_key(&self) -> PublicKey {
        published(&self.key_id, &self.key.verifying_key())
    }

    /// Every key whose checkpoints verify, the active one first.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        let mut keys = vec![self.public_key()];
        keys.extend(self.verifying.iter().filter(|(id, _)| **id != self.key_id).map(|(id, key)| published(id, key)));
        keys
    }

    pub fn sign(&self, merchant_id: String, seq: i64, head_hash: String, signed_at: DateTime<Utc>) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            merchant_id,
            seq,
            head_hash,
            signed_at,
            algorithm: ALGORITHM.to_owned(),
            key_id: self.key_id.clone(),
        };
        let signature = BASE64.encode(self.key.sign(&message(&checkpoint)).to_bytes());
        SignedCheckpoint { checkpoint, signature }
    }

    /// Whether one of this service's keys (active or retired) made the signature over exactly
    /// this checkpoint.
    pub fn signed_this(&self, signed: &SignedCheckpoint) -> bool {
        let Ok(bytes) = BASE64.decode(&signed.signature) else { return false };
        let Ok(signature) = Signature::from_slice(&bytes) else { return false };
        let Some(key) = self.verifying.get(&signed.checkpoint.key_id) else { return false };
        signed.checkpoint.algorithm == ALGORITHM && key.verify(&message(&signed.checkpoint), &signature).is_ok()
    }
}

fn published(key_id: &str, public: &VerifyingKey) -> PublicKey {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public.as_bytes());
    PublicKey {
        algorithm: ALGORITHM,
        key_id: key_id.to_owned(),
        public_key_hex: hex::encode(public.as_bytes()),
        public_key_pem: format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", BASE64.encode(der)),
        message: "\"pricing-checkpoint-v1\\n\" followed by the checkpoint object as compact JSON, fields in order",
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::key_id;
    use super::*;

    fn signer_with(seed: u8, retired: &[&CheckpointSigner]) -> CheckpointSigner {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut verifying: BTreeMap<_, _> = retired.iter().map(|s| (s.key_id.clone(), s.key.verifying_key())).collect();
        verifying.insert(key_id(&key.verifying_key()), key.verifying_key());
        CheckpointSigner { key_id: key_id(&key.verifying_key()), key, verifying }
    }

    fn signer() -> CheckpointSigner {
        signer_with(7, &[])
    }

    #[test]
    fn a_retired_key_still_verifies_its_checkpoints_and_an_unknown_one_does_not() {
        let old = signer_with(1, &[]);
        let signed_before = old.sign("m".into(), 3, "ab".repeat(32), Utc::now());
        let rotated = signer_with(2, &[&old]);
        assert!(rotated.signed_this(&signed_before));
        assert_ne!(rotated.public_key().key_id, old.public_key().key_id);
        assert_eq!(rotated.public_keys().len(), 2);
        let stranger = signer_with(3, &[]);
        assert!(!stranger.signed_this(&signed_before));
        // Naming a known key id does not help a signature made with another key.
        let mut relabelled = stranger.sign("m".into(), 3, "ab".repeat(32), Utc::now());
        relabelled.checkpoint.key_id = old.public_key().key_id;
        assert!(!rotated.signed_this(&relabelled));
    }

    #[test]
    fn a_checkpoint_verifies_and_any_change_to_it_does_not() {
        let signer = signer();
        let signed = signer.sign("m".into(), 12, "ab".repeat(32), Utc::now());
        assert!(signer.signed_this(&signed));
        let mut longer = signed.clone();
        longer.checkpoint.seq = 13;
        assert!(!signer.signed_this(&longer));
        let mut other_head = signed.clone();
        other_head.checkpoint.head_hash = "cd".repeat(32);
        assert!(!signer.signed_this(&other_head));
        let mut garbage = signed;
        garbage.signature = "not base64!".into();
        assert!(!signer.signed_this(&garbage));
    }

    #[test]
    fn the_published_key_checks_the_signature_offline() {
        let signer = signer();
        let signed = signer.sign("m".into(), 1, "00".repeat(32), Utc::now());
        let public = signer.public_key();
        let bytes: [u8; 32] = hex::decode(&public.public_key_hex).unwrap().try_into().unwrap();
        let verifying = VerifyingKey::from_bytes(&bytes).unwrap();
        let mut message = b"pricing-checkpoint-v1\n".to_vec();
        message.extend_from_slice(serde_json::to_string(&signed.checkpoint).unwrap().as_bytes());
        let signature = Signature::from_slice(&BASE64.decode(&signed.signature).unwrap()).unwrap();
        assert!(verifying.verify(&message, &signature).is_ok());
        assert!(public.public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
    }
}
