//! Whose keys this account believes (docs/crypto.md §6 and §7), as the Go
//! SDK's `sdk/trust`: identity fingerprints with their safety numbers and QR
//! strings for comparing keys out of band, and pins (in [`pins`]), the
//! account's record of which identities' keys it confirmed, synced between
//! its own devices sealed under its account key.
//!
//! Nothing here takes a key on the server's word: a fingerprint is computed
//! from the exact key the client is about to use, and a pin can only be made
//! by this account.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha512};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::envelope::EnvelopeError;

pub mod pins;

pub use pins::{Conflict, Pin, PinSet, Record, Status, check_revision, merge};

/// Why a fingerprint, QR string or pin was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum TrustError {
    /// An identity that cannot be fingerprinted (not in normal form, longer
    /// than 255 bytes, an Ed25519 key that is not 32 bytes), or a key record
    /// whose version and X-Wing key disagree.
    #[error("identity cannot be fingerprinted: {0}")]
    BadIdentity(String),
    /// Not a zsm fingerprint QR string.
    #[error("not a zsm fingerprint string")]
    BadQr,
    /// A fingerprint compared out of band differs from the one of the key
    /// the client holds.
    #[error("the fingerprints differ")]
    Mismatch,
    /// A pin set that does not parse.
    #[error("malformed pin set: {0}")]
    MalformedPins(String),
    /// No pin for the identity: the user must verify it (or explicitly
    /// trust it on first use) first.
    #[error("identity not verified: {0}")]
    NotPinned(String),
    /// The identity shows another key than the one pinned: refused until the
    /// user compares safety numbers again and confirms.
    #[error("{0} has new keys; compare safety numbers and confirm again")]
    KeyChanged(String),
    /// A version 1 key record shown for a key whose version 2 record (with
    /// an X-Wing key) this account has seen.
    #[error("an older key record of {0} without the hybrid key was shown (downgrade)")]
    Downgrade(String),
    /// The server returned an older revision of the pin set than this
    /// device has seen.
    #[error("older pin set than this device has seen: revision {got}, seen {seen}")]
    Rollback {
        /// The revision served.
        got: u64,
        /// The highest revision seen.
        seen: u64,
    },
    /// The sealed pin row does not open (another account's, another
    /// revision's, or sealed under a key that is not the account key).
    #[error("pin set: {0}")]
    Envelope(EnvelopeError),
}

/// What a fingerprint covers: an account's user id, its normalized identity
/// and its Ed25519 public key, from a key record whose own signature the
/// caller checked. The Ed25519 key signs the key records, so covering it
/// covers the KEM keys they carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The account.
    pub user_id: Uuid,
    /// Its identity, in normal form.
    pub identity: String,
    /// Its Ed25519 public key.
    pub ed25519_public: [u8; 32],
}

/// The SHA-512 a fingerprint, safety number and QR string come from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FingerprintDigest(pub [u8; 64]);

/// The first 32 bytes of a [`FingerprintDigest`]; the membership log records
/// members by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", crate::srp::hex(&self.0))
    }
}

impl Fingerprint {
    /// Compares in constant time.
    pub fn ct_equal(&self, other: &Fingerprint) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// All zero bytes (no fingerprint).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }
}

const FINGERPRINT_LABEL: &[u8] = b"zsm v1 fingerprint";

impl Identity {
    /// An identity with a key given as bytes; a key that is not 32 bytes is
    /// [`TrustError::BadIdentity`].
    pub fn from_slice(user_id: Uuid, identity: &str, ed25519_public: &[u8]) -> Result<Identity, TrustError> {
        let key: [u8; 32] = ed25519_public
            .try_into()
            .map_err(|_| TrustError::BadIdentity(format!("Ed25519 key of {} bytes", ed25519_public.len())))?;
        Ok(Identity {
            user_id,
            identity: identity.to_owned(),
            ed25519_public: key,
        })
    }

    fn check(&self) -> Result<(), TrustError> {
        if !crate::keyrecord::normalized(&self.identity) {
            return Err(TrustError::BadIdentity(format!(
                "identity {:?} is not in normal form",
                self.identity
            )));
        }
        Ok(())
    }

    /// The bytes the digest hashes:
    /// `"zsm v1 fingerprint" || 0x00 || user_id || u8(len(identity)) || identity || ed25519_public`.
    pub fn fingerprint_input(&self) -> Result<Vec<u8>, TrustError> {
        self.check()?;
        let mut b = Vec::with_capacity(FINGERPRINT_LABEL.len() + 1 + 16 + 1 + self.identity.len() + 32);
        b.extend_from_slice(FINGERPRINT_LABEL);
        b.push(0);
        b.extend_from_slice(self.user_id.as_bytes());
        b.push(self.identity.len() as u8);
        b.extend_from_slice(self.identity.as_bytes());
        b.extend_from_slice(&self.ed25519_public);
        Ok(b)
    }

    /// SHA-512 of [`Identity::fingerprint_input`]; refused for an identity
    /// not in normal form, so one account has one fingerprint.
    pub fn digest(&self) -> Result<FingerprintDigest, TrustError> {
        Ok(FingerprintDigest(Sha512::digest(self.fingerprint_input()?).into()))
    }

    /// The first 32 bytes of the digest.
    pub fn fingerprint(&self) -> Result<Fingerprint, TrustError> {
        Ok(self.digest()?.fingerprint())
    }
}

impl FingerprintDigest {
    /// `d[0:32]`.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(self.0[..32].try_into().expect("64 bytes"))
    }

    /// The 12 groups of 5 digits people read to each other: group i is
    /// `uint40be(d[5i:5i+5]) mod 100000`, zero-padded, joined by spaces.
    pub fn safety_number(&self) -> String {
        (0..12)
            .map(|i| {
                let mut x = [0u8; 8];
                x[3..].copy_from_slice(&self.0[5 * i..5 * i + 5]);
                format!("{:05}", u64::from_be_bytes(x) % 100_000)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `"zsmfp1:" || base64url-nopad(d[0:32])`, what a QR code carries.
    pub fn qr(&self) -> String {
        format!("{QR_PREFIX}{}", URL_SAFE_NO_PAD.encode(&self.0[..32]))
    }
}

/// Starts every fingerprint QR string.
pub const QR_PREFIX: &str = "zsmfp1:";

/// Parses a QR string strictly: the prefix, then exactly 43 characters of
/// unpadded base64url that re-encode to themselves.
pub fn parse_qr(s: &str) -> Result<Fingerprint, TrustError> {
    let rest = s.strip_prefix(QR_PREFIX).ok_or(TrustError::BadQr)?;
    if rest.len() != 43 {
        return Err(TrustError::BadQr);
    }
    let b = URL_SAFE_NO_PAD.decode(rest).map_err(|_| TrustError::BadQr)?;
    let f: [u8; 32] = b.try_into().map_err(|_| TrustError::BadQr)?;
    // One fingerprint, one text: unused bits must be zero.
    if URL_SAFE_NO_PAD.encode(f) != rest {
        return Err(TrustError::BadQr);
    }
    Ok(Fingerprint(f))
}

/// Checks a scanned QR string against the fingerprint of `i`, computed here
/// from the key the client holds (never one the server computed):
/// [`TrustError::BadQr`] if it does not parse, [`TrustError::Mismatch`] if it
/// differs.
pub fn match_qr(s: &str, i: &Identity) -> Result<(), TrustError> {
    let got = parse_qr(s)?;
    if !got.ct_equal(&i.fingerprint()?) {
        return Err(TrustError::Mismatch);
    }
    Ok(())
}
