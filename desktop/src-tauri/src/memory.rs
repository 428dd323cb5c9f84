//! An in-memory [`Core`] for the unit tests of the session state machine.
//! It does no cryptography and talks to nothing: the end-to-end test
//! (tests/desktop) drives the real core against the real stack.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::core_api::{Account, Core, Credentials};
use crate::error::{AppError, AppResult};
use crate::session::rfc3339;
use crate::view::{IdentityView, RefusedVaultView, RevisionView, SecretSummary, SessionView, VaultListing, VaultView};

#[derive(Default)]
struct Vault {
    name: String,
    /// name → revisions (values), oldest first.
    secrets: BTreeMap<String, Vec<String>>,
}

#[derive(Default)]
struct Server {
    password: String,
    secret_key: String,
    vaults: BTreeMap<String, Vault>,
    next_id: u64,
    sessions: Vec<String>,
    /// Set by tests: the next call fails with SessionEnded.
    end_session: bool,
    /// Set by tests: vaults whose data "fails verification".
    tampered: BTreeSet<String>,
    sign_ins: u32,
    sign_outs: u32,
}

/// A pretend server holding one account.
#[derive(Clone, Default)]
pub struct MemoryCore(Arc<Mutex<Server>>);

impl MemoryCore {
    pub fn new(password: &str, secret_key: &str) -> Self {
        let s = Server {
            password: password.into(),
            secret_key: secret_key.into(),
            ..Server::default()
        };
        MemoryCore(Arc::new(Mutex::new(s)))
    }

    /// (sign-ins, sign-outs) so far.
    pub fn counts(&self) -> (u32, u32) {
        let s = self.0.lock().unwrap();
        (s.sign_ins, s.sign_outs)
    }

    /// Makes the vault fail verification from now on, as a vault whose
    /// ciphertext a server swapped would.
    pub fn tamper(&self, vault_id: &str) {
        self.0.lock().unwrap().tampered.insert(vault_id.into());
    }

    /// Makes the server end the session at the next call.
    pub fn end_session(&self) {
        self.0.lock().unwrap().end_session = true;
    }
}

/// An account of [`MemoryCore`]; its "keys" are a token dropped on lock.
pub struct MemoryAccount {
    server: MemoryCore,
    session: String,
    /// Stands for the key material: None while locked; tests watch it go.
    pub keys: Option<Arc<()>>,
}

impl Core for MemoryCore {
    type Account = MemoryAccount;

    async fn sign_in(&self, c: &Credentials) -> AppResult<MemoryAccount> {
        let mut s = self.0.lock().unwrap();
        if !c.secret_key.starts_with("ZSM1-") {
            return Err(AppError::BadSecretKey);
        }
        if *c.password != s.password || *c.secret_key != s.secret_key {
            return Err(AppError::AuthFailed);
        }
        s.sign_ins += 1;
        s.next_id += 1;
        let session = format!("session-{}", s.next_id);
        s.sessions.push(session.clone());
        Ok(MemoryAccount {
            server: self.clone(),
            session,
            keys: Some(Arc::new(())),
        })
    }
}

fn now() -> String {
    rfc3339(std::time::SystemTime::now())
}

impl MemoryAccount {
    fn with<R>(&self, f: impl FnOnce(&mut Server) -> AppResult<R>) -> AppResult<R> {
        if self.keys.is_none() {
            return Err(AppError::Locked);
        }
        let mut s = self.server.0.lock().unwrap();
        if std::mem::take(&mut s.end_session) || !s.sessions.contains(&self.session) {
            s.sessions.retain(|x| *x != self.session);
            return Err(AppError::SessionEnded);
        }
        f(&mut s)
    }
}

fn vault<'a>(s: &'a mut Server, id: &str) -> AppResult<&'a mut Vault> {
    if s.tampered.contains(id) {
        return Err(AppError::Integrity(format!("vault {id}: name does not verify")));
    }
    s.vaults
        .get_mut(id)
        .ok_or_else(|| AppError::NotFound(format!("vault {id}")))
}

fn view(id: &str, v: &Vault) -> VaultView {
    VaultView {
        id: id.into(),
        name: v.name.clone(),
        role: "owner".into(),
        created_at: now(),
    }
}

fn summary(name: &str, revs: &[String]) -> SecretSummary {
    SecretSummary {
        name: name.into(),
        revision: revs.len() as u64,
        updated_at: now(),
    }
}

impl Account for MemoryAccount {
    fn lock(&mut self) {
        self.keys = None;
    }

    async fn unlock(&mut self, password: &str, secret_key: &str) -> AppResult<()> {
        let s = self.server.0.lock().unwrap();
        if password != s.password || secret_key != s.secret_key {
            return Err(AppError::AuthFailed);
        }
        self.keys = Some(Arc::new(()));
        Ok(())
    }

    async fn vaults(&mut self) -> AppResult<VaultListing> {
        self.with(|s| {
            let (bad, good): (Vec<_>, Vec<_>) = s.vaults.iter().partition(|(id, _)| s.tampered.contains(*id));
            Ok(VaultListing {
                vaults: good.into_iter().map(|(id, v)| view(id, v)).collect(),
                refused: bad
                    .into_iter()
                    .map(|(id, _)| RefusedVaultView {
                        id: id.clone(),
                        reason: format!("vault {id}: name does not verify"),
                    })
                    .collect(),
                invitations: Vec::new(),
            })
        })
    }

    async fn create_vault(&mut self, name: &str) -> AppResult<VaultView> {
        self.with(|s| {
            if s.vaults.values().any(|v| v.name == name) {
                return Err(AppError::Conflict(format!("a vault named {name:?} exists")));
            }
            s.next_id += 1;
            let id = format!("v{}", s.next_id);
            let v = Vault {
                name: name.into(),
                ..Vault::default()
            };
            let out = view(&id, &v);
            s.vaults.insert(id, v);
            Ok(out)
        })
    }

    async fn rename_vault(&mut self, vault_id: &str, name: &str) -> AppResult<VaultView> {
        self.with(|s| {
            let v = vault(s, vault_id)?;
            v.name = name.into();
            Ok(view(vault_id, v))
        })
    }

    async fn delete_vault(&mut self, vault_id: &str) -> AppResult<()> {
        self.with(|s| {
            s.vaults
                .remove(vault_id)
                .map(|_| ())
                .ok_or_else(|| AppError::NotFound(format!("vault {vault_id}")))
        })
    }

    async fn secrets(&mut self, vault_id: &str) -> AppResult<Vec<SecretSummary>> {
        self.with(|s| {
            let v = vault(s, vault_id)?;
            Ok(v.secrets.iter().map(|(n, r)| summary(n, r)).collect())
        })
    }

    async fn secret_value(&mut self, vault_id: &str, name: &str) -> AppResult<(SecretSummary, Zeroizing<String>)> {
        self.with(|s| {
            let v = vault(s, vault_id)?;
            let revs = v
                .secrets
                .get(name)
                .ok_or_else(|| AppError::NotFound(format!("secret {name:?}")))?;
            Ok((summary(name, revs), Zeroizing::new(revs.last().unwrap().clone())))
        })
    }

    async fn set_secret(
        &mut self,
        vault_id: &str,
        name: &str,
        value: &str,
        expected_revision: Option<u64>,
    ) -> AppResult<SecretSummary> {
        self.with(|s| {
            let v = vault(s, vault_id)?;
            let revs = v.secrets.entry(name.into()).or_default();
            if expected_revision.unwrap_or(0) != revs.len() as u64 {
                return Err(AppError::Conflict(format!("{name:?} changed meanwhile")));
            }
            revs.push(value.into());
            Ok(summary(name, revs))
        })
    }

    async fn delete_secret(&mut self, vault_id: &str, name: &str) -> AppResult<()> {
        self.with(|s| {
            vault(s, vault_id)?
                .secrets
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| AppError::NotFound(format!("secret {name:?}")))
        })
    }

    async fn history(&mut self, vault_id: &str, name: &str) -> AppResult<Vec<RevisionView>> {
        self.with(|s| {
            let revs = vault(s, vault_id)?
                .secrets
                .get(name)
                .ok_or_else(|| AppError::NotFound(format!("secret {name:?}")))?;
            let n = revs.len() as u64;
            Ok((1..=n)
                .rev()
                .map(|r| RevisionView {
                    revision: r,
                    updated_at: now(),
                    current: r == n,
                })
                .collect())
        })
    }

    async fn restore(&mut self, vault_id: &str, name: &str, revision: u64) -> AppResult<SecretSummary> {
        self.with(|s| {
            let revs = vault(s, vault_id)?
                .secrets
                .get_mut(name)
                .ok_or_else(|| AppError::NotFound(format!("secret {name:?}")))?;
            let old = usize::try_from(revision)
                .ok()
                .and_then(|r| r.checked_sub(1))
                .and_then(|i| revs.get(i))
                .cloned()
                .ok_or_else(|| AppError::NotFound(format!("revision {revision}")))?;
            revs.push(old);
            Ok(summary(name, revs))
        })
    }

    // This pretend server holds one account: there is nobody to verify and
    // nothing shared.
    async fn check_identity(&mut self, identity: &str) -> AppResult<IdentityView> {
        self.with(|_| Err(AppError::NotFound(format!("identity {identity:?}"))))
    }

    async fn trust_identity(&mut self, identity: &str, _safety_number: &str) -> AppResult<IdentityView> {
        self.with(|_| Err(AppError::NotFound(format!("identity {identity:?}"))))
    }

    async fn decline_invitation(&mut self, vault_id: &str) -> AppResult<()> {
        self.with(|_| Err(AppError::NotFound(format!("invitation to vault {vault_id}"))))
    }

    async fn sessions(&mut self) -> AppResult<Vec<SessionView>> {
        let me = self.session.clone();
        self.with(|s| {
            Ok(s.sessions
                .iter()
                .map(|id| SessionView {
                    id: id.clone(),
                    device_label: Some("zsm desktop".into()),
                    client_addr: Some("127.0.0.1".into()),
                    created_at: now(),
                    last_used_at: now(),
                    expires_at: now(),
                    current: *id == me,
                })
                .collect())
        })
    }

    async fn revoke_session(&mut self, id: &str) -> AppResult<()> {
        self.with(|s| {
            let before = s.sessions.len();
            s.sessions.retain(|x| x != id);
            if before == s.sessions.len() {
                return Err(AppError::NotFound(format!("session {id}")));
            }
            Ok(())
        })
    }

    async fn sign_out(&mut self) -> AppResult<()> {
        let mut s = self.server.0.lock().unwrap();
        s.sign_outs += 1;
        s.sessions.retain(|x| *x != self.session);
        Ok(())
    }
}
