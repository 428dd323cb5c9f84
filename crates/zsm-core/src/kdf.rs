//! Two-secret key derivation (docs/crypto.md §1): the password through
//! Argon2id, then HKDF-SHA256 keyed with the Secret Key, into the SRP secret
//! and the unlock key.
//!
//! Nothing here trusts the server: parameters below the floor or above the
//! sane maxima are refused before any use ([`KdfParams::check`]).

use std::fmt;

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::secret_key::SecretKey;

/// The Argon2id floor (RFC 9106's second recommendation) and the maxima. The
/// client refuses anything outside, whatever the server says.
pub const FLOOR_MEMORY_KIB: u32 = 64 * 1024;
/// Floor of `iterations`.
pub const FLOOR_ITERATIONS: u32 = 3;
/// Floor of `parallelism`.
pub const FLOOR_PARALLELISM: u8 = 4;
/// Maximum of `memory_kib` (4 GiB): a server must not make a client spin.
pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Maximum of `iterations`.
pub const MAX_ITERATIONS: u32 = 64;
/// Maximum of `parallelism`.
pub const MAX_PARALLELISM: u8 = 16;
/// Size of the Argon2id salt.
pub const SALT_SIZE: usize = 16;
/// The only accepted KDF.
pub const KDF_ALG: &str = "argon2id";

/// An account's password KDF parameters, as authsvc stores and returns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always `argon2id`.
    pub alg: String,
    /// Canonical standard base64 of 16 bytes.
    pub salt: String,
    /// Argon2id memory in KiB.
    pub memory_kib: u32,
    /// Argon2id passes.
    pub iterations: u32,
    /// Argon2id lanes.
    pub parallelism: u8,
}

/// Why a derivation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KdfError {
    /// Parameters weaker than the floor, above the maxima, another
    /// algorithm, or a salt that is not 16 bytes of canonical base64. A
    /// client that gets this from the server's parameters aborts the login
    /// before it derives or sends anything.
    #[error("KDF parameters refused: {0}")]
    WeakKdf(String),
    /// The password is empty, not UTF-8, or has more than 30 combining
    /// marks in a row.
    #[error("the password must be non-empty UTF-8 (with at most 30 combining marks in a row)")]
    BadPassword,
    /// The identity is not in `srpgroup.NormalizeIdentity`'s normal form.
    #[error("the identity is not in its normal form")]
    BadIdentity,
}

impl KdfParams {
    /// The floor parameters with a fresh random salt. The zsm clients always
    /// sign up with these, so their accounts look like the made-up ones
    /// authsvc answers for unknown identities.
    pub fn default_with_random_salt() -> KdfParams {
        let mut salt = [0u8; SALT_SIZE];
        crate::random_bytes(&mut salt);
        KdfParams {
            alg: KDF_ALG.to_owned(),
            salt: crate::b64::encode(&salt),
            memory_kib: FLOOR_MEMORY_KIB,
            iterations: FLOOR_ITERATIONS,
            parallelism: FLOOR_PARALLELISM,
        }
    }

    /// Refuses parameters that are not Argon2id within the floor and the
    /// maxima, or whose salt is not 16 bytes of canonical base64.
    pub fn check(&self) -> Result<(), KdfError> {
        let weak = |m: String| Err(KdfError::WeakKdf(m));
        if self.alg != KDF_ALG {
            return weak(format!("alg {:?} is not {KDF_ALG:?}", self.alg));
        }
        self.salt_bytes()?;
        if self.memory_kib < FLOOR_MEMORY_KIB {
            return weak(format!(
                "memory_kib {} is below the floor {FLOOR_MEMORY_KIB}",
                self.memory_kib
            ));
        }
        if self.memory_kib > MAX_MEMORY_KIB {
            return weak(format!(
                "memory_kib {} is above the maximum {MAX_MEMORY_KIB}",
                self.memory_kib
            ));
        }
        if self.iterations < FLOOR_ITERATIONS {
            return weak(format!(
                "iterations {} is below the floor {FLOOR_ITERATIONS}",
                self.iterations
            ));
        }
        if self.iterations > MAX_ITERATIONS {
            return weak(format!(
                "iterations {} is above the maximum {MAX_ITERATIONS}",
                self.iterations
            ));
        }
        if self.parallelism < FLOOR_PARALLELISM {
            return weak(format!(
                "parallelism {} is below the floor {FLOOR_PARALLELISM}",
                self.parallelism
            ));
        }
        if self.parallelism > MAX_PARALLELISM {
            return weak(format!(
                "parallelism {} is above the maximum {MAX_PARALLELISM}",
                self.parallelism
            ));
        }
        Ok(())
    }

    fn salt_bytes(&self) -> Result<Vec<u8>, KdfError> {
        match crate::b64::decode(&self.salt) {
            Some(s) if s.len() == SALT_SIZE => Ok(s),
            _ => Err(KdfError::WeakKdf(format!(
                "salt must be {SALT_SIZE} bytes in canonical standard base64"
            ))),
        }
    }
}

/// The two keys the password and the Secret Key yield. Neither is ever sent.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Derived {
    /// What go-srp calls the password.
    pub srp_secret: [u8; 32],
    /// Opens the account key.
    pub unlock_key: [u8; 32],
}

impl fmt::Debug for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Derived([redacted])")
    }
}

/// HKDF info labels.
pub const LABEL_SRP: &str = "zsm v1 srp-secret";
/// HKDF info label of the unlock key.
pub const LABEL_UNLOCK: &str = "zsm v1 unlock-key";

/// Argon2id (version 0x13, no secret, no associated data), 32-byte output.
pub fn argon2id(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    memory_kib: u32,
    parallelism: u32,
) -> Result<Zeroizing<[u8; 32]>, KdfError> {
    let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|e| KdfError::WeakKdf(format!("argon2: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(password, salt, out.as_mut())
        .map_err(|e| KdfError::WeakKdf(format!("argon2: {e}")))?;
    Ok(out)
}

/// `info = label || 0x00 || identity`.
pub fn info(label: &str, identity: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(label.len() + 1 + identity.len());
    v.extend_from_slice(label.as_bytes());
    v.push(0);
    v.extend_from_slice(identity.as_bytes());
    v
}

/// The HKDF step: `HKDF-SHA256(ikm = kpw, salt = Secret Key, info, 32)` for
/// each of the two labels.
pub fn split(kpw: &[u8], secret_key: &[u8], identity: &str) -> Derived {
    let h = Hkdf::<Sha256>::new(Some(secret_key), kpw);
    let mut d = Derived {
        srp_secret: [0; 32],
        unlock_key: [0; 32],
    };
    h.expand(&info(LABEL_SRP, identity), &mut d.srp_secret)
        .expect("32 bytes is a valid HKDF length");
    h.expand(&info(LABEL_UNLOCK, identity), &mut d.unlock_key)
        .expect("32 bytes is a valid HKDF length");
    d
}

/// Derives the SRP secret and the unlock key:
///
/// ```text
/// K_pw       = Argon2id(NFKC(password), salt, t, m, p, 32)
/// SRP secret = HKDF-SHA256(K_pw, salt = Secret Key, "zsm v1 srp-secret" || 0x00 || identity, 32)
/// unlock key = HKDF-SHA256(K_pw, salt = Secret Key, "zsm v1 unlock-key" || 0x00 || identity, 32)
/// ```
///
/// Checks, in this order: the parameters (before any work), the password
/// (non-empty UTF-8; bytes, because a password typed elsewhere may not be
/// UTF-8), and that the identity is already in its normal form, so the keys
/// are never derived from a spelling the server does not use.
pub fn derive(password: &[u8], sk: &SecretKey, identity: &str, p: &KdfParams) -> Result<Derived, KdfError> {
    p.check()?;
    let salt = p.salt_bytes()?;
    // A password with more than 30 combining marks in a row is refused: Go's
    // NFKC would break the run with U+034F by rules this crate does not copy
    // (see identity::nfkc), and the keys must come out equal.
    let pw = match std::str::from_utf8(password) {
        Ok(s) if !s.is_empty() && crate::identity::longest_mark_run(s) <= crate::identity::MAX_NON_STARTERS => s,
        _ => return Err(KdfError::BadPassword),
    };
    if crate::identity::normalize(identity).as_deref() != Ok(identity) {
        return Err(KdfError::BadIdentity);
    }
    let nfkc = Zeroizing::new(crate::identity::nfkc(pw));
    let kpw = argon2id(
        nfkc.as_bytes(),
        &salt,
        p.iterations,
        p.memory_kib,
        u32::from(p.parallelism),
    )?;
    Ok(split(kpw.as_ref(), sk.as_bytes(), identity))
}
