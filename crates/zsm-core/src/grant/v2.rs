//! What sharing adds to vault keys and grants (docs/crypto.md §8), as the
//! Go SDK's `grant/v2.go`: key generations, HPKE version 2 (the generation
//! in the info; X-Wing for every member whose key record has an X-Wing key),
//! grants version 2 with the downgrade check, key commitments, and the chain
//! of previous keys. The version 1 functions keep opening older grants.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{GrantError, ROLES, VAULT_KEY_SIZE};
use crate::envelope::{self, Context, Type};
use crate::xwing;

/// DHKEM(X25519, HKDF-SHA256): only for a member whose newest key record
/// has no X-Wing key.
pub const KEM_X25519: u16 = 0x0020;
/// X-Wing (MLKEM768-X25519): for every member whose key record has one.
pub const KEM_XWING: u16 = xwing::KEM_ID;
/// Size of a sealed key (enc || ciphertext) with X25519: 32 + 48.
pub const SEALED_KEY_SIZE_X25519: usize = super::SEALED_KEY_SIZE;
/// Size of a sealed key with X-Wing: 1120 + 48.
pub const SEALED_KEY_SIZE_XWING: usize = xwing::ENC_SIZE + VAULT_KEY_SIZE + 16;
/// Size of a key commitment.
pub const COMMITMENT_SIZE: usize = 32;

/// The size of a sealed key of `kem`; `None` for a KEM zsm does not use.
pub fn sealed_size(kem: u16) -> Option<usize> {
    match kem {
        KEM_X25519 => Some(SEALED_KEY_SIZE_X25519),
        KEM_XWING => Some(SEALED_KEY_SIZE_XWING),
        _ => None,
    }
}

/// The HPKE public key a member's vault keys are sealed to, chosen from the
/// member's verified key record, never by the caller: X-Wing when the
/// record has an X-Wing key, X25519 only when it has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientKey {
    /// A member whose newest key record has no X-Wing key.
    X25519([u8; 32]),
    /// A member with an X-Wing key (1216 bytes).
    XWing(Vec<u8>),
}

impl RecipientKey {
    /// The key for a member with these published keys.
    pub fn of(x25519_public: &[u8; 32], xwing_public: Option<&[u8]>) -> Result<RecipientKey, GrantError> {
        match xwing_public {
            Some(p) => {
                xwing::check_public_key(p).map_err(|_| GrantError::UnknownKem(KEM_XWING))?;
                Ok(RecipientKey::XWing(p.to_vec()))
            }
            None => Ok(RecipientKey::X25519(*x25519_public)),
        }
    }

    /// The KEM id.
    pub fn kem(&self) -> u16 {
        match self {
            RecipientKey::X25519(_) => KEM_X25519,
            RecipientKey::XWing(_) => KEM_XWING,
        }
    }
}

/// This account's private key for a KEM, to open what was sealed to it.
#[derive(Clone, Copy)]
pub enum PrivateKey<'a> {
    /// The X25519 scalar.
    X25519(&'a [u8; 32]),
    /// The X-Wing seed.
    XWing(&'a [u8; 32]),
}

impl std::fmt::Debug for PrivateKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

impl PrivateKey<'_> {
    /// The KEM id.
    pub fn kem(&self) -> u16 {
        match self {
            PrivateKey::X25519(_) => KEM_X25519,
            PrivateKey::XWing(_) => KEM_XWING,
        }
    }
}

/// Checks the KEM of a member's grant against the member's key record:
/// X-Wing if the record has an X-Wing key, X25519 otherwise. X25519 for a
/// member who has an X-Wing key is [`GrantError::Downgrade`]: a server must
/// not be able to strip the post-quantum half by replaying or asking for an
/// X25519-only seal.
pub fn check_kem(kem: u16, recipient_has_xwing: bool) -> Result<(), GrantError> {
    match (sealed_size(kem), recipient_has_xwing) {
        (None, _) => Err(GrantError::UnknownKem(kem)),
        (Some(_), true) if kem != KEM_XWING => Err(GrantError::Downgrade),
        (Some(_), false) if kem != KEM_X25519 => Err(GrantError::UnknownKem(kem)),
        _ => Ok(()),
    }
}

/// The HPKE info of version 2:
/// `"zsm v2 vault-key" || 0x00 || vault_id || user_id || u64be(generation)`.
pub fn vault_key_info_v2(vault_id: Uuid, user_id: Uuid, generation: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(17 + 32 + 8);
    b.extend_from_slice(b"zsm v2 vault-key\x00");
    b.extend_from_slice(vault_id.as_bytes());
    b.extend_from_slice(user_id.as_bytes());
    b.extend_from_slice(&generation.to_be_bytes());
    b
}

/// Seals `vault_key`, the key of `generation` of `vault_id`, to user
/// `user_id`'s `recipient` key; returns `base64(enc || ciphertext)` and the
/// KEM used.
pub fn seal_vault_key_v2(
    recipient: &RecipientKey,
    vault_id: Uuid,
    user_id: Uuid,
    generation: u64,
    vault_key: &[u8; 32],
) -> Result<(String, u16), GrantError> {
    if generation == 0 {
        return Err(GrantError::BadSealedKey);
    }
    let info = vault_key_info_v2(vault_id, user_id, generation);
    let out = match recipient {
        RecipientKey::X25519(pk) => {
            let pk =
                <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(pk).map_err(|_| GrantError::BadSealedKey)?;
            let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
                &OpModeS::Base,
                &pk,
                &info,
                vault_key,
                b"",
            )
            .map_err(|_| GrantError::BadSealedKey)?;
            [enc.to_bytes().as_slice(), &ct].concat()
        }
        RecipientKey::XWing(pk) => {
            let pk = <XWing as hpke::Kem>::PublicKey::from_bytes(pk).map_err(|_| GrantError::UnknownKem(KEM_XWING))?;
            let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, XWing>(
                &OpModeS::Base,
                &pk,
                &info,
                vault_key,
                b"",
            )
            .map_err(|_| GrantError::BadSealedKey)?;
            [enc.to_bytes().as_slice(), &ct].concat()
        }
    };
    debug_assert_eq!(Some(out.len()), sealed_size(recipient.kem()));
    Ok((crate::b64::encode(&out), recipient.kem()))
}

fn decode_sealed_size(s: &str, size: usize) -> Result<Vec<u8>, GrantError> {
    match crate::b64::decode(s) {
        Some(b) if b.len() == size => Ok(b),
        _ => Err(GrantError::BadSealedKey),
    }
}

/// Opens a sealed key of `generation` of `vault_id` with `private`, user
/// `user_id`'s key for the grant's KEM. A sealed key that is not canonical
/// base64 of the KEM's size is [`GrantError::BadSealedKey`]; one sealed for
/// another vault, user, generation or key, or tampered with, is
/// [`GrantError::OpenVaultKey`].
pub fn open_vault_key_v2(
    private: PrivateKey<'_>,
    vault_id: Uuid,
    user_id: Uuid,
    generation: u64,
    sealed: &str,
) -> Result<Zeroizing<[u8; 32]>, GrantError> {
    let size = sealed_size(private.kem()).expect("both private key kinds have a size");
    let raw = decode_sealed_size(sealed, size)?;
    let info = vault_key_info_v2(vault_id, user_id, generation);
    let (enc, ct) = raw.split_at(size - VAULT_KEY_SIZE - 16);
    let pt = match private {
        PrivateKey::X25519(sk) => {
            let sk =
                <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(sk).map_err(|_| GrantError::OpenVaultKey)?;
            let enc =
                <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| GrantError::OpenVaultKey)?;
            hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
                &OpModeR::Base,
                &sk,
                &enc,
                &info,
                ct,
                b"",
            )
        }
        PrivateKey::XWing(seed) => {
            // Go's crypto/ecdh refuses an all-zero X25519 secret, so a share
            // of small order never opens there; it does not open here either.
            if xwing::non_contributory(enc) {
                return Err(GrantError::OpenVaultKey);
            }
            let sk = <XWing as hpke::Kem>::PrivateKey::from_bytes(seed).map_err(|_| GrantError::OpenVaultKey)?;
            let enc = <XWing as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| GrantError::OpenVaultKey)?;
            hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, XWing>(&OpModeR::Base, &sk, &enc, &info, ct, b"")
        }
    }
    .map_err(|_| GrantError::OpenVaultKey)?;
    let pt = Zeroizing::new(pt);
    let k: [u8; 32] = pt.as_slice().try_into().map_err(|_| GrantError::OpenVaultKey)?;
    Ok(Zeroizing::new(k))
}

/// `granted_by` gave `user_id` the key of `generation` of `vault_id`, sealed
/// with `kem`, with `role`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantV2 {
    /// The vault.
    pub vault_id: Uuid,
    /// The member.
    pub user_id: Uuid,
    /// The member who signed.
    pub granted_by: Uuid,
    /// One of [`ROLES`].
    pub role: String,
    /// The key generation, ≥ 1.
    pub generation: u64,
    /// [`KEM_XWING`] or [`KEM_X25519`].
    pub kem: u16,
    /// `base64(enc || ciphertext)`, the size of the KEM's.
    pub sealed_key: String,
}

impl GrantV2 {
    /// The bytes the signature covers:
    ///
    /// ```text
    /// "zsm v2 grant" || 0x00 || vault_id || user_id || granted_by
    ///   || u8(len(role)) || role || u64be(generation) || u16be(kem_id)
    ///   || SHA-256(sealed key bytes)
    /// ```
    ///
    /// `None` for a role not in [`ROLES`], generation 0, an unknown KEM, or
    /// a sealed key that is not canonical base64 of that KEM's size.
    pub fn message(&self) -> Option<Vec<u8>> {
        if !ROLES.contains(&self.role.as_str()) || self.generation == 0 {
            return None;
        }
        let sealed = decode_sealed_size(&self.sealed_key, sealed_size(self.kem)?).ok()?;
        let mut m = Vec::with_capacity(13 + 48 + 1 + self.role.len() + 8 + 2 + 32);
        m.extend_from_slice(b"zsm v2 grant\x00");
        m.extend_from_slice(self.vault_id.as_bytes());
        m.extend_from_slice(self.user_id.as_bytes());
        m.extend_from_slice(self.granted_by.as_bytes());
        m.push(self.role.len() as u8);
        m.extend_from_slice(self.role.as_bytes());
        m.extend_from_slice(&self.generation.to_be_bytes());
        m.extend_from_slice(&self.kem.to_be_bytes());
        m.extend_from_slice(&Sha256::digest(&sealed));
        Some(m)
    }

    /// Signs the grant with the granter's key; returns `base64(signature)`.
    pub fn sign(&self, key: &SigningKey) -> Result<String, GrantError> {
        let m = self.message().ok_or(GrantError::BadSignature)?;
        Ok(crate::b64::encode(&key.sign(&m).to_bytes()))
    }

    /// Checks `signature` over the grant under `public`. Every failure,
    /// including a grant that cannot be encoded or a signature that is not
    /// canonical base64 of 64 bytes, is [`GrantError::BadSignature`]. The KEM
    /// is checked against the member's key record by [`check_kem`].
    pub fn verify(&self, signature: &str, public: &[u8; 32]) -> Result<(), GrantError> {
        let m = self.message().ok_or(GrantError::BadSignature)?;
        crate::keyrecord::verify_ed25519(public, &m, signature).map_err(|_| GrantError::BadSignature)
    }
}

/// The commitment to `key` as `generation` of `vault_id`, which the
/// membership log records:
/// `HMAC-SHA256(key, "zsm v1 vault-key-commitment" || 0x00 || vault_id || u64be(generation))`.
pub fn key_commitment(key: &[u8; 32], vault_id: Uuid, generation: u64) -> [u8; COMMITMENT_SIZE] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key size");
    mac.update(b"zsm v1 vault-key-commitment\x00");
    mac.update(vault_id.as_bytes());
    mac.update(&generation.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// Checks, in constant time, that `key` is the key the log committed to as
/// `generation` of `vault_id` ([`GrantError::KeyCommitment`] otherwise). A
/// client uses a vault key only after this check: a grant proves who sealed
/// a key, the commitment that it is the key the members agreed on, so a
/// server cannot make a member use a key it knows.
pub fn check_key_commitment(
    key: &[u8; 32],
    vault_id: Uuid,
    generation: u64,
    want: &[u8; COMMITMENT_SIZE],
) -> Result<(), GrantError> {
    if bool::from(key_commitment(key, vault_id, generation).ct_eq(want)) {
        Ok(())
    } else {
        Err(GrantError::KeyCommitment(generation))
    }
}

/// The envelope context of the key of generation `g` under the key of g+1:
/// type 8, the vault, object id the vault id, revision g.
fn chain_context(vault_id: Uuid, g: u64) -> Context {
    Context {
        typ: Type::PrevVaultKey,
        vault_id,
        object_id: vault_id,
        revision: g,
    }
}

/// Seals `older`, the key of generation `g`, under `newer`, the key of g+1
/// (envelope type 8); returns its base64, the chain row of `g`.
pub fn wrap_previous(newer: &[u8; 32], vault_id: Uuid, g: u64, older: &[u8; 32]) -> Result<String, GrantError> {
    if g == 0 {
        return Err(GrantError::Chain(0));
    }
    envelope::seal_string(newer, &chain_context(vault_id, g), older).map_err(|_| GrantError::Chain(g))
}

/// Opens the key of generation `g` with `newer`, the key of g+1. A row
/// moved to another vault or generation does not open
/// ([`GrantError::Chain`]).
pub fn unwrap_previous(
    newer: &[u8; 32],
    vault_id: Uuid,
    g: u64,
    wrapped: &str,
) -> Result<Zeroizing<[u8; 32]>, GrantError> {
    let k = envelope::open_string(newer, &chain_context(vault_id, g), wrapped).map_err(|_| GrantError::Chain(g))?;
    let k: [u8; 32] = k.as_slice().try_into().map_err(|_| GrantError::Chain(g))?;
    Ok(Zeroizing::new(k))
}

/// What a member needs to reach older generations' keys: the wrapped keys
/// (generation g → the key of g under the key of g+1) from the server, and
/// the commitments from the replayed membership log.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    /// The vault.
    pub vault_id: Uuid,
    /// The chain rows by generation.
    pub wrapped: BTreeMap<u64, String>,
    /// The logged commitments by generation.
    pub commitments: BTreeMap<u64, [u8; COMMITMENT_SIZE]>,
}

impl Chain {
    /// Walks back from `newest_key`, the key of generation `newest`, to
    /// generation `oldest`, and returns the keys by generation. Every key,
    /// the newest included, must match its commitment
    /// ([`GrantError::KeyCommitment`]); a missing or unopenable link is
    /// [`GrantError::Chain`]. The chain only goes back: a removed member, who
    /// holds only older keys, cannot walk forward.
    pub fn keys(
        &self,
        newest: u64,
        newest_key: &[u8; 32],
        oldest: u64,
    ) -> Result<BTreeMap<u64, Zeroizing<[u8; 32]>>, GrantError> {
        if oldest == 0 || oldest > newest {
            return Err(GrantError::Chain(oldest));
        }
        let check = |g: u64, k: &[u8; 32]| -> Result<(), GrantError> {
            let want = self.commitments.get(&g).ok_or(GrantError::KeyCommitment(g))?;
            check_key_commitment(k, self.vault_id, g, want)
        };
        check(newest, newest_key)?;
        let mut out = BTreeMap::new();
        out.insert(newest, Zeroizing::new(*newest_key));
        let mut k = Zeroizing::new(*newest_key);
        for g in (oldest..newest).rev() {
            let w = self.wrapped.get(&g).ok_or(GrantError::Chain(g))?;
            let prev = unwrap_previous(&k, self.vault_id, g, w)?;
            check(g, &prev)?;
            k = prev.clone();
            out.insert(g, prev);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_both_kems() {
        let (vault, user) = (Uuid::new_v4(), Uuid::new_v4());
        let key = [42u8; 32];
        let xseed = [1u8; 32];
        let xscalar = [2u8; 32];
        let xpub = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(xscalar)).to_bytes();
        let wpub = xwing::public_key(&xseed);
        for (recipient, private) in [
            (RecipientKey::of(&xpub, None).unwrap(), PrivateKey::X25519(&xscalar)),
            (RecipientKey::of(&xpub, Some(&wpub)).unwrap(), PrivateKey::XWing(&xseed)),
        ] {
            let (sealed, kem) = seal_vault_key_v2(&recipient, vault, user, 3, &key).unwrap();
            assert_eq!(kem, private.kem());
            assert_eq!(*open_vault_key_v2(private, vault, user, 3, &sealed).unwrap(), key);
            assert_eq!(
                open_vault_key_v2(private, vault, user, 4, &sealed),
                Err(GrantError::OpenVaultKey),
                "another generation"
            );
        }
    }

    #[test]
    fn downgrade_and_unknown_kems() {
        assert_eq!(check_kem(KEM_XWING, true), Ok(()));
        assert_eq!(check_kem(KEM_X25519, false), Ok(()));
        assert_eq!(check_kem(KEM_X25519, true), Err(GrantError::Downgrade));
        assert_eq!(check_kem(KEM_XWING, false), Err(GrantError::UnknownKem(KEM_XWING)));
        assert_eq!(check_kem(0x10, false), Err(GrantError::UnknownKem(0x10)));
    }
}
