//! The one ciphertext format zsm stores on the server (docs/crypto.md §2).
//!
//! ```text
//! envelope = 0x01 || type || nonce (24) || commitment (32) || ciphertext || tag (16)
//! ```
//!
//! XChaCha20-Poly1305 under a fresh random nonce. The associated data is never
//! stored: the reader rebuilds it from the [`Context`] it expects (type, vault,
//! object, revision), so a ciphertext moved to another row, vault, object type
//! or revision does not open. The commitment, an HMAC-SHA256 of the nonce
//! under the key, is checked in constant time before decryption, so one
//! ciphertext cannot be made to open under two keys.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The only envelope version.
pub const VERSION: u8 = 1;
/// Key size of every envelope key.
pub const KEY_SIZE: usize = 32;
/// Nonce size (XChaCha20).
pub const NONCE_SIZE: usize = 24;
/// Commitment size (HMAC-SHA256).
pub const COMMITMENT_SIZE: usize = 32;
/// Poly1305 tag size.
pub const TAG_SIZE: usize = 16;
const HEADER_SIZE: usize = 2 + NONCE_SIZE + COMMITMENT_SIZE;
/// How much longer an envelope is than its plaintext (74).
pub const OVERHEAD: usize = HEADER_SIZE + TAG_SIZE;

const AD_LABEL: &[u8] = b"zsm-envelope";
const COMMIT_LABEL: &[u8] = b"zsm v1 key-commitment";

/// What an envelope holds. Stored in the envelope and bound into its
/// associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Type {
    /// The account key, under the unlock key.
    AccountKey = 1,
    /// The X25519 scalar, under the account key.
    X25519Private = 2,
    /// The Ed25519 seed, under the account key.
    Ed25519Private = 3,
    /// A vault's metadata, under the vault key.
    VaultMeta = 4,
    /// A secret, under the vault key.
    Secret = 5,
    /// The 32-byte X-Wing seed, under the account key (bundle version 2).
    XWingSeed = 6,
    /// The pin set, under the account key (revision: the pin row's).
    PinSet = 7,
    /// The vault key of generation g under the key of g+1 (revision: g).
    PrevVaultKey = 8,
}

impl Type {
    /// The type of a type byte; `None` for an unknown one.
    pub fn from_byte(b: u8) -> Option<Type> {
        Some(match b {
            1 => Type::AccountKey,
            2 => Type::X25519Private,
            3 => Type::Ed25519Private,
            4 => Type::VaultMeta,
            5 => Type::Secret,
            6 => Type::XWingSeed,
            7 => Type::PinSet,
            8 => Type::PrevVaultKey,
            _ => return None,
        })
    }
}

/// Why an envelope was refused. A client never tells the server which.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum EnvelopeError {
    /// Not an envelope: too short, an unknown type, or bad base64.
    #[error("envelope: malformed")]
    Malformed,
    /// The version byte is not 1.
    #[error("envelope: unsupported version")]
    UnsupportedVersion,
    /// The envelope holds another type of object than the one expected.
    #[error("envelope: wrong object type")]
    WrongType,
    /// Wrong key, or modified, moved or relabelled ciphertext.
    #[error("envelope: wrong key or tampered ciphertext")]
    Tampered,
    /// The key is not 32 bytes (a programming error, not the server's).
    #[error("envelope: the key must be 32 bytes")]
    BadKey,
}

/// What an envelope is bound to. Only the type is stored in the envelope;
/// the reader supplies the rest from what it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The object type.
    pub typ: Type,
    /// The vault (the nil uuid for account-level objects).
    pub vault_id: Uuid,
    /// The object (the user for account-level objects).
    pub object_id: Uuid,
    /// The object's revision (0 for account-level objects).
    pub revision: u64,
}

/// Length of the associated data.
pub const AD_SIZE: usize = AD_LABEL.len() + 1 + 1 + 1 + 16 + 16 + 8;

impl Context {
    /// The associated data:
    /// `"zsm-envelope" || 0x00 || version || type || vault_id || object_id || u64be(revision)`.
    pub fn ad(&self) -> [u8; AD_SIZE] {
        let mut b = [0u8; AD_SIZE];
        let mut n = AD_LABEL.len();
        b[..n].copy_from_slice(AD_LABEL);
        b[n] = 0;
        b[n + 1] = VERSION;
        b[n + 2] = self.typ as u8;
        n += 3;
        b[n..n + 16].copy_from_slice(self.vault_id.as_bytes());
        n += 16;
        b[n..n + 16].copy_from_slice(self.object_id.as_bytes());
        n += 16;
        b[n..].copy_from_slice(&self.revision.to_be_bytes());
        b
    }
}

/// `HMAC-SHA256(key, "zsm v1 key-commitment" || 0x00 || nonce)`.
pub fn commitment(key: &[u8; KEY_SIZE], nonce: &[u8; NONCE_SIZE]) -> [u8; COMMITMENT_SIZE] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key size");
    mac.update(COMMIT_LABEL);
    mac.update(&[0]);
    mac.update(nonce);
    mac.finalize().into_bytes().into()
}

fn key32(key: &[u8]) -> Result<&[u8; KEY_SIZE], EnvelopeError> {
    key.try_into().map_err(|_| EnvelopeError::BadKey)
}

/// Seals `plaintext` under `key` for `ctx` with a fresh random nonce.
pub fn seal(key: &[u8], ctx: &Context, plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE_SIZE];
    crate::random_bytes(&mut nonce);
    seal_with_nonce(key, ctx, plaintext, &nonce)
}

/// Seals with a given nonce. Only the test vectors need this: a nonce must
/// never be used twice under one key, so real callers use [`seal`].
pub fn seal_with_nonce(
    key: &[u8],
    ctx: &Context,
    plaintext: &[u8],
    nonce: &[u8; NONCE_SIZE],
) -> Result<Vec<u8>, EnvelopeError> {
    let key = key32(key)?;
    let aead = XChaCha20Poly1305::new(key.into());
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(VERSION);
    out.push(ctx.typ as u8);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&commitment(key, nonce));
    let ad = ctx.ad();
    let ct = aead
        .encrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad: &ad,
            },
        )
        .map_err(|_| EnvelopeError::Malformed)?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// An envelope split into its fields, not decrypted.
#[derive(Debug, Clone, Copy)]
pub struct Parsed<'a> {
    /// The object type.
    pub typ: Type,
    /// The nonce.
    pub nonce: &'a [u8; NONCE_SIZE],
    /// The key commitment.
    pub commitment: &'a [u8; COMMITMENT_SIZE],
    /// Ciphertext and tag.
    pub ciphertext: &'a [u8],
}

/// Splits an envelope, checking in this order: the version byte (anything
/// but 1 is [`EnvelopeError::UnsupportedVersion`], whatever the length), the
/// length (at least 74 bytes) and the type byte (1–8); the last two are
/// [`EnvelopeError::Malformed`].
pub fn parse(env: &[u8]) -> Result<Parsed<'_>, EnvelopeError> {
    let (&version, _) = env.split_first().ok_or(EnvelopeError::Malformed)?;
    if version != VERSION {
        return Err(EnvelopeError::UnsupportedVersion);
    }
    if env.len() < OVERHEAD {
        return Err(EnvelopeError::Malformed);
    }
    let typ = Type::from_byte(env[1]).ok_or(EnvelopeError::Malformed)?;
    Ok(Parsed {
        typ,
        nonce: env[2..2 + NONCE_SIZE].try_into().expect("length checked"),
        commitment: env[2 + NONCE_SIZE..HEADER_SIZE].try_into().expect("length checked"),
        ciphertext: &env[HEADER_SIZE..],
    })
}

/// Checks and decrypts an envelope sealed for `ctx`. Refuses, in this
/// order: bytes that do not parse, an envelope of another type than
/// `ctx.typ` ([`EnvelopeError::WrongType`]), then with
/// [`EnvelopeError::Tampered`] a commitment that does not match the key
/// (compared in constant time, before any decryption) or an AEAD failure.
pub fn open(key: &[u8], ctx: &Context, env: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let key = key32(key)?;
    let p = parse(env)?;
    if p.typ != ctx.typ {
        return Err(EnvelopeError::WrongType);
    }
    // Key commitment first: XChaCha20-Poly1305 is not key-committing, and a
    // ciphertext crafted to open under several keys must fail here, before
    // the AEAD runs (partitioning oracles, "invisible salamanders").
    let c = commitment(key, p.nonce);
    if !bool::from(c.ct_eq(p.commitment)) {
        return Err(EnvelopeError::Tampered);
    }
    let aead = XChaCha20Poly1305::new(key.into());
    let ad = ctx.ad();
    aead.decrypt(
        &XNonce::from(*p.nonce),
        Payload {
            msg: p.ciphertext,
            aad: &ad,
        },
    )
    .map(Zeroizing::new)
    .map_err(|_| EnvelopeError::Tampered)
}

/// [`seal`] returning `base64(envelope)`, the form text columns hold.
pub fn seal_string(key: &[u8], ctx: &Context, plaintext: &[u8]) -> Result<String, EnvelopeError> {
    seal(key, ctx, plaintext).map(|e| crate::b64::encode(&e))
}

/// [`open`] of `base64(envelope)`; anything but canonical standard base64
/// with padding is [`EnvelopeError::Malformed`].
pub fn open_string(key: &[u8], ctx: &Context, env: &str) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let raw = crate::b64::decode(env).ok_or(EnvelopeError::Malformed)?;
    open(key, ctx, &raw)
}
