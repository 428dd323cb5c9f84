//! The signed key record (docs/crypto.md §3): an account's own statement,
//! signed with its Ed25519 key, that a user id and an identity own a pair of
//! public keys. The Go SDK's `sdk/keyrecord`.
//!
//! The record proves possession: only the holder of the Ed25519 private key
//! can sign it, so a sign-up cannot publish another account's keys as its
//! own, and a client that looks up an identity checks that the keys the
//! server hands out were vouched for by that account under that identity
//! and user id.
//!
//! ```text
//! "zsm v1 key-record" || 0x00 || user_id (16) || u8(len(identity)) || identity
//!   || x25519_public (32) || ed25519_public (32)
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use uuid::Uuid;

/// The record version this module signs and verifies.
pub const VERSION: u32 = 1;

const LABEL: &[u8] = b"zsm v1 key-record";

/// Why a key record was refused. Every refusal is a bad signature: a record
/// that cannot be encoded has no message, so nothing verifies as it.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KeyRecordError {
    /// The signature does not verify, is not canonical base64 of 64 bytes,
    /// or the record cannot be encoded (the reason says which).
    #[error("the key record's signature does not verify: {0}")]
    BadSignature(&'static str),
}

/// What version 1 vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The account.
    pub user_id: Uuid,
    /// Its identity, normalized.
    pub identity: String,
    /// The X25519 public key.
    pub x25519: [u8; 32],
    /// The Ed25519 public key; also the key that signs the record.
    pub ed25519: [u8; 32],
}

impl Record {
    /// Builds a record from the public keys as they travel (canonical
    /// standard base64 of 32 bytes each).
    pub fn from_base64(user_id: Uuid, identity: &str, x25519: &str, ed25519: &str) -> Result<Record, KeyRecordError> {
        let key = |s: &str| -> Result<[u8; 32], KeyRecordError> {
            crate::b64::decode(s)
                .and_then(|b| b.try_into().ok())
                .ok_or(KeyRecordError::BadSignature(
                    "a public key is not 32 bytes of canonical base64",
                ))
        };
        Ok(Record {
            user_id,
            identity: identity.to_owned(),
            x25519: key(x25519)?,
            ed25519: key(ed25519)?,
        })
    }

    /// The signed bytes. Refused (no message, so nothing verifies) for an
    /// identity that is not in normal form or longer than 255 bytes, and for
    /// an Ed25519 key of small order, under which anybody can forge
    /// signatures.
    pub fn message(&self) -> Result<Vec<u8>, KeyRecordError> {
        if !normalized(&self.identity) {
            return Err(KeyRecordError::BadSignature("the identity is not normalized"));
        }
        if small_order(&self.ed25519) {
            return Err(KeyRecordError::BadSignature(
                "the Ed25519 key is a point of small order",
            ));
        }
        let mut m = Vec::with_capacity(LABEL.len() + 1 + 16 + 1 + self.identity.len() + 64);
        m.extend_from_slice(LABEL);
        m.push(0);
        m.extend_from_slice(self.user_id.as_bytes());
        m.push(self.identity.len() as u8);
        m.extend_from_slice(self.identity.as_bytes());
        m.extend_from_slice(&self.x25519);
        m.extend_from_slice(&self.ed25519);
        Ok(m)
    }

    /// Signs the record with `key`, which must be the private half of
    /// [`Record::ed25519`]; returns `base64(signature)`.
    pub fn sign(&self, key: &SigningKey) -> Result<String, KeyRecordError> {
        if key.verifying_key().to_bytes() != self.ed25519 {
            return Err(KeyRecordError::BadSignature(
                "the signing key is not the record's Ed25519 key",
            ));
        }
        let m = self.message()?;
        Ok(crate::b64::encode(&key.sign(&m).to_bytes()))
    }

    /// Checks `signature` over the record under the record's own Ed25519
    /// key: a record is always signed by the key it publishes.
    pub fn verify(&self, signature: &str) -> Result<(), KeyRecordError> {
        let m = self.message()?;
        verify_ed25519(&self.ed25519, &m, signature).map_err(KeyRecordError::BadSignature)
    }
}

/// Whether `identity` is in the normal form of `srpgroup.NormalizeIdentity`
/// (normalizing it again changes nothing) and at most 255 bytes, the form
/// every signed structure names identities in.
pub(crate) fn normalized(identity: &str) -> bool {
    identity.len() <= 255 && crate::identity::normalize(identity).as_deref() == Ok(identity)
}

/// Verifies an Ed25519 signature given as canonical standard base64 of 64
/// bytes, as Go's `crypto/ed25519.Verify` does (cofactorless, canonical S).
pub(crate) fn verify_ed25519(public: &[u8; 32], message: &[u8], signature: &str) -> Result<(), &'static str> {
    let sig: [u8; 64] = crate::b64::decode(signature)
        .and_then(|b| b.try_into().ok())
        .ok_or("the signature is not canonical base64 of 64 bytes")?;
    verify_raw(public, message, &sig)
}

/// [`verify_ed25519`] of signature bytes.
pub(crate) fn verify_raw(public: &[u8; 32], message: &[u8], sig: &[u8; 64]) -> Result<(), &'static str> {
    let vk = VerifyingKey::from_bytes(public).map_err(|_| "the public key is not a point")?;
    vk.verify(message, &Signature::from_bytes(sig))
        .map_err(|_| "the signature does not verify")
}

/// The encodings of the Ed25519 points of order 1, 2, 4 and 8, as y with the
/// sign bit cleared (including the non-canonical y = p and y = p + 1): the
/// list libsodium refuses, and Go's keyrecord.
const SMALL_ORDER: [[u8; 32]; 7] = [
    [0; 32],
    {
        let mut b = [0; 32];
        b[0] = 1;
        b
    },
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
        0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
        0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ],
    high(0xec),
    high(0xed),
    high(0xee),
];

/// `first, 0xff × 30, 0x7f`: p − 1, p and p + 1.
const fn high(first: u8) -> [u8; 32] {
    let mut b = [0xff; 32];
    b[0] = first;
    b[31] = 0x7f;
    b
}

/// Whether `public` encodes an Ed25519 point of small order. Plain Ed25519
/// verification (Go's, and `verify` here) accepts R = identity, S = 0 under
/// the identity for every message, so a record never publishes such a key.
/// A key made from a seed is never one of them.
pub fn small_order(public: &[u8; 32]) -> bool {
    SMALL_ORDER
        .iter()
        .any(|e| public[..31] == e[..31] && public[31] & 0x7f == e[31])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seed: u8) -> (Record, SigningKey) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let r = Record {
            user_id: Uuid::from_u128(0x0190a3b4_0000_7000_8000_0000000000a1),
            identity: "alice@example.com".into(),
            x25519: [9; 32],
            ed25519: key.verifying_key().to_bytes(),
        };
        (r, key)
    }

    #[test]
    fn signs_and_verifies_only_its_own_record() {
        let (r, key) = record(1);
        let sig = r.sign(&key).unwrap();
        r.verify(&sig).unwrap();
        let mut other = r.clone();
        other.identity = "mallory@example.com".into();
        assert!(other.verify(&sig).is_err());
        let (_, stranger) = record(2);
        assert!(r.sign(&stranger).is_err(), "signed with another key");
    }

    #[test]
    fn small_order_keys_have_no_record() {
        // R = identity, S = 0 verifies under the identity point for every
        // message: such a record must never verify.
        let (mut r, _) = record(1);
        r.ed25519 = SMALL_ORDER[1];
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let forged = crate::b64::encode(&forged);
        assert!(r.verify(&forged).is_err());
        for e in SMALL_ORDER {
            assert!(small_order(&e));
            let mut signed = e;
            signed[31] |= 0x80;
            assert!(small_order(&signed));
        }
        assert!(!small_order(&record(1).0.ed25519));
    }
}
