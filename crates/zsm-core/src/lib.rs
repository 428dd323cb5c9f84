//! zsm-core: the client core of zsm, a zero-knowledge secrets manager.
//!
//! Everything a zsm client does that the server must not be able to do or
//! fake happens here: the two-secret key derivation (Argon2id and the Secret
//! Key), the committing envelope every ciphertext is stored in, the account
//! key bundle and its signed key record, vault keys sealed with HPKE (X25519
//! and the hybrid X-Wing) and grants signed with Ed25519, fingerprints and
//! pins, the membership log and the vault manifest of shared vaults
//! (docs/crypto.md), and the SRP-6a client of go-srp's BLAKE2b variant
//! (docs/auth.md). [`Client`] puts them together into a client of the zsm
//! server that checks everything the server sends before believing it.
//!
//! Each module mirrors one package of the Go SDK, byte for byte; the JSON
//! test vectors in `spec/vectors` check both.
#![forbid(unsafe_code)]

pub mod b64;
pub mod bundle;
pub mod client;
pub mod envelope;
pub mod error;
pub mod grant;
pub mod identity;
mod identity_tables;
mod json;
pub mod kdf;
pub mod keyrecord;
pub mod machinetoken;
pub mod manifest;
pub mod memberlog;
pub mod secret_key;
pub mod shared;
pub mod srp;
pub mod state;
pub mod trust;
pub mod xwing;

pub use client::{Client, Config, IdentityCheck, IdentityStatus, Secret, SessionInfo, SignupResult, Vault};
pub use error::Error;
pub use kdf::KdfParams;
pub use secret_key::SecretKey;
pub use state::{DeviceState, FileState};

/// Fills `buf` from the operating system's random source.
///
/// # Panics
/// If the operating system has no working random source: nothing in zsm can
/// be made safely without one.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}
