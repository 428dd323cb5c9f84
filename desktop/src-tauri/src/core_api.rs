//! What the app needs from the client core, as two traits.
//!
//! Everything cryptographic and every server call happens behind them, in
//! `zsm-core` (see [`crate::zsm`] for the implementation over it). The app
//! itself holds no key and speaks no protocol: it keeps an [`Account`], locks
//! it (the core zeroizes its keys) and drops it on sign-out.

use std::future::Future;

use zeroize::Zeroizing;

use crate::error::AppResult;
use crate::view::{IdentityView, RevisionView, SecretSummary, SessionView, VaultListing, VaultView};

/// What signing in takes. Debug never shows the password or Secret Key.
pub struct Credentials {
    /// The gateway's base URL (http or https).
    pub server: String,
    pub identity: String,
    pub password: Zeroizing<String>,
    /// The Secret Key's text (ZSM1-…); the core parses it.
    pub secret_key: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("identity", &self.identity)
            .field("password", &"[redacted]")
            .field("secret_key", &"[redacted]")
            .finish()
    }
}

/// The client core: signs in and hands out an unlocked account.
pub trait Core: Send + Sync + 'static {
    type Account: Account;

    /// Logs in with SRP-6a (checking the server's proof) and opens the key
    /// bundle. Errors: AuthFailed for a wrong password or Secret Key,
    /// BadSecretKey for text that is not one, Integrity for anything the
    /// server sent that does not verify.
    fn sign_in(&self, c: &Credentials) -> impl Future<Output = AppResult<Self::Account>> + Send;
}

/// A signed-in account: its keys and tokens live inside, in the core, which
/// zeroizes them when it is dropped.
pub trait Account: Send + 'static {
    /// Zeroizes the account and vault keys; the session's tokens stay, so
    /// that unlocking needs no network. Nothing can be read or written until
    /// [`Account::unlock`].
    fn lock(&mut self);
    /// Opens the keys again from the password and the Secret Key (on this
    /// device: Argon2id, then the key bundle). AuthFailed when they do not
    /// open it.
    fn unlock(&mut self, password: &str, secret_key: &str) -> impl Future<Output = AppResult<()>> + Send;

    /// Every vault the account can open, with its role, and apart from them
    /// the vaults that failed verification (one bad vault never fails the
    /// list).
    fn vaults(&mut self) -> impl Future<Output = AppResult<VaultListing>> + Send;
    fn create_vault(&mut self, name: &str) -> impl Future<Output = AppResult<VaultView>> + Send;
    fn rename_vault(&mut self, vault_id: &str, name: &str) -> impl Future<Output = AppResult<VaultView>> + Send;
    /// Deletes the vault and every secret in it.
    fn delete_vault(&mut self, vault_id: &str) -> impl Future<Output = AppResult<()>> + Send;

    /// The vault's secrets, names and revisions only, each verified.
    fn secrets(&mut self, vault_id: &str) -> impl Future<Output = AppResult<Vec<SecretSummary>>> + Send;
    /// One secret's current value.
    fn secret_value(
        &mut self,
        vault_id: &str,
        name: &str,
    ) -> impl Future<Output = AppResult<(SecretSummary, Zeroizing<String>)>> + Send;
    /// Creates the secret (expected_revision None) or writes a new revision
    /// of it; a secret changed since expected_revision is a Conflict.
    fn set_secret(
        &mut self,
        vault_id: &str,
        name: &str,
        value: &str,
        expected_revision: Option<u64>,
    ) -> impl Future<Output = AppResult<SecretSummary>> + Send;
    fn delete_secret(&mut self, vault_id: &str, name: &str) -> impl Future<Output = AppResult<()>> + Send;
    /// Revisions, newest first.
    fn history(&mut self, vault_id: &str, name: &str) -> impl Future<Output = AppResult<Vec<RevisionView>>> + Send;
    /// Writes revision's value as a new revision.
    fn restore(
        &mut self,
        vault_id: &str,
        name: &str,
        revision: u64,
    ) -> impl Future<Output = AppResult<SecretSummary>> + Send;

    /// Looks an account up and computes its safety number from the keys
    /// the core checked, with what this account's pins say of them.
    fn check_identity(&mut self, identity: &str) -> impl Future<Output = AppResult<IdentityView>> + Send;
    /// Pins identity's keys as verified, but only if their safety number is
    /// still `safety_number` (the one the person compared): keys that
    /// changed in between are an Integrity error and nothing is pinned.
    fn trust_identity(
        &mut self,
        identity: &str,
        safety_number: &str,
    ) -> impl Future<Output = AppResult<IdentityView>> + Send;
    /// Refuses the invitation to vault_id: the server deletes the grant and
    /// blocks its sender from inviting this account again.
    fn decline_invitation(&mut self, vault_id: &str) -> impl Future<Output = AppResult<()>> + Send;

    fn sessions(&mut self) -> impl Future<Output = AppResult<Vec<SessionView>>> + Send;
    fn revoke_session(&mut self, id: &str) -> impl Future<Output = AppResult<()>> + Send;

    /// Ends the session on the server and locks (best effort: the caller
    /// drops the account, and with it keys and tokens, whatever this
    /// returns).
    fn sign_out(&mut self) -> impl Future<Output = AppResult<()>> + Send;
}
