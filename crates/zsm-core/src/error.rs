//! The errors of [`crate::Client`]. Integrity failures are all
//! [`Error::Tampered`] (or [`Error::Rollback`]), so a caller can tell "the
//! server sent something it should not have" from everything else.

use crate::kdf::KdfError;

/// An error of a client operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such vault, secret, revision or session.
    #[error("not found: {0}")]
    NotFound(String),
    /// A vault of that name exists already, or the identity is taken.
    #[error("already exists: {0}")]
    Exists(String),
    /// Someone else changed the object meanwhile; try again.
    #[error("changed by someone else meanwhile; try again: {0}")]
    Conflict(String),
    /// The server sent data this account did not write: a swapped, moved,
    /// relabelled or modified ciphertext, a substituted key, a tampered
    /// bundle, a forged SRP proof.
    #[error("integrity check failed: the server sent data this account did not write: {0}")]
    Tampered(String),
    /// The server sent an older revision than this device has seen.
    #[error("the server sent an older revision than this device has already seen: {0}")]
    Rollback(String),
    /// The server's KDF parameters differ from the ones this device pinned
    /// for the account (a password change elsewhere needs an explicit
    /// acceptance; anything else is an attack).
    #[error("the server's key-derivation parameters differ from the ones this device pinned for the account")]
    KdfChange,
    /// KDF parameters below the floor, a bad password or identity.
    #[error(transparent)]
    Kdf(#[from] KdfError),
    /// A wrong password, a wrong Secret Key or an unknown identity (the
    /// server answers all three alike).
    #[error("login failed: wrong identity, password or Secret Key")]
    LoginFailed,
    /// The password or Secret Key does not open this account's keys.
    #[error("the password or Secret Key is wrong")]
    WrongPassword,
    /// The session cannot be refreshed any more: log in again.
    #[error("the session has ended; log in again")]
    SessionExpired,
    /// The client is locked: unlock it with the password first.
    #[error("locked: unlock with the password first")]
    Locked,
    /// Bad input from the caller (a name, an identity, a value too large).
    #[error("{0}")]
    Invalid(String),
    /// An error answer of authsvc.
    #[error("{message} (HTTP {status}, {code}, request {request_id})")]
    Api {
        /// HTTP status.
        status: u16,
        /// authsvc's error code.
        code: String,
        /// Its message.
        message: String,
        /// The request id, for the operator.
        request_id: String,
    },
    /// An error answer of PostgREST.
    #[error("server refused the request (HTTP {status}, {code}): {message}")]
    Rest {
        /// HTTP status.
        status: u16,
        /// PostgREST's or the database's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the zsm server: {0}")]
    Http(#[from] reqwest::Error),
    /// The device state could not be read or written.
    #[error("device state: {0}")]
    State(String),
}

impl Error {
    /// The HTTP status of an error answer of the server, if it is one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Rest { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub(crate) fn tamper(what: impl std::fmt::Display) -> Error {
    Error::Tampered(what.to_string())
}
