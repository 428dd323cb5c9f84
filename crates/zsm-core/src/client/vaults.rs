//! Vaults: a random key per vault, its name sealed under it, and this
//! account's grant (the key sealed to its own X25519 key, signed with its
//! own Ed25519 key).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::Client;
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

    /// Every vault this account can open, checked: each vault key comes from
    /// a grant signed by this account's own key (others' keys are not
    /// trusted yet), and each name decrypts under its vault key at a
    /// revision no older than this device has seen. Sorted by name.
    pub async fn vaults(&self) -> Result<Vec<Vault>, Error> {
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
            "/access_policies?select=vault_id,user_id,role,sealed_key,granted_by,signature&user_id=eq.{}",
            self.user_id
        );
        let pols: Vec<PolicyRow> = self.rows(Method::GET, &path, None, None).await?;
        let mut by_vault = std::collections::HashMap::new();
        for p in pols {
            if p.user_id != self.user_id {
                return Err(tamper("the server returned another user's access policy"));
            }
            by_vault.insert(p.vault_id, p);
        }
        let mut out = Vec::new();
        for r in rows {
            // A vault without our grant is one we cannot open (an
            // interrupted creation); it is not listed.
            let Some(p) = by_vault.get(&r.id) else {
                continue;
            };
            out.push(self.open_vault(&r, p)?);
        }
        self.save_state()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
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

    /// The vault of that name.
    pub async fn vault_by_name(&self, name: &str) -> Result<Vault, Error> {
        self.vaults()
            .await?
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| Error::NotFound(format!("vault {name:?}")))
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
