//! Vault keys, their HPKE sealing to members, and signed grants
//! (docs/crypto.md §4), and what sharing adds in [`v2`] (§8): key
//! generations, HPKE version 2 with X-Wing, grants version 2, key
//! commitments and the chain of previous keys.
//!
//! A vault key is sealed to a member's X25519 public key with HPKE (RFC 9180
//! base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305),
//! the vault id and the recipient's user id bound into the info. A grant
//! records who gave which sealed key with which role and is signed with the
//! granter's Ed25519 key, so a server that substitutes a vault key it knows
//! cannot sign for it.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

mod v2;
pub use v2::*;

/// The roles a grant may give, from most to least powerful.
pub const ROLES: [&str; 4] = ["owner", "admin", "editor", "viewer"];
/// Size of a vault key.
pub const VAULT_KEY_SIZE: usize = 32;
/// Size of a sealed vault key: enc (32) || ciphertext (32 + 16).
pub const SEALED_KEY_SIZE: usize = 32 + VAULT_KEY_SIZE + 16;

/// Why a vault key or a grant was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum GrantError {
    /// A sealed vault key that is not canonical base64 of 80 bytes.
    #[error("malformed sealed vault key")]
    BadSealedKey,
    /// A sealed vault key that does not open: sealed to another key, for
    /// another vault or user, or tampered with.
    #[error("the sealed vault key does not open for this user and vault")]
    OpenVaultKey,
    /// A grant whose signature does not verify (or that cannot be encoded).
    #[error("bad grant signature")]
    BadSignature,
    /// A key or grant of a KEM other than X25519 and X-Wing, or of X-Wing
    /// for a member without an X-Wing key.
    #[error("unknown KEM 0x{0:04x} for this member")]
    UnknownKem(u16),
    /// A vault key sealed to a member's X25519 key although the member's
    /// key record has an X-Wing key: the post-quantum half was stripped.
    #[error("vault key sealed without the hybrid key the member has (downgrade)")]
    Downgrade,
    /// A vault key that does not match the commitment the membership log
    /// holds for its generation: not the key the members agreed on.
    #[error("the vault key of generation {0} does not match its commitment in the membership log")]
    KeyCommitment(u64),
    /// The chain of previous vault keys is incomplete or a link does not
    /// open (at this generation).
    #[error("broken chain of previous vault keys at generation {0}")]
    Chain(u64),
}

/// A fresh random vault key.
pub fn new_vault_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    crate::random_bytes(k.as_mut());
    k
}

/// The HPKE info: `"zsm v1 vault-key" || 0x00 || vault_id || user_id`.
pub fn vault_key_info(vault_id: Uuid, user_id: Uuid) -> Vec<u8> {
    let mut b = Vec::with_capacity(17 + 32);
    b.extend_from_slice(b"zsm v1 vault-key\x00");
    b.extend_from_slice(vault_id.as_bytes());
    b.extend_from_slice(user_id.as_bytes());
    b
}

fn decode_sealed(s: &str) -> Result<Vec<u8>, GrantError> {
    match crate::b64::decode(s) {
        Some(b) if b.len() == SEALED_KEY_SIZE => Ok(b),
        _ => Err(GrantError::BadSealedKey),
    }
}

/// Seals `vault_key` to `recipient` (user `user_id`'s X25519 public key) for
/// vault `vault_id`; returns `base64(enc || ciphertext)`.
pub fn seal_vault_key(recipient: &[u8; 32], vault_id: Uuid, user_id: Uuid, vault_key: &[u8; 32]) -> String {
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(recipient).expect("any 32 bytes are an X25519 key");
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        &vault_key_info(vault_id, user_id),
        vault_key,
        b"",
    )
    .expect("sealing 32 bytes cannot fail");
    let mut out = enc.to_bytes().to_vec();
    out.extend_from_slice(&ct);
    crate::b64::encode(&out)
}

/// Opens a sealed vault key with `private` (user `user_id`'s X25519 scalar)
/// for vault `vault_id`.
pub fn open_vault_key(
    private: &[u8; 32],
    vault_id: Uuid,
    user_id: Uuid,
    sealed: &str,
) -> Result<Zeroizing<[u8; 32]>, GrantError> {
    let raw = decode_sealed(sealed)?;
    let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(private).map_err(|_| GrantError::OpenVaultKey)?;
    let enc =
        <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&raw[..32]).map_err(|_| GrantError::OpenVaultKey)?;
    let pt = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &sk,
            &enc,
            &vault_key_info(vault_id, user_id),
            &raw[32..],
            b"",
        )
        .map_err(|_| GrantError::OpenVaultKey)?,
    );
    let k: [u8; 32] = pt.as_slice().try_into().map_err(|_| GrantError::OpenVaultKey)?;
    Ok(Zeroizing::new(k))
}

/// `granted_by` gave `user_id` the vault key `sealed_key` for `vault_id`
/// with `role`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The vault.
    pub vault_id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// The member who signed.
    pub granted_by: Uuid,
    /// One of [`ROLES`].
    pub role: String,
    /// `base64(enc || ciphertext)`.
    pub sealed_key: String,
}

impl Grant {
    /// The bytes the signature covers:
    ///
    /// ```text
    /// "zsm v1 grant" || 0x00 || vault_id || user_id || granted_by
    ///   || u8(len(role)) || role || SHA-256(sealed key bytes)
    /// ```
    ///
    /// `None` for a role not in [`ROLES`] or a sealed key that does not decode.
    pub fn message(&self) -> Option<Vec<u8>> {
        if !ROLES.contains(&self.role.as_str()) {
            return None;
        }
        let sealed = decode_sealed(&self.sealed_key).ok()?;
        let mut m = Vec::with_capacity(13 + 48 + 1 + self.role.len() + 32);
        m.extend_from_slice(b"zsm v1 grant\x00");
        m.extend_from_slice(self.vault_id.as_bytes());
        m.extend_from_slice(self.user_id.as_bytes());
        m.extend_from_slice(self.granted_by.as_bytes());
        m.push(self.role.len() as u8);
        m.extend_from_slice(self.role.as_bytes());
        m.extend_from_slice(&Sha256::digest(&sealed));
        Some(m)
    }

    /// Signs the grant; returns `base64(signature)`.
    pub fn sign(&self, key: &SigningKey) -> Result<String, GrantError> {
        let m = self.message().ok_or(GrantError::BadSignature)?;
        Ok(crate::b64::encode(&key.sign(&m).to_bytes()))
    }

    /// Checks `signature` over the grant under `public`. Every failure,
    /// including a grant that cannot be encoded or a signature that is not
    /// canonical base64 of 64 bytes, is [`GrantError::BadSignature`].
    pub fn verify(&self, signature: &str, public: &[u8; 32]) -> Result<(), GrantError> {
        let m = self.message().ok_or(GrantError::BadSignature)?;
        let sig: [u8; 64] = crate::b64::decode(signature)
            .and_then(|b| b.try_into().ok())
            .ok_or(GrantError::BadSignature)?;
        let vk = VerifyingKey::from_bytes(public).map_err(|_| GrantError::BadSignature)?;
        vk.verify(&m, &Signature::from_bytes(&sig))
            .map_err(|_| GrantError::BadSignature)
    }
}
