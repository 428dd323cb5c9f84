//! The IPC commands: everything the web view can ask of the Rust process.
//!
//! The set is the minimum the screens need, listed once in
//! `ipc-commands.txt`. build.rs turns that list into one permission per
//! command, capabilities/default.json grants exactly those (and nothing of
//! Tauri's core), and [`COMMANDS`] — what [`handler`] registers — is tested
//! to be equal to the list. Every command that is not [`app_status`] counts
//! as activity for the idle lock.
//!
//! What crosses to the web view: names, revisions, times, roles, session
//! rows, and a secret's value only from [`reveal_secret`]. Never a key, a
//! token, the password or the Secret Key. What crosses from it: what the
//! person typed.

use serde::Deserialize;
use tauri::State;
use zeroize::Zeroizing;

use crate::clipboard::SystemClipboard;
use crate::core_api::Account;
use crate::error::{AppError, AppResult};
use crate::session::{self, AppState};
use crate::view::{
    AppStatus, IdentityView, KitInfo, RevealedSecret, RevisionView, SecretSummary, SessionView, SyncStatus,
    VaultListing, VaultView,
};
use crate::{generator, kit};

/// The state every command works on.
pub type Shared = AppState<crate::zsm::ZsmCore, SystemClipboard>;
type St<'a> = State<'a, Shared>;

/// Registers the commands and lists their names from one list, so the two
/// cannot differ.
macro_rules! ipc_commands {
    ($($name:ident),* $(,)?) => {
        /// The names of the commands [`handler`] registers.
        pub const COMMANDS: &[&str] = &[$(stringify!($name)),*];

        /// The invoke handler: exactly [`COMMANDS`].
        pub fn handler<R: tauri::Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
            tauri::generate_handler![$($name),*]
        }
    };
}

ipc_commands![
    app_status,
    touch,
    read_kit,
    sign_in,
    unlock,
    lock,
    sign_out,
    list_vaults,
    create_vault,
    rename_vault,
    delete_vault,
    list_secrets,
    reveal_secret,
    copy_secret,
    save_secret,
    delete_secret,
    secret_history,
    restore_revision,
    generate_secret,
    sync_status,
    sync_now,
    list_sessions,
    revoke_session,
    check_identity,
    trust_identity,
    decline_invitation,
];

/// Where the app is (polled by the screen; not activity).
#[tauri::command]
fn app_status(state: St<'_>) -> AppStatus {
    state.status()
}

/// The person did something in the window: restart the idle timer.
#[tauri::command]
fn touch(state: St<'_>) {
    state.touch();
}

/// The server and identity an emergency kit names, to fill the form.
#[tauri::command]
fn read_kit(state: St<'_>, text: Zeroizing<String>) -> AppResult<KitInfo> {
    state.touch();
    kit::info(&text)
}

/// The sign-in form. The Secret Key comes typed or inside the kit's text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignIn {
    server: String,
    identity: String,
    password: Zeroizing<String>,
    #[serde(default)]
    secret_key: Option<Zeroizing<String>>,
    #[serde(default)]
    kit: Option<Zeroizing<String>>,
}

#[tauri::command]
async fn sign_in(state: St<'_>, form: SignIn) -> AppResult<()> {
    let secret_key = match (form.secret_key.filter(|k| !k.trim().is_empty()), form.kit) {
        (Some(k), _) => k,
        (None, Some(text)) => kit::secret_key(&text)?,
        (None, None) => {
            return Err(AppError::Invalid(
                "enter your Secret Key or open your emergency kit".into(),
            ));
        }
    };
    state
        .sign_in(&form.server, &form.identity, form.password, secret_key)
        .await
}

#[tauri::command]
async fn unlock(state: St<'_>, password: Zeroizing<String>) -> AppResult<()> {
    state.unlock(password).await
}

#[tauri::command]
async fn lock(state: St<'_>) -> AppResult<()> {
    state.lock(None).await;
    Ok(())
}

#[tauri::command]
async fn sign_out(state: St<'_>) -> AppResult<()> {
    state.sign_out().await;
    Ok(())
}

#[tauri::command]
async fn list_vaults(state: St<'_>) -> AppResult<VaultListing> {
    let r = state.unlocked().await?.account.vaults().await;
    state.settle(r).await
}

#[tauri::command]
async fn create_vault(state: St<'_>, name: String) -> AppResult<VaultView> {
    let r = state.unlocked().await?.account.create_vault(&name).await;
    state.settle(r).await
}

#[tauri::command]
async fn rename_vault(state: St<'_>, vault_id: String, name: String) -> AppResult<VaultView> {
    let r = state.unlocked().await?.account.rename_vault(&vault_id, &name).await;
    state.settle(r).await
}

#[tauri::command]
async fn delete_vault(state: St<'_>, vault_id: String) -> AppResult<()> {
    let r = state.unlocked().await?.account.delete_vault(&vault_id).await;
    state.settle(r).await
}

#[tauri::command]
async fn list_secrets(state: St<'_>, vault_id: String) -> AppResult<Vec<SecretSummary>> {
    let r = state.unlocked().await?.account.secrets(&vault_id).await;
    state.settle(r).await
}

/// The one command that sends a secret's value to the web view.
#[tauri::command]
async fn reveal_secret(state: St<'_>, vault_id: String, name: String) -> AppResult<RevealedSecret> {
    let r = state.unlocked().await?.account.secret_value(&vault_id, &name).await;
    let (s, value) = state.settle(r).await?;
    Ok(RevealedSecret {
        name: s.name,
        value,
        revision: s.revision,
        updated_at: s.updated_at,
    })
}

/// Copies a value to the clipboard from here: the web view never sees it.
#[tauri::command]
async fn copy_secret(state: St<'_>, vault_id: String, name: String) -> AppResult<u64> {
    let r = state.unlocked().await?.account.secret_value(&vault_id, &name).await;
    let (_, value) = state.settle(r).await?;
    state.clipboard.copy(value)?;
    Ok(state.clipboard.clear_after().as_secs())
}

#[tauri::command]
async fn save_secret(
    state: St<'_>,
    vault_id: String,
    name: String,
    value: Zeroizing<String>,
    expected_revision: Option<u64>,
) -> AppResult<SecretSummary> {
    let r = state
        .unlocked()
        .await?
        .account
        .set_secret(&vault_id, &name, &value, expected_revision)
        .await;
    state.settle(r).await
}

#[tauri::command]
async fn delete_secret(state: St<'_>, vault_id: String, name: String) -> AppResult<()> {
    let r = state.unlocked().await?.account.delete_secret(&vault_id, &name).await;
    state.settle(r).await
}

#[tauri::command]
async fn secret_history(state: St<'_>, vault_id: String, name: String) -> AppResult<Vec<RevisionView>> {
    let r = state.unlocked().await?.account.history(&vault_id, &name).await;
    state.settle(r).await
}

#[tauri::command]
async fn restore_revision(state: St<'_>, vault_id: String, name: String, revision: u64) -> AppResult<SecretSummary> {
    let r = state
        .unlocked()
        .await?
        .account
        .restore(&vault_id, &name, revision)
        .await;
    state.settle(r).await
}

/// A generated value for the add-secret form (the person sees it there).
#[tauri::command]
fn generate_secret(state: St<'_>, alphabet: String, length: usize) -> AppResult<Zeroizing<String>> {
    state.touch();
    generator::generate(&alphabet, length)
}

#[tauri::command]
async fn sync_status(state: St<'_>) -> AppResult<SyncStatus> {
    Ok(state.unlocked().await?.sync.clone())
}

/// Lists and checks every vault and secret again.
#[tauri::command]
async fn sync_now(state: St<'_>) -> AppResult<SyncStatus> {
    let r = session::sync(&mut *state.unlocked().await?).await;
    state.settle(r).await
}

#[tauri::command]
async fn list_sessions(state: St<'_>) -> AppResult<Vec<SessionView>> {
    let r = state.unlocked().await?.account.sessions().await;
    state.settle(r).await
}

#[tauri::command]
async fn revoke_session(state: St<'_>, session_id: String) -> AppResult<()> {
    let r = state.unlocked().await?.account.revoke_session(&session_id).await;
    state.settle(r).await
}

/// Another account's keys and safety number (computed here), to compare.
#[tauri::command]
async fn check_identity(state: St<'_>, identity: String) -> AppResult<IdentityView> {
    let r = state.unlocked().await?.account.check_identity(&identity).await;
    state.settle(r).await
}

/// Pins an account's keys after the person compared their safety number:
/// only if it is still the number they compared.
#[tauri::command]
async fn trust_identity(state: St<'_>, identity: String, safety_number: String) -> AppResult<IdentityView> {
    let r = state
        .unlocked()
        .await?
        .account
        .trust_identity(&identity, &safety_number)
        .await;
    state.settle(r).await
}

/// Refuses an invitation (and blocks its sender).
#[tauri::command]
async fn decline_invitation(state: St<'_>, vault_id: String) -> AppResult<()> {
    let r = state.unlocked().await?.account.decline_invitation(&vault_id).await;
    state.settle(r).await
}
