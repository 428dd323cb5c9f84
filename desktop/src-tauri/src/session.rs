//! The app's one state machine: signed out → unlocked ⇄ locked → signed out.
//!
//! - **Unlocked** holds the core's [`Account`]: keys, tokens, session.
//! - **Locked** holds the same account with its keys zeroized by the core
//!   (the session's tokens stay), plus the server, the identity and the
//!   Secret Key's text, so that unlocking asks for the password alone (as
//!   `zsm login` does with the key kept on the device) and works offline.
//!   The Secret Key by itself opens nothing. When the server has ended the
//!   session, the account is dropped altogether and unlocking logs in again.
//! - **Signed out** holds nothing.
//!
//! Locking also takes back a secret zsm put on the clipboard. The app locks
//! itself after [`AppState::idle_lock`] without activity, and when the
//! server ends the session.

use std::path::PathBuf;
use std::sync::Mutex as SyncMutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use zeroize::Zeroizing;

use crate::clipboard::{Clipboard, ClipboardGuard};
use crate::core_api::{Account, Core, Credentials};
use crate::error::{AppError, AppResult};
use crate::view::{AppStatus, SyncStatus, VaultListing};

/// The default idle time before the app locks itself.
pub const DEFAULT_IDLE_LOCK: Duration = Duration::from_secs(5 * 60);
/// How long a server logout may delay signing out.
const SIGN_OUT_TIMEOUT: Duration = Duration::from_secs(3);
/// The local stack's gateway (cmd/zsmstack), the sign-in form's default.
pub const LOCAL_SERVER: &str = "http://127.0.0.1:8080";

/// What a signed-in app keeps besides the account: enough to unlock with
/// the password alone.
struct Kept {
    server: String,
    identity: String,
    secret_key: Zeroizing<String>,
}

/// An unlocked account and what the app learnt since unlocking.
pub struct Unlocked<A> {
    kept: Kept,
    pub account: A,
    pub sync: SyncStatus,
}

enum Phase<A> {
    SignedOut,
    /// The account with its keys locked; None after the server ended the
    /// session (unlocking then logs in afresh).
    Locked(Kept, Option<A>),
    Unlocked(Box<Unlocked<A>>),
}

/// What the sign-in form remembers between runs: never a secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    pub server: Option<String>,
    pub identity: Option<String>,
}

/// Where `app_status` reads from without waiting for a running command.
#[derive(Debug, Clone)]
struct Snapshot {
    phase: &'static str,
    server: Option<String>,
    identity: Option<String>,
    lock_reason: Option<String>,
}

/// Everything the IPC commands share.
pub struct AppState<C: Core, K: Clipboard> {
    core: C,
    phase: Mutex<Phase<C::Account>>,
    snapshot: SyncMutex<Snapshot>,
    last_activity: SyncMutex<Instant>,
    pub idle_lock: Duration,
    pub clipboard: ClipboardGuard<K>,
    settings: SyncMutex<Settings>,
    /// settings.json; None keeps settings in memory only.
    settings_file: Option<PathBuf>,
    /// The server from the environment (ZSM_SERVER), ahead of settings.
    env_server: Option<String>,
}

impl<C: Core, K: Clipboard> AppState<C, K> {
    pub fn new(
        core: C,
        clipboard: ClipboardGuard<K>,
        idle_lock: Duration,
        settings_file: Option<PathBuf>,
        env_server: Option<String>,
    ) -> Self {
        let settings = settings_file
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        AppState {
            core,
            phase: Mutex::new(Phase::SignedOut),
            snapshot: SyncMutex::new(Snapshot {
                phase: "signed_out",
                server: None,
                identity: None,
                lock_reason: None,
            }),
            last_activity: SyncMutex::new(Instant::now()),
            idle_lock,
            clipboard,
            settings: SyncMutex::new(settings),
            settings_file,
            env_server,
        }
    }

    /// Where the app is. Reading it is not activity (the screen polls it).
    pub fn status(&self) -> AppStatus {
        let s = self.snapshot.lock().expect("snapshot lock").clone();
        let settings = self.settings.lock().expect("settings lock").clone();
        AppStatus {
            phase: s.phase,
            server: s.server,
            identity: s.identity,
            default_server: self
                .env_server
                .clone()
                .or(settings.server)
                .unwrap_or_else(|| LOCAL_SERVER.to_owned()),
            default_identity: settings.identity,
            idle_lock_seconds: self.idle_lock.as_secs(),
            clipboard_clear_seconds: self.clipboard.clear_after().as_secs(),
            lock_reason: s.lock_reason,
        }
    }

    /// Records activity: the idle timer starts again.
    pub fn touch(&self) {
        *self.last_activity.lock().expect("activity lock") = Instant::now();
    }

    /// How long nobody has done anything.
    pub fn idle_for(&self) -> Duration {
        self.last_activity.lock().expect("activity lock").elapsed()
    }

    fn set_snapshot(&self, phase: &'static str, kept: Option<&Kept>, reason: Option<&str>) {
        *self.snapshot.lock().expect("snapshot lock") = Snapshot {
            phase,
            server: kept.map(|k| k.server.clone()),
            identity: kept.map(|k| k.identity.clone()),
            lock_reason: reason.map(str::to_owned),
        };
    }

    fn remember(&self, server: &str, identity: &str) -> AppResult<()> {
        let s = Settings {
            server: Some(server.to_owned()),
            identity: Some(identity.to_owned()),
        };
        *self.settings.lock().expect("settings lock") = s.clone();
        if let Some(path) = &self.settings_file {
            let json = serde_json::to_vec_pretty(&s).map_err(|e| AppError::Storage(e.to_string()))?;
            write_atomically(path, &json)?;
        }
        Ok(())
    }

    /// Signs in: the core logs in and opens the keys.
    pub async fn sign_in(
        &self,
        server: &str,
        identity: &str,
        password: Zeroizing<String>,
        secret_key: Zeroizing<String>,
    ) -> AppResult<()> {
        self.touch();
        let server = check_server(server)?;
        let identity = identity.trim();
        if identity.is_empty() || identity.len() > 256 || identity.chars().any(char::is_control) {
            return Err(AppError::Invalid(
                "enter the identity you signed up with (1–256 characters)".into(),
            ));
        }
        if password.is_empty() {
            return Err(AppError::Invalid("enter your password".into()));
        }
        let secret_key = Zeroizing::new(secret_key.trim().to_owned());
        if secret_key.is_empty() {
            return Err(AppError::Invalid(
                "enter your Secret Key or open your emergency kit".into(),
            ));
        }
        let mut phase = self.phase.lock().await;
        if !matches!(*phase, Phase::SignedOut) {
            return Err(AppError::AlreadySignedIn);
        }
        let creds = Credentials {
            server,
            identity: identity.to_owned(),
            password,
            secret_key,
        };
        let account = self.core.sign_in(&creds).await?;
        let kept = Kept {
            server: creds.server,
            identity: creds.identity,
            secret_key: creds.secret_key,
        };
        // Not fatal: the form only loses its defaults.
        let _ = self.remember(&kept.server, &kept.identity);
        self.set_snapshot("unlocked", Some(&kept), None);
        *phase = Phase::Unlocked(Box::new(Unlocked {
            kept,
            account,
            sync: SyncStatus::default(),
        }));
        self.touch();
        Ok(())
    }

    /// Unlocks a locked app with the password: the core opens the keys again
    /// on this device, or, when the server ended the session, logs in afresh.
    pub async fn unlock(&self, password: Zeroizing<String>) -> AppResult<()> {
        self.touch();
        if password.is_empty() {
            return Err(AppError::Invalid("enter your password".into()));
        }
        let mut phase = self.phase.lock().await;
        match &mut *phase {
            Phase::SignedOut => return Err(AppError::SignedOut),
            Phase::Unlocked(_) => return Ok(()),
            Phase::Locked(kept, Some(account)) => account.unlock(&password, &kept.secret_key).await?,
            Phase::Locked(kept, slot @ None) => {
                let creds = Credentials {
                    server: kept.server.clone(),
                    identity: kept.identity.clone(),
                    password,
                    secret_key: kept.secret_key.clone(),
                };
                *slot = Some(self.core.sign_in(&creds).await?);
            }
        }
        let Phase::Locked(kept, Some(account)) = std::mem::replace(&mut *phase, Phase::SignedOut) else {
            unreachable!("an account is in place, under the same lock");
        };
        self.set_snapshot("unlocked", Some(&kept), None);
        *phase = Phase::Unlocked(Box::new(Unlocked {
            kept,
            account,
            sync: SyncStatus::default(),
        }));
        self.touch();
        Ok(())
    }

    /// Locks: the core zeroizes the account and vault keys, and zsm's copy
    /// on the clipboard is taken back. With reason "session_ended" the
    /// account is dropped as well (its session is gone).
    pub async fn lock(&self, reason: Option<&str>) {
        self.clipboard.clear_now();
        let mut phase = self.phase.lock().await;
        if let Phase::Unlocked(_) = &*phase {
            let Phase::Unlocked(u) = std::mem::replace(&mut *phase, Phase::SignedOut) else {
                unreachable!("matched above, under the same lock");
            };
            let Unlocked {
                kept,
                mut account,
                sync,
            } = *u;
            drop(sync);
            account.lock();
            let account = (reason != Some("session_ended")).then_some(account);
            self.set_snapshot("locked", Some(&kept), reason);
            *phase = Phase::Locked(kept, account);
        }
    }

    /// Signs out: the server session ends (waiting at most a few seconds),
    /// then the account — keys and tokens — and the Secret Key, server and
    /// identity are dropped.
    pub async fn sign_out(&self) {
        self.clipboard.clear_now();
        let mut phase = self.phase.lock().await;
        let account = match std::mem::replace(&mut *phase, Phase::SignedOut) {
            Phase::Unlocked(u) => Some(u.account),
            Phase::Locked(_, a) => a,
            Phase::SignedOut => None,
        };
        self.set_snapshot("signed_out", None, None);
        if let Some(mut a) = account {
            // Best effort and bounded: signing out must not wait for the network.
            let _ = tokio::time::timeout(SIGN_OUT_TIMEOUT, a.sign_out()).await;
        }
    }

    /// The unlocked account, for one command; Locked or SignedOut otherwise.
    /// Counts as activity.
    pub async fn unlocked(&self) -> AppResult<MappedMutexGuard<'_, Unlocked<C::Account>>> {
        self.touch();
        let guard = self.phase.lock().await;
        MutexGuard::try_map(guard, |p| match p {
            Phase::Unlocked(u) => Some(&mut **u),
            _ => None,
        })
        .map_err(|g| match &*g {
            Phase::Locked(..) => AppError::Locked,
            _ => AppError::SignedOut,
        })
    }

    /// Passes a command's result on; a session the server ended locks the
    /// app (unlocking logs in afresh). Call it after the guard is dropped.
    pub async fn settle<R>(&self, r: AppResult<R>) -> AppResult<R> {
        if let Err(AppError::SessionEnded) = &r {
            self.lock(Some("session_ended")).await;
        }
        r
    }

    /// Locks when idle for longer than idle_lock; true if it did.
    pub async fn lock_if_idle(&self) -> bool {
        let unlocked = self.snapshot.lock().expect("snapshot lock").phase == "unlocked";
        if unlocked && self.idle_for() >= self.idle_lock {
            self.lock(Some("idle")).await;
            return true;
        }
        false
    }
}

/// Refreshes the sync status of an unlocked account: every vault and every
/// secret is listed, and so checked by the core.
pub async fn sync<A: Account>(u: &mut Unlocked<A>) -> AppResult<SyncStatus> {
    let r: AppResult<(VaultListing, usize)> = async {
        let l = u.account.vaults().await?;
        let mut secrets = 0;
        for v in &l.vaults {
            secrets += u.account.secrets(&v.id).await?.len();
        }
        Ok((l, secrets))
    }
    .await;
    match r {
        Ok((l, secrets)) => {
            u.sync = SyncStatus {
                last_sync: Some(rfc3339(SystemTime::now())),
                vaults: l.vaults.len(),
                secrets,
                refused: l.refused,
                error: None,
            };
            Ok(u.sync.clone())
        }
        Err(e) => {
            u.sync.error = Some(e.to_string());
            Err(e)
        }
    }
}

/// Checks and normalises the server address: http or https, a host, no
/// credentials, query or fragment; no trailing slash.
pub fn check_server(s: &str) -> AppResult<String> {
    let bad = |why: &str| AppError::Invalid(format!("server address: {why} (for example {LOCAL_SERVER})"));
    let u = tauri::Url::parse(s.trim()).map_err(|_| bad("not a URL"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(bad("use http:// or https://"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("it must not contain a user name or password"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

/// A time as RFC 3339 in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Writes a file through a temporary file and a rename, mode 0600.
fn write_atomically(path: &std::path::Path, data: &[u8]) -> AppResult<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| AppError::Storage(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| AppError::Storage(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(|e| AppError::Storage(e.to_string()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| AppError::Storage(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| AppError::Storage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clipboard::tests::MemoryClipboard;
    use crate::memory::MemoryCore;

    const PW: &str = "correct horse battery";
    const SK: &str = "ZSM1-TESTKEY";

    fn app(idle: Duration) -> (AppState<MemoryCore, MemoryClipboard>, MemoryCore, MemoryClipboard) {
        let core = MemoryCore::new(PW, SK);
        let clip = MemoryClipboard::default();
        let st = AppState::new(
            core.clone(),
            ClipboardGuard::new(clip.clone(), Duration::from_secs(30)),
            idle,
            None,
            None,
        );
        (st, core, clip)
    }

    fn z(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_owned())
    }

    async fn signed_in(idle: Duration) -> (AppState<MemoryCore, MemoryClipboard>, MemoryCore, MemoryClipboard) {
        let (st, core, clip) = app(idle);
        st.sign_in("http://127.0.0.1:8080/", "ada@example.test", z(PW), z(SK))
            .await
            .unwrap();
        (st, core, clip)
    }

    #[test]
    fn wrong_password_or_key_stays_signed_out() {
        crate::block_on(async {
            let (st, _, _) = app(DEFAULT_IDLE_LOCK);
            let e = st
                .sign_in("http://127.0.0.1:8080", "ada", z("wrong"), z(SK))
                .await
                .unwrap_err();
            assert_eq!(e.code(), "auth_failed");
            let e = st
                .sign_in("http://127.0.0.1:8080", "ada", z(PW), z("not a key"))
                .await
                .unwrap_err();
            assert_eq!(e.code(), "bad_secret_key");
            assert_eq!(st.status().phase, "signed_out");
            assert_eq!(st.unlocked().await.err().unwrap().code(), "signed_out");
        });
    }

    #[test]
    fn bad_input_is_refused_before_the_core_is_asked() {
        crate::block_on(async {
            let (st, core, _) = app(DEFAULT_IDLE_LOCK);
            for (server, identity, pw, sk) in [
                ("ftp://example.test", "ada", PW, SK),
                ("http://user:pw@example.test", "ada", PW, SK),
                ("http://example.test/?x=1", "ada", PW, SK),
                ("not a url", "ada", PW, SK),
                ("http://127.0.0.1:8080", "", PW, SK),
                ("http://127.0.0.1:8080", "a\nb", PW, SK),
                ("http://127.0.0.1:8080", "ada", "", SK),
                ("http://127.0.0.1:8080", "ada", PW, "  "),
            ] {
                let e = st.sign_in(server, identity, z(pw), z(sk)).await.unwrap_err();
                assert_eq!(e.code(), "invalid_input", "{server} {identity:?}");
            }
            assert_eq!(core.counts(), (0, 0), "the core was asked");
        });
    }

    fn keys_of(st: &AppState<MemoryCore, MemoryClipboard>) -> std::sync::Weak<()> {
        let u = st.phase.try_lock().unwrap();
        match &*u {
            Phase::Unlocked(u) => Arc::downgrade(u.account.keys.as_ref().unwrap()),
            _ => panic!("not unlocked"),
        }
    }

    #[test]
    fn lock_zeroizes_the_keys_and_unlock_opens_them_again() {
        crate::block_on(async {
            let (st, core, _) = signed_in(DEFAULT_IDLE_LOCK).await;
            let s = st.status();
            assert_eq!(
                (s.phase, s.server.as_deref()),
                ("unlocked", Some("http://127.0.0.1:8080"))
            );
            let keys = keys_of(&st);
            assert!(keys.upgrade().is_some());

            st.lock(None).await;
            assert!(keys.upgrade().is_none(), "the account's keys outlived the lock");
            assert_eq!(st.status().phase, "locked");
            assert_eq!(st.status().identity.as_deref(), Some("ada@example.test"));
            assert_eq!(st.unlocked().await.err().unwrap().code(), "locked");

            assert_eq!(st.unlock(z("wrong")).await.unwrap_err().code(), "auth_failed");
            assert_eq!(st.status().phase, "locked");
            st.unlock(z(PW)).await.unwrap();
            assert_eq!(st.status().phase, "unlocked");
            assert!(keys_of(&st).upgrade().is_some());
            // Unlocking opened the same session's keys: no second login.
            assert_eq!(core.counts(), (1, 0));
        });
    }

    #[test]
    fn sign_out_ends_the_session_and_forgets_everything() {
        crate::block_on(async {
            let (st, core, _) = signed_in(DEFAULT_IDLE_LOCK).await;
            st.sign_out().await;
            assert_eq!(core.counts(), (1, 1), "the server session was not ended");
            let s = st.status();
            assert_eq!((s.phase, s.server, s.identity), ("signed_out", None, None));
            assert_eq!(st.unlock(z(PW)).await.unwrap_err().code(), "signed_out");
            // The form remembers the (non-secret) server and identity.
            assert_eq!(s.default_identity.as_deref(), Some("ada@example.test"));
        });
    }

    #[test]
    fn a_second_sign_in_is_refused() {
        crate::block_on(async {
            let (st, _, _) = signed_in(DEFAULT_IDLE_LOCK).await;
            let e = st
                .sign_in("http://127.0.0.1:8080", "bob", z(PW), z(SK))
                .await
                .unwrap_err();
            assert_eq!(e.code(), "already_signed_in");
            st.lock(None).await;
            let e = st
                .sign_in("http://127.0.0.1:8080", "bob", z(PW), z(SK))
                .await
                .unwrap_err();
            assert_eq!(e.code(), "already_signed_in");
        });
    }

    #[test]
    fn locks_itself_when_idle_and_not_before() {
        crate::block_on(async {
            let (st, _, _) = signed_in(Duration::from_millis(200)).await;
            assert!(!st.lock_if_idle().await);
            assert_eq!(st.status().phase, "unlocked");
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert!(st.lock_if_idle().await);
            let s = st.status();
            assert_eq!((s.phase, s.lock_reason.as_deref()), ("locked", Some("idle")));
        });
    }

    #[test]
    fn activity_restarts_the_idle_timer() {
        crate::block_on(async {
            let (st, _, _) = signed_in(Duration::from_millis(300)).await;
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                st.touch();
                assert!(!st.lock_if_idle().await);
            }
            // Reading the status is not activity.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = st.status();
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(st.lock_if_idle().await);
        });
    }

    #[test]
    fn a_session_the_server_ended_locks() {
        crate::block_on(async {
            let (st, core, _) = signed_in(DEFAULT_IDLE_LOCK).await;
            core.end_session();
            let r = st.unlocked().await.unwrap().account.vaults().await;
            assert_eq!(st.settle(r).await.unwrap_err().code(), "session_ended");
            let s = st.status();
            assert_eq!((s.phase, s.lock_reason.as_deref()), ("locked", Some("session_ended")));
            // The ended session's account is gone: unlocking logs in afresh.
            st.unlock(z(PW)).await.unwrap();
            assert_eq!(core.counts(), (2, 0));
            assert!(st.unlocked().await.unwrap().account.vaults().await.is_ok());
        });
    }

    #[test]
    fn lock_takes_back_the_clipboard() {
        crate::block_on(async {
            let (st, _, clip) = signed_in(DEFAULT_IDLE_LOCK).await;
            st.clipboard.copy(z("the value")).unwrap();
            assert_eq!(clip.0.lock().unwrap().as_deref(), Some("the value"));
            st.lock(None).await;
            assert_eq!(*clip.0.lock().unwrap(), None);
        });
    }

    #[test]
    fn sync_counts_what_it_checked() {
        crate::block_on(async {
            let (st, _, _) = signed_in(DEFAULT_IDLE_LOCK).await;
            {
                let mut u = st.unlocked().await.unwrap();
                let v = u.account.create_vault("prod").await.unwrap();
                u.account.set_secret(&v.id, "A", "1", None).await.unwrap();
                u.account.set_secret(&v.id, "B", "2", None).await.unwrap();
                u.account.create_vault("dev").await.unwrap();
            }
            let s = sync(&mut *st.unlocked().await.unwrap()).await.unwrap();
            assert_eq!((s.vaults, s.secrets, s.error), (2, 2, None));
            assert!(s.last_sync.is_some() && s.refused.is_empty());
        });
    }

    #[test]
    fn sync_reports_a_vault_that_fails_verification() {
        crate::block_on(async {
            let (st, core, _) = signed_in(DEFAULT_IDLE_LOCK).await;
            let prod = {
                let mut u = st.unlocked().await.unwrap();
                let prod = u.account.create_vault("prod").await.unwrap();
                u.account.set_secret(&prod.id, "A", "1", None).await.unwrap();
                let dev = u.account.create_vault("dev").await.unwrap();
                u.account.set_secret(&dev.id, "B", "2", None).await.unwrap();
                prod
            };
            core.tamper(&prod.id);
            // The other vault is still counted; the bad one is named, not
            // dropped, and the sync itself does not fail.
            let s = sync(&mut *st.unlocked().await.unwrap()).await.unwrap();
            assert_eq!((s.vaults, s.secrets, s.error), (1, 1, None));
            assert_eq!(s.refused.len(), 1);
            assert_eq!(s.refused[0].id, prod.id);
            assert!(s.refused[0].reason.contains("does not verify"), "{:?}", s.refused);
            let l = st.unlocked().await.unwrap().account.vaults().await.unwrap();
            assert_eq!(l.vaults.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["dev"]);
            assert_eq!(l.refused, s.refused);
        });
    }

    #[test]
    fn server_addresses() {
        assert_eq!(
            check_server(" https://zsm.example.com/ ").unwrap(),
            "https://zsm.example.com"
        );
        assert_eq!(check_server("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(check_server("http://h/base/").unwrap(), "http://h/base");
        for bad in [
            "",
            "127.0.0.1:8080",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://a@h",
            "http://h#x",
        ] {
            assert_eq!(check_server(bad).unwrap_err().code(), "invalid_input", "{bad}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(t(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(t(1_796_000_000)), "2026-11-30T00:53:20Z");
    }

    #[test]
    fn settings_survive_a_restart_and_hold_no_secret() {
        crate::block_on(async {
            let dir = std::env::temp_dir().join(format!("zsm-desktop-test-{}", std::process::id()));
            let file = dir.join("settings.json");
            let core = MemoryCore::new(PW, SK);
            let st = AppState::new(
                core.clone(),
                ClipboardGuard::new(MemoryClipboard::default(), Duration::from_secs(30)),
                DEFAULT_IDLE_LOCK,
                Some(file.clone()),
                None,
            );
            st.sign_in("http://127.0.0.1:9", "ada@example.test", z(PW), z(SK))
                .await
                .unwrap();
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                !text.contains(PW) && !text.contains(SK),
                "settings.json holds a secret: {text}"
            );
            let again = AppState::new(
                core,
                ClipboardGuard::new(MemoryClipboard::default(), Duration::from_secs(30)),
                DEFAULT_IDLE_LOCK,
                Some(file),
                None,
            );
            let s = again.status();
            assert_eq!(s.default_server, "http://127.0.0.1:9");
            assert_eq!(s.default_identity.as_deref(), Some("ada@example.test"));
            let _ = std::fs::remove_dir_all(dir);
        });
    }
}
