//! The app's [`Core`] on zsm-core: every key, every check and every request
//! is zsm-core's; this module only translates between its types and the
//! screens' views, and its errors into the codes the web view knows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;
use zsm_core::{Client, Config, DeviceState, FileState, SecretKey};

use crate::core_api::{Account, Core, Credentials};
use crate::error::{AppError, AppResult};
use crate::session::rfc3339;
use crate::view::{
    IdentityView, InvitationView, RefusedVaultView, RevisionView, SecretSummary, SessionView, VaultListing, VaultView,
};

/// zsm-core with this device's state file.
pub struct ZsmCore {
    state_file: PathBuf,
    /// Loaded at the first sign-in, then shared by every login of the
    /// process (one device, one memory of what it has seen).
    state: Mutex<Option<Arc<FileState>>>,
}

impl ZsmCore {
    pub fn new(state_file: PathBuf) -> Self {
        ZsmCore {
            state_file,
            state: Mutex::new(None),
        }
    }

    fn state(&self) -> AppResult<Arc<FileState>> {
        let mut s = self.state.lock().expect("state lock");
        if let Some(st) = &*s {
            return Ok(Arc::clone(st));
        }
        if let Some(dir) = self.state_file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| AppError::Storage(e.to_string()))?;
        }
        // A damaged file is an error, never a silent reset: it holds the
        // revisions that guard against rollback.
        let st = Arc::new(FileState::load(&self.state_file).map_err(|e| AppError::Storage(e.to_string()))?);
        *s = Some(Arc::clone(&st));
        Ok(st)
    }
}

fn parse_key(text: &str) -> AppResult<SecretKey> {
    SecretKey::parse(text.trim()).map_err(|_| AppError::BadSecretKey)
}

impl Core for ZsmCore {
    type Account = ZsmAccount;

    async fn sign_in(&self, c: &Credentials) -> AppResult<ZsmAccount> {
        let sk = parse_key(&c.secret_key)?;
        let state: Arc<dyn DeviceState> = self.state()?;
        let cfg = Config::new(&c.server, state);
        let client = Client::login(&cfg, &c.identity, &c.password, &sk)
            .await
            .map_err(map_err)?;
        Ok(ZsmAccount {
            client,
            vaults: HashMap::new(),
            invitations: HashMap::new(),
        })
    }
}

/// A zsm-core client, and the vaults it listed last (zsm-core's calls take
/// the vault, the screens name it by id).
pub struct ZsmAccount {
    client: Client,
    vaults: HashMap<String, zsm_core::Vault>,
    /// The invitations of the last listing, by vault id.
    invitations: HashMap<String, zsm_core::client::Uuid>,
}

/// zsm-core's errors as the web view sees them. Integrity failures keep
/// their detail (ids, names; never a value or key) so the person can report
/// what was refused.
fn map_err(e: zsm_core::Error) -> AppError {
    use zsm_core::Error as E;
    match e {
        E::NotFound(what) => AppError::NotFound(what),
        E::Exists(_) | E::Conflict(_) => AppError::Conflict(e.to_string()),
        E::Tampered(_) | E::Rollback(_) | E::KdfChange | E::Kdf(_) => AppError::Integrity(e.to_string()),
        E::LoginFailed | E::WrongPassword => AppError::AuthFailed,
        E::SessionExpired => AppError::SessionEnded,
        E::Locked => AppError::Locked,
        E::Invalid(why) => AppError::Invalid(why),
        E::Api { status, .. } | E::Rest { status, .. } if status == 429 || status >= 500 => {
            AppError::Unavailable(e.to_string())
        }
        E::Rest { status: 409, .. } => AppError::Conflict(e.to_string()),
        E::Api { .. } | E::Rest { .. } => AppError::Other(e.to_string()),
        E::Http(_) => AppError::Unavailable(e.to_string()),
        E::State(why) => AppError::Storage(why),
    }
}

fn vault_view(v: &zsm_core::Vault) -> VaultView {
    VaultView {
        id: v.id.to_string(),
        name: v.name.clone(),
        role: v.role.clone(),
        created_at: v.created_at.clone(),
    }
}

/// A secret's listing row; its value is dropped (and zeroized) with `s`.
fn summary(s: &zsm_core::Secret) -> SecretSummary {
    SecretSummary {
        name: s.name.clone(),
        revision: s.revision,
        updated_at: when(&s.updated_at),
    }
}

/// zsm-core leaves the time of a secret it just wrote empty: now, then.
fn when(t: &str) -> String {
    if t.is_empty() {
        rfc3339(std::time::SystemTime::now())
    } else {
        t.to_owned()
    }
}

impl ZsmAccount {
    fn identity_view(&self, c: &zsm_core::IdentityCheck) -> AppResult<IdentityView> {
        Ok(IdentityView {
            identity: c.keys.identity.clone(),
            user_id: c.keys.user_id.to_string(),
            safety_number: c.safety_number.clone(),
            status: c.status.as_str().to_owned(),
            own_safety_number: self.client.own_safety_number().map_err(map_err)?,
        })
    }

    /// The vault with that id, from the last listing or a new one.
    async fn vault(&mut self, id: &str) -> AppResult<zsm_core::Vault> {
        if let Some(v) = self.vaults.get(id) {
            return Ok(v.clone());
        }
        self.list().await?;
        self.vaults
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("vault {id}")))
    }

    /// Lists the memberships; the vaults that verified are remembered for
    /// the calls that name a vault by id.
    async fn list(&mut self) -> AppResult<zsm_core::client::VaultList> {
        let l = self.client.list_vaults().await.map_err(map_err)?;
        self.vaults = l.vaults.iter().map(|v| (v.id.to_string(), v.clone())).collect();
        self.invitations = l
            .invitations
            .iter()
            .map(|i| (i.vault_id.to_string(), i.vault_id))
            .collect();
        Ok(l)
    }
}

impl Account for ZsmAccount {
    fn lock(&mut self) {
        self.client.lock();
    }

    async fn unlock(&mut self, password: &str, secret_key: &str) -> AppResult<()> {
        let sk = parse_key(secret_key)?;
        self.client.unlock(password, &sk).map_err(map_err)
    }

    async fn vaults(&mut self) -> AppResult<VaultListing> {
        // While invitations are listed, another device of the account may
        // have verified their senders since: read the pins again. (With
        // none, the pins read after unlocking stay current for this list.)
        if !self.invitations.is_empty() {
            self.client.reload_pins().await.map_err(map_err)?;
        }
        let l = self.list().await?;
        Ok(VaultListing {
            vaults: l.vaults.iter().map(vault_view).collect(),
            invitations: l
                .invitations
                .iter()
                .map(|i| InvitationView {
                    vault_id: i.vault_id.to_string(),
                    from_identity: i.from_identity.clone(),
                    from_user_id: i.from.to_string(),
                    role: i.role.clone(),
                    at: i.at.clone(),
                })
                .collect(),
            refused: l
                .refused
                .into_iter()
                .map(|r| RefusedVaultView {
                    id: r.id.to_string(),
                    reason: r.error.to_string(),
                })
                .collect(),
        })
    }

    async fn create_vault(&mut self, name: &str) -> AppResult<VaultView> {
        let v = self.client.create_vault(name).await.map_err(map_err)?;
        self.vaults.insert(v.id.to_string(), v.clone());
        Ok(vault_view(&v))
    }

    async fn rename_vault(&mut self, vault_id: &str, name: &str) -> AppResult<VaultView> {
        let v = self.vault(vault_id).await?;
        let v = self.client.rename_vault(&v, name).await.map_err(map_err)?;
        self.vaults.insert(v.id.to_string(), v.clone());
        Ok(vault_view(&v))
    }

    async fn delete_vault(&mut self, vault_id: &str) -> AppResult<()> {
        let v = self.vault(vault_id).await?;
        self.client.delete_vault(&v).await.map_err(map_err)?;
        self.vaults.remove(vault_id);
        Ok(())
    }

    async fn secrets(&mut self, vault_id: &str) -> AppResult<Vec<SecretSummary>> {
        let v = self.vault(vault_id).await?;
        let all = self.client.secrets(&v).await.map_err(map_err)?;
        Ok(all.iter().map(summary).collect())
    }

    async fn secret_value(&mut self, vault_id: &str, name: &str) -> AppResult<(SecretSummary, Zeroizing<String>)> {
        let v = self.vault(vault_id).await?;
        let s = self.client.secret(&v, name).await.map_err(map_err)?;
        Ok((summary(&s), s.value.clone()))
    }

    async fn set_secret(
        &mut self,
        vault_id: &str,
        name: &str,
        value: &str,
        expected_revision: Option<u64>,
    ) -> AppResult<SecretSummary> {
        let v = self.vault(vault_id).await?;
        let current = match self.client.secret(&v, name).await {
            Ok(s) => Some(s),
            Err(zsm_core::Error::NotFound(_)) => None,
            Err(e) => return Err(map_err(e)),
        };
        let written = match (current, expected_revision) {
            (None, None) => self.client.create_secret(&v, name, value).await,
            (Some(cur), Some(rev)) if cur.revision == rev => self.client.update_secret(&v, &cur, value).await,
            (Some(_), None) => {
                return Err(AppError::Conflict(format!(
                    "a secret named {name:?} exists in this vault"
                )));
            }
            (Some(cur), Some(rev)) => {
                return Err(AppError::Conflict(format!(
                    "{name:?} changed meanwhile (revision {} now, {rev} when you opened it)",
                    cur.revision
                )));
            }
            (None, Some(_)) => {
                return Err(AppError::NotFound(format!("secret {name:?}")));
            }
        };
        Ok(summary(&written.map_err(map_err)?))
    }

    async fn delete_secret(&mut self, vault_id: &str, name: &str) -> AppResult<()> {
        let v = self.vault(vault_id).await?;
        self.client.delete_secret(&v, name).await.map_err(map_err)
    }

    async fn history(&mut self, vault_id: &str, name: &str) -> AppResult<Vec<RevisionView>> {
        let v = self.vault(vault_id).await?;
        let mut revs = self.client.history(&v, name).await.map_err(map_err)?;
        revs.sort_by_key(|s| std::cmp::Reverse(s.revision));
        let newest = revs.first().map(|s| s.revision);
        Ok(revs
            .iter()
            .map(|s| RevisionView {
                revision: s.revision,
                updated_at: when(&s.updated_at),
                current: Some(s.revision) == newest,
            })
            .collect())
    }

    async fn restore(&mut self, vault_id: &str, name: &str, revision: u64) -> AppResult<SecretSummary> {
        let v = self.vault(vault_id).await?;
        let s = self.client.restore(&v, name, revision).await.map_err(map_err)?;
        Ok(summary(&s))
    }

    async fn check_identity(&mut self, identity: &str) -> AppResult<IdentityView> {
        let c = self.client.check_identity(identity).await.map_err(map_err)?;
        self.identity_view(&c)
    }

    async fn trust_identity(&mut self, identity: &str, safety_number: &str) -> AppResult<IdentityView> {
        let c = self.client.check_identity(identity).await.map_err(map_err)?;
        // The person compared the number the screen showed: pin exactly
        // those keys or nothing.
        if c.safety_number != safety_number {
            return Err(AppError::Integrity(format!(
                "the keys of {} changed since their safety number was shown; compare the new one",
                c.keys.identity
            )));
        }
        let pin = self
            .client
            .confirm_identity(&c, zsm_core::trust::Status::Verified)
            .await
            .map_err(map_err)?;
        // Pinned as verified: what checking again would say, without asking.
        let c = zsm_core::IdentityCheck {
            status: zsm_core::IdentityStatus::Verified,
            pin: Some(pin),
            ..c
        };
        self.identity_view(&c)
    }

    async fn decline_invitation(&mut self, vault_id: &str) -> AppResult<()> {
        // Only an invitation the last listing showed can be declined.
        let Some(id) = self.invitations.get(vault_id).copied() else {
            return Err(AppError::NotFound(format!("invitation to vault {vault_id}")));
        };
        self.client.decline_invitation(id).await.map_err(map_err)?;
        self.invitations.remove(vault_id);
        Ok(())
    }

    async fn sessions(&mut self) -> AppResult<Vec<SessionView>> {
        let list = self.client.sessions().await.map_err(map_err)?;
        Ok(list
            .into_iter()
            .map(|s| SessionView {
                id: s.id,
                device_label: s.device_label,
                client_addr: s.client_addr,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                current: s.current,
            })
            .collect())
    }

    async fn revoke_session(&mut self, id: &str) -> AppResult<()> {
        self.client.revoke_session(id).await.map_err(map_err)
    }

    async fn sign_out(&mut self) -> AppResult<()> {
        self.client.logout().await.map_err(map_err)
    }
}
