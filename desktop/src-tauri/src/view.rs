//! What the web view is shown: plain data for one screen at a time.
//!
//! Nothing here holds a key, a token or a password. A secret's value appears
//! only in [`RevealedSecret`], returned by the one command that reveals it,
//! and is zeroized on the Rust side once it has been serialised.

use serde::Serialize;
use zeroize::Zeroizing;

/// A vault as listed: its name (decrypted by the core) and the caller's role.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VaultView {
    pub id: String,
    pub name: String,
    /// owner, admin, editor or viewer (a shared vault shows the role granted).
    pub role: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A vault the core refused to open: the server sent a grant, key, name or
/// revision this account did not write (or an older one than this device
/// has seen). Its name is unknown; the reason names no key or value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefusedVaultView {
    pub id: String,
    pub reason: String,
}

/// A vault another account shared with this one whose sharer this account
/// has not verified: nothing of it is opened until the person compares the
/// sharer's safety number and trusts them (or declines). Who sent it is
/// what the server says; the role is what the grant says.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvitationView {
    pub vault_id: String,
    /// The sharer's identity as the server names it (empty if unknown).
    pub from_identity: String,
    pub from_user_id: String,
    pub role: String,
    /// RFC 3339, as the server sent it.
    pub at: String,
}

/// The vault list: the vaults that verified, those that did not (shown
/// apart, never silently dropped), and invitations from accounts not yet
/// verified.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct VaultListing {
    pub vaults: Vec<VaultView>,
    pub refused: Vec<RefusedVaultView>,
    pub invitations: Vec<InvitationView>,
}

/// Another account's keys as this device checked them, for the screen on
/// which the person compares safety numbers. The safety number is computed
/// here from the keys the core will use, never taken from the server.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IdentityView {
    pub identity: String,
    pub user_id: String,
    /// 12 groups of 5 digits.
    pub safety_number: String,
    /// unverified, verified, tofu, changed or downgrade.
    pub status: String,
    /// This account's own safety number, for the other person to compare.
    pub own_safety_number: String,
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecretSummary {
    pub name: String,
    pub revision: u64,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// One secret's value, for the screen that reveals it.
#[derive(Serialize)]
pub struct RevealedSecret {
    pub name: String,
    pub value: Zeroizing<String>,
    pub revision: u64,
    pub updated_at: String,
}

impl std::fmt::Debug for RevealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevealedSecret")
            .field("name", &self.name)
            .field("value", &"[redacted]")
            .field("revision", &self.revision)
            .finish()
    }
}

/// One revision in a secret's history (its value stays in the core).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RevisionView {
    pub revision: u64,
    pub updated_at: String,
    pub current: bool,
}

/// One of the account's sessions (devices signed in).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionView {
    pub id: String,
    pub device_label: Option<String>,
    pub client_addr: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub current: bool,
}

/// The outcome of the last full sync (every vault and secret listed and
/// verified).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct SyncStatus {
    /// RFC 3339, UTC; None before the first sync of this unlock.
    pub last_sync: Option<String>,
    /// Vaults and secrets that verified.
    pub vaults: usize,
    pub secrets: usize,
    /// Vaults that failed verification in that sync.
    pub refused: Vec<RefusedVaultView>,
    /// Why the last attempt failed, if it did (the counts are from the last
    /// success).
    pub error: Option<String>,
}

/// Where the app is, for the screen to pick itself. Polled; never counts as
/// activity.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppStatus {
    /// signed_out, locked or unlocked.
    pub phase: &'static str,
    pub server: Option<String>,
    pub identity: Option<String>,
    /// The sign-in form's defaults (the last server and identity used).
    pub default_server: String,
    pub default_identity: Option<String>,
    pub idle_lock_seconds: u64,
    pub clipboard_clear_seconds: u64,
    /// Why the app locked itself, once (idle, session_ended).
    pub lock_reason: Option<String>,
}

/// Server and identity read from an emergency kit (never its Secret Key).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KitInfo {
    pub server: Option<String>,
    pub identity: Option<String>,
}
