//! The signed key record (docs/crypto.md §3): an account's own statement,
//! signed with its Ed25519 key, that a user id and an identity own its
//! public keys. The Go SDK's `sdk/keyrecord`.
//!
//! The record proves possession: only the holder of the Ed25519 private key
//! can sign it, so a sign-up cannot publish another account's keys as its
//! own, and a client that looks up an identity checks that the keys the
//! server hands out were vouched for by that account under that identity
//! and user id.
//!
//! Version 1 covers the X25519 and Ed25519 keys; version 2 adds the X-Wing
//! key of bundle version 2. The version is the first thing the message
//! names, so a record of one version never verifies as the other:
//!
//! ```text
//! "zsm v1 key-record" || 0x00 || user_id (16) || u8(len(identity)) || identity
//!   || x25519_public (32) || ed25519_public (32)
//! "zsm v2 key-record" || 0x00 || user_id (16) || u8(len(identity)) || identity
//!   || x25519_public (32) || ed25519_public (32) || xwing_public (1216)
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use uuid::Uuid;

use crate::xwing;

/// Record version 1: the X25519 and Ed25519 keys.
pub const V1: u32 = 1;
/// Record version 2: version 1's keys and the X-Wing key.
pub const V2: u32 = 2;

const LABEL_V1: &[u8] = b"zsm v1 key-record";
const LABEL_V2: &[u8] = b"zsm v2 key-record";

/// Why a key record was refused. Every refusal is a bad signature: a record
/// that cannot be encoded has no message, so nothing verifies as it.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KeyRecordError {
    /// The signature does not verify, is not canonical base64 of 64 bytes,
    /// or the record cannot be encoded (the reason says which).
    #[error("the key record's signature does not verify: {0}")]
    BadSignature(&'static str),
}

/// What a record vouches for. A record with an X-Wing key is version 2, one
/// without is version 1: the version is not a field of its own that could
/// disagree with the keys.
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
    /// Version 2: the X-Wing public key (1216 bytes); `None` for version 1.
    pub xwing: Option<Vec<u8>>,
}

impl Record {
    /// Builds a version 1 record from the public keys as they travel
    /// (canonical standard base64 of 32 bytes each).
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
            xwing: None,
        })
    }

    /// Builds a record of `version` (1 or 2) from the public keys as they
    /// travel: version 2 has the X-Wing key, canonical standard base64 of
    /// 1216 bytes, and version 1 must not have one.
    pub fn from_published(
        version: u32,
        user_id: Uuid,
        identity: &str,
        x25519: &str,
        ed25519: &str,
        xwing: Option<&str>,
    ) -> Result<Record, KeyRecordError> {
        let mut r = Record::from_base64(user_id, identity, x25519, ed25519)?;
        match (version, xwing) {
            (V1, None) => {}
            (V1, Some(_)) => return Err(KeyRecordError::BadSignature("a version 1 record has no X-Wing key")),
            (V2, Some(k)) => {
                let k = crate::b64::decode(k)
                    .filter(|b| b.len() == xwing::PUBLIC_KEY_SIZE)
                    .ok_or(KeyRecordError::BadSignature(
                        "the X-Wing key is not 1216 bytes of canonical base64",
                    ))?;
                r.xwing = Some(k);
            }
            (V2, None) => return Err(KeyRecordError::BadSignature("a version 2 record needs its X-Wing key")),
            _ => return Err(KeyRecordError::BadSignature("an unknown record version")),
        }
        Ok(r)
    }

    /// 2 for a record with an X-Wing key, 1 otherwise.
    pub fn version(&self) -> u32 {
        if self.xwing.is_some() { V2 } else { V1 }
    }

    /// The signed bytes. Refused (no message, so nothing verifies) for an
    /// identity that is not in normal form or longer than 255 bytes, for
    /// an Ed25519 key of small order, under which anybody can forge
    /// signatures, and for an X-Wing key that is not 1216 bytes of a valid
    /// ML-KEM-768 encapsulation key and an X25519 key.
    pub fn message(&self) -> Result<Vec<u8>, KeyRecordError> {
        if !normalized(&self.identity) {
            return Err(KeyRecordError::BadSignature("the identity is not normalized"));
        }
        if small_order(&self.ed25519) {
            return Err(KeyRecordError::BadSignature(
                "the Ed25519 key is a point of small order",
            ));
        }
        let label = match &self.xwing {
            None => LABEL_V1,
            Some(k) => {
                xwing::check_public_key(k).map_err(KeyRecordError::BadSignature)?;
                LABEL_V2
            }
        };
        let xw = self.xwing.as_deref().unwrap_or_default();
        let mut m = Vec::with_capacity(label.len() + 1 + 16 + 1 + self.identity.len() + 64 + xw.len());
        m.extend_from_slice(label);
        m.push(0);
        m.extend_from_slice(self.user_id.as_bytes());
        m.push(self.identity.len() as u8);
        m.extend_from_slice(self.identity.as_bytes());
        m.extend_from_slice(&self.x25519);
        m.extend_from_slice(&self.ed25519);
        m.extend_from_slice(xw);
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
            xwing: None,
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

    #[test]
    fn versions_never_verify_as_each_other() {
        let (mut r, key) = record(1);
        let v1 = r.sign(&key).unwrap();
        r.xwing = Some(xwing::public_key(&[4; 32]));
        assert_eq!(r.version(), V2);
        let v2 = r.sign(&key).unwrap();
        r.verify(&v2).unwrap();
        assert!(r.verify(&v1).is_err(), "a version 1 signature for a version 2 record");
        let mut other = r.clone();
        other.xwing = Some(xwing::public_key(&[5; 32]));
        assert!(other.verify(&v2).is_err(), "another X-Wing key");
        let mut down = r.clone();
        down.xwing = None;
        assert!(down.verify(&v2).is_err(), "the X-Wing key dropped");
        let mut short = r.clone();
        short.xwing.as_mut().unwrap().pop();
        assert!(short.message().is_err(), "1215 bytes");
    }

    #[test]
    fn from_published_checks_the_version_against_the_keys() {
        let (r, _) = record(1);
        let (x, e) = (crate::b64::encode(&r.x25519), crate::b64::encode(&r.ed25519));
        let w = crate::b64::encode(&xwing::public_key(&[4; 32]));
        let id = r.identity.as_str();
        assert_eq!(Record::from_published(V1, r.user_id, id, &x, &e, None).unwrap(), r);
        let v2 = Record::from_published(V2, r.user_id, id, &x, &e, Some(&w)).unwrap();
        assert_eq!(v2.version(), V2);
        assert!(Record::from_published(V1, r.user_id, id, &x, &e, Some(&w)).is_err());
        assert!(Record::from_published(V2, r.user_id, id, &x, &e, None).is_err());
        assert!(Record::from_published(3, r.user_id, id, &x, &e, Some(&w)).is_err());
        assert!(Record::from_published(V2, r.user_id, id, &x, &e, Some(&w[..w.len() - 4])).is_err());
    }
}
