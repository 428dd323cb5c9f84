//! Vaults: a random key per vault, its name sealed under it, and this
//! account's grant (the key sealed to its own X25519 key, signed with its
//! own Ed25519 key). The listing judges each grant on its own
//! (docs/crypto.md §4): one vault's grant never spoils the others.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{Client, Invitation};
use crate::envelope::{self, Context, Type};
use crate::error::{Error, tamper};
use crate::grant::{self, Grant};

/// A vault this account may open. Its key stays inside the [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vault {
    /// The vault id.
    pub id: Uuid,
    /// The decrypted name.
    pub name: String,
    /// This account's role.
    pub role: String,
    /// The revision of the name.
    pub revision: u64,
    /// RFC 3339, as the server sent it.
    pub created_at: String,
}

#[derive(Serialize, Deserialize)]
struct VaultMeta {
    name: String,
}

#[derive(Deserialize)]
struct VaultRow {
    id: Uuid,
    meta: String,
    revision: u64,
    #[serde(default)]
    created_at: String,
}

#[derive(Deserialize)]
struct PolicyRow {
    vault_id: Uuid,
    user_id: Uuid,
    role: String,
    sealed_key: String,
    granted_by: Uuid,
    signature: String,
    #[serde(default)]
    created_at: String,
}

/// Everything the server lists as this account's memberships, sorted into
/// what this device could verify and what it could not.
#[derive(Debug, Default)]
pub struct VaultList {
    /// Vaults opened under a grant this account signed itself, by name.
    pub vaults: Vec<Vault>,
    /// Grants somebody else signed. This device cannot verify the granter's
    /// key yet, so it uses none of them; the user may decline them.
    pub invitations: Vec<Invitation>,
    /// Vaults whose grant, key, name or revision failed verification: the
    /// server sent something this account did not write. By id.
    pub refused: Vec<RefusedVault>,
}

/// A vault that failed verification, and why ([`Error::Tampered`] or
/// [`Error::Rollback`]).
#[derive(Debug)]
pub struct RefusedVault {
    /// The vault.
    pub id: Uuid,
    /// Why.
    pub error: Error,
}

/// A vault name: 1–64 bytes, no `/` (it separates vault and secret in
/// VAULT/NAME), no tab, line break or NUL, no surrounding space.
pub fn valid_vault_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 64 || name.trim() != name || name.contains(['/', '\0', '\n', '\r', '\t']) {
        return Err(Error::Invalid(format!(
            "vault name {name:?}: use 1–64 characters without '/', tabs, line breaks or surrounding spaces"
        )));
    }
    Ok(())
}

fn meta_context(id: Uuid, revision: u64) -> Context {
    Context {
        typ: Type::VaultMeta,
        vault_id: id,
        object_id: id,
        revision,
    }
}

impl Client {
    fn seal_meta(&self, key: &[u8; 32], id: Uuid, revision: u64, name: &str) -> Result<String, Error> {
        let plain = Zeroizing::new(serde_json::to_vec(&VaultMeta { name: name.to_owned() }).expect("JSON"));
        envelope::seal_string(key, &meta_context(id, revision), &plain).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// This account's memberships: the vaults it can open, each checked
    /// (its key comes from a grant signed by this account's own key, its name
    /// decrypts under that key at a revision no older than this device has
    /// seen), the invitations others sent, and the vaults that failed those
    /// checks. One vault's grant never fails the listing: it fails as a
    /// whole only when the server cannot be asked (or the client is locked).
    pub async fn list_vaults(&self) -> Result<VaultList, Error> {
        self.with_keys(|_| ())?;
        let rows: Vec<VaultRow> = self
            .rows(
                Method::GET,
                "/vaults?select=id,owner_id,meta,revision,created_at&order=created_at",
                None,
                None,
            )
            .await?;
        let path = format!(
            "/access_policies?select=vault_id,user_id,role,sealed_key,granted_by,signature,created_at&user_id=eq.{}",
            self.user_id
        );
        let pols: Vec<PolicyRow> = self.rows(Method::GET, &path, None, None).await?;
        let mut out = VaultList::default();
        let mut by_vault = std::collections::HashMap::new();
        let mut dup = std::collections::BTreeSet::new();
        for p in pols {
            if p.user_id != self.user_id {
                out.refused.push(RefusedVault {
                    id: p.vault_id,
                    error: tamper(format!(
                        "vault {}: the server returned another user's access policy",
                        p.vault_id
                    )),
                });
                dup.insert(p.vault_id);
            } else if p.granted_by != self.user_id {
                // Signed by somebody else: an invitation, used for nothing
                // (a vault from an unverified key could be the server's own,
                // planted to collect what the user writes into it).
                out.invitations.push(Invitation {
                    vault_id: p.vault_id,
                    from: p.granted_by,
                    from_identity: String::new(),
                    role: p.role,
                    at: p.created_at,
                });
            } else {
                if by_vault.contains_key(&p.vault_id) {
                    dup.insert(p.vault_id);
                }
                by_vault.insert(p.vault_id, p);
            }
        }
        for r in rows {
            // A vault without our own grant is one we cannot open (an
            // invitation, or an interrupted creation); it is not listed.
            let Some(p) = by_vault.get(&r.id).filter(|_| !dup.contains(&r.id)) else {
                continue;
            };
            match self.open_vault(&r, p) {
                Ok(v) => out.vaults.push(v),
                Err(Error::Locked) => return Err(Error::Locked),
                Err(error) => out.refused.push(RefusedVault { id: r.id, error }),
            }
        }
        for id in dup.into_iter().filter(|id| by_vault.contains_key(id)) {
            out.refused.push(RefusedVault {
                id,
                error: tamper(format!("vault {id}: the server listed two memberships of one vault")),
            });
        }
        if !out.invitations.is_empty() {
            self.name_inviters(&mut out.invitations).await?;
        }
        self.save_state()?;
        out.vaults.sort_by(|a, b| a.name.cmp(&b.name));
        out.refused.sort_by_key(|r| r.id.to_string());
        Ok(out)
    }

    /// The vaults this account can open ([`Client::list_vaults`]'s vaults):
    /// invitations and vaults that failed verification are left out, and
    /// never make it fail.
    pub async fn vaults(&self) -> Result<Vec<Vault>, Error> {
        Ok(self.list_vaults().await?.vaults)
    }

    fn open_vault(&self, r: &VaultRow, p: &PolicyRow) -> Result<Vault, Error> {
        let g = Grant {
            vault_id: r.id,
            user_id: self.user_id,
            granted_by: p.granted_by,
            role: p.role.clone(),
            sealed_key: p.sealed_key.clone(),
        };
        if p.granted_by != self.user_id {
            return Err(tamper(format!(
                "vault {}: grant signed by another member, whose key this device cannot check yet",
                r.id
            )));
        }
        // A vault key counts only under a grant this account signed: a
        // server that seals a key of its own choosing cannot sign for it.
        let (own_public, x25519) = self.with_keys(|k| (k.ed25519_public(), *k.x25519_private()))?;
        let x25519 = Zeroizing::new(x25519);
        g.verify(&p.signature, &own_public)
            .map_err(|e| tamper(format!("vault {}: grant signature: {e}", r.id)))?;
        let key = grant::open_vault_key(&x25519, r.id, self.user_id, &p.sealed_key)
            .map_err(|e| tamper(format!("vault {}: vault key: {e}", r.id)))?;
        let seen = self.state.seen(r.id);
        if r.revision < seen {
            return Err(Error::Rollback(format!(
                "vault {}: revision {} after {seen}",
                r.id, r.revision
            )));
        }
        let plain = envelope::open_string(key.as_ref(), &meta_context(r.id, r.revision), &r.meta)
            .map_err(|e| tamper(format!("vault {}: name: {e}", r.id)))?;
        let m: VaultMeta = serde_json::from_slice(&plain).map_err(|e| tamper(format!("vault {}: name: {e}", r.id)))?;
        self.state.see(r.id, r.revision);
        self.remember_vault_key(r.id, key)?;
        Ok(Vault {
            id: r.id,
            name: m.name,
            role: p.role.clone(),
            revision: r.revision,
            created_at: r.created_at.clone(),
        })
    }

    /// The vault of that name. When no vault that verifies has that name
    /// but some vault failed verification (its name unknown, so it may be
    /// the one asked for), the answer is that failure, not
    /// [`Error::NotFound`].
    pub async fn vault_by_name(&self, name: &str) -> Result<Vault, Error> {
        let l = self.list_vaults().await?;
        let n = l.refused.len();
        if let Some(v) = l.vaults.into_iter().find(|v| v.name == name) {
            return Ok(v);
        }
        let Some(first) = l.refused.into_iter().next() else {
            return Err(Error::NotFound(format!("vault {name:?}")));
        };
        let why = format!("vault {name:?} is not among the vaults that verify, and {n} failed verification");
        Err(match first.error {
            Error::Tampered(m) => Error::Tampered(format!("{why}: {m}")),
            Error::Rollback(m) => Error::Rollback(format!("{why}: {m}")),
            other => other,
        })
    }

    /// The key of a vault listed before (listing again if this client has
    /// not opened it yet, or not since an unlock).
    pub(crate) async fn key_of(&self, v: &Vault) -> Result<Zeroizing<[u8; 32]>, Error> {
        if let Some(k) = self.vault_key(v.id)? {
            return Ok(k);
        }
        self.vaults().await?;
        self.vault_key(v.id)?
            .ok_or_else(|| Error::NotFound(format!("vault {:?}", v.name)))
    }

    /// Makes a vault: a fresh vault key, the name sealed under it, and this
    /// account's owner grant.
    pub async fn create_vault(&self, name: &str) -> Result<Vault, Error> {
        valid_vault_name(name)?;
        if self.vault_by_name(name).await.is_ok() {
            return Err(Error::Exists(format!("vault {name:?}")));
        }
        let key = grant::new_vault_key();
        let v = Vault {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            role: "owner".into(),
            revision: 1,
            created_at: String::new(),
        };
        let meta = self.seal_meta(&key, v.id, 1, name)?;
        let (x_public, signing) = self.with_keys(|k| (k.x25519_public(), k.signing_key()))?;
        let g = Grant {
            vault_id: v.id,
            user_id: self.user_id,
            granted_by: self.user_id,
            role: "owner".into(),
            sealed_key: grant::seal_vault_key(&x_public, v.id, self.user_id, &key),
        };
        let sig = g.sign(&signing).map_err(|e| Error::Invalid(e.to_string()))?;
        drop(signing);
        self.rest::<serde_json::Value>(
            Method::POST,
            "/vaults",
            Some(&json!({"id": v.id, "meta": meta, "revision": 1})),
            None,
        )
        .await?;
        let policy = json!({
            "vault_id": v.id, "user_id": self.user_id, "role": g.role, "sealed_key": g.sealed_key,
            "granted_by": g.granted_by, "signature": sig,
        });
        if let Err(e) = self
            .rest::<serde_json::Value>(Method::POST, "/access_policies", Some(&policy), None)
            .await
        {
            let _ = self
                .rest::<serde_json::Value>(Method::DELETE, &format!("/vaults?id=eq.{}", v.id), None, None)
                .await;
            return Err(e);
        }
        self.state.see(v.id, 1);
        self.remember_vault_key(v.id, key)?;
        self.save_state()?;
        Ok(v)
    }

    /// Gives a vault a new name (a new revision of its metadata), only if
    /// nobody renamed it meanwhile.
    pub async fn rename_vault(&self, v: &Vault, name: &str) -> Result<Vault, Error> {
        valid_vault_name(name)?;
        if let Ok(other) = self.vault_by_name(name).await
            && other.id != v.id
        {
            return Err(Error::Exists(format!("vault {name:?}")));
        }
        let key = self.key_of(v).await?;
        let mut nv = v.clone();
        nv.name = name.to_owned();
        nv.revision = v.revision + 1;
        let meta = self.seal_meta(&key, v.id, nv.revision, name)?;
        let rows: Vec<serde_json::Value> = self
            .rows(
                Method::PATCH,
                &format!("/vaults?id=eq.{}&revision=eq.{}", v.id, v.revision),
                Some(&json!({"meta": meta, "revision": nv.revision})),
                Some("return=representation"),
            )
            .await?;
        if rows.len() != 1 {
            return Err(Error::Conflict(format!("vault {:?}", v.name)));
        }
        self.state.see(v.id, nv.revision);
        self.save_state()?;
        Ok(nv)
    }

    /// Deletes a vault with all its secrets (only its owner can).
    pub async fn delete_vault(&self, v: &Vault) -> Result<(), Error> {
        self.with_keys(|_| ())?;
        let rows: Vec<serde_json::Value> = self
            .rows(
                Method::DELETE,
                &format!("/vaults?id=eq.{}", v.id),
                None,
                Some("return=representation"),
            )
            .await?;
        if rows.len() != 1 {
            return Err(Error::NotFound(format!(
                "vault {:?} (only its owner can delete it)",
                v.name
            )));
        }
        Ok(())
    }
}
