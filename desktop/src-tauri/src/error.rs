//! The one error type every IPC command returns.
//!
//! The web view gets `{"code", "message"}`: a stable snake_case code it may
//! branch on, and a sentence for the person. Messages never contain a
//! password, a key, a token or a secret value; the core's own errors are
//! mapped to these codes where the core is called.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// What went wrong, as the web view is told.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A command that needs the keys ran while the app is locked.
    #[error("zsm is locked: unlock it with your password")]
    Locked,
    /// A command that needs an account ran while nobody is signed in.
    #[error("nobody is signed in")]
    SignedOut,
    /// sign_in while an account is signed in (locked or not).
    #[error("an account is already signed in: sign out first")]
    AlreadySignedIn,
    /// Input the app refuses before anything is sent anywhere.
    #[error("{0}")]
    Invalid(String),
    /// The text is not a Secret Key (ZSM1-…).
    #[error("that is not a Secret Key: it looks like ZSM1-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XX (see your emergency kit)")]
    BadSecretKey,
    /// The server refused the password and Secret Key, or proved nothing.
    #[error("the password or the Secret Key is wrong")]
    AuthFailed,
    /// No such vault, secret or revision.
    #[error("{0} was not found")]
    NotFound(String),
    /// Something the server sent failed verification (the detail names
    /// what: ids and names, never a value or key).
    #[error("the server sent data that failed verification; nothing was trusted ({0})")]
    Integrity(String),
    /// The server cannot be reached, is unavailable or rate-limits.
    #[error("the server cannot be reached or is busy: {0}")]
    Unavailable(String),
    /// A name is taken, or someone changed the item meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// The server ended the session (revoked, expired, signed out elsewhere).
    #[error("the server ended this session: sign in again")]
    SessionEnded,
    /// The system clipboard could not be used.
    #[error("the clipboard is not available: {0}")]
    Clipboard(String),
    /// Reading or writing this device's files failed.
    #[error("this device's zsm files: {0}")]
    Storage(String),
    /// Anything else the core reported.
    #[error("{0}")]
    Other(String),
}

impl AppError {
    /// The stable code the web view branches on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Locked => "locked",
            AppError::SignedOut => "signed_out",
            AppError::AlreadySignedIn => "already_signed_in",
            AppError::Invalid(_) => "invalid_input",
            AppError::BadSecretKey => "bad_secret_key",
            AppError::AuthFailed => "auth_failed",
            AppError::NotFound(_) => "not_found",
            AppError::Integrity(_) => "integrity",
            AppError::Unavailable(_) => "unavailable",
            AppError::Conflict(_) => "conflict",
            AppError::SessionEnded => "session_ended",
            AppError::Clipboard(_) => "clipboard",
            AppError::Storage(_) => "storage",
            AppError::Other(_) => "error",
        }
    }
}

impl Serialize for AppError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("AppError", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

/// Shorthand for command results.
pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_code_and_message() {
        let j = serde_json::to_value(AppError::NotFound("secret \"db\"".into())).unwrap();
        assert_eq!(j["code"], "not_found");
        assert_eq!(j["message"], "secret \"db\" was not found");
        let j = serde_json::to_value(AppError::Locked).unwrap();
        assert_eq!(j["code"], "locked");
    }
}
