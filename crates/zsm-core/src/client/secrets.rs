//! Secrets: each one an envelope under its vault's key of one generation,
//! bound to the vault, the secret's id and its revision; history and
//! restore. A vault with a signed manifest is read against it and written
//! with its next version ([`super::commit`]); a vault of this account's from
//! before manifests is read and written with plain requests.

use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::commit::{Plan, Upsert};
use super::{Client, Vault};
use crate::envelope::{self, Context, Type};
use crate::error::{Error, tamper};

/// Largest value a secret may hold (the envelope must fit the column).
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// New secrets per request in [`Client::create_secrets`].
const BULK_SIZE: usize = 500;

/// One decrypted secret. The value is zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The secret id.
    pub id: Uuid,
    /// Its vault.
    pub vault_id: Uuid,
    /// The decrypted name.
    pub name: String,
    /// The decrypted value.
    pub value: Zeroizing<String>,
    /// Its revision.
    pub revision: u64,
    /// RFC 3339, as the server sent it (empty for one just written).
    pub updated_at: String,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secret {:?} (revision {}, value redacted)", self.name, self.revision)
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    name: String,
    value: String,
}

/// A row of secrets or secret_versions.
#[derive(Deserialize)]
pub(crate) struct SecretRow {
    #[serde(default)]
    pub(crate) id: Uuid,
    #[serde(default)]
    secret_id: Uuid,
    vault_id: Uuid,
    pub(crate) revision: u64,
    /// The key generation the envelope is sealed under (1 where the server
    /// does not say: rows from before generations).
    #[serde(default)]
    pub(crate) key_generation: Option<u64>,
    ciphertext: String,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
}

/// A secret name: 1–256 bytes, no control characters, no surrounding space.
/// `/` is allowed (VAULT/a/b names secret "a/b" in VAULT).
pub fn valid_secret_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 256 || name.trim() != name || name.chars().any(|c| c < ' ' || c == '\u{7f}') {
        return Err(Error::Invalid(format!(
            "secret name {name:?}: use 1–256 characters without control characters or surrounding spaces"
        )));
    }
    Ok(())
}

fn check_value(name: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::Invalid(format!(
            "secret {name:?}: the value is {} bytes; at most {MAX_VALUE_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(())
}

fn secret_context(vault: Uuid, id: Uuid, revision: u64) -> Context {
    Context {
        typ: Type::Secret,
        vault_id: vault,
        object_id: id,
        revision,
    }
}

impl Client {
    /// Checks and decrypts one row of secrets or secret_versions. The vault
    /// bound into the associated data is the vault the caller asked about,
    /// not whatever the row claims, so a row moved to another vault fails;
    /// the envelope's key commitment refuses a row relabelled with another
    /// key generation (only the key it was sealed with opens it).
    pub(crate) fn open_secret(&self, v: &Vault, key: &[u8; 32], id: Uuid, r: &SecretRow) -> Result<Secret, Error> {
        if r.vault_id != v.id {
            return Err(tamper(format!(
                "secret {id} is listed in vault {} but claims vault {}",
                v.id, r.vault_id
            )));
        }
        let plain = envelope::open_string(key, &secret_context(v.id, id, r.revision), &r.ciphertext)
            .map_err(|e| tamper(format!("secret {id} revision {}: {e}", r.revision)))?;
        let p: Payload = serde_json::from_slice(&plain).map_err(|e| tamper(format!("secret {id}: {e}")))?;
        let when = r
            .updated_at
            .clone()
            .or_else(|| r.created_at.clone())
            .unwrap_or_default();
        Ok(Secret {
            id,
            vault_id: v.id,
            name: p.name,
            value: Zeroizing::new(p.value),
            revision: r.revision,
            updated_at: when,
        })
    }

    /// Every secret of a vault, each checked, without the rollback check,
    /// sorted by name: against the vault's manifest, or for a vault from
    /// before manifests each on its own (vault, id and revision bound into
    /// its envelope).
    async fn fetch_secrets(&self, v: &Vault) -> Result<Vec<Secret>, Error> {
        let st = self.state_of(v).await?;
        if !st.legacy {
            return Ok(self.listing(v).await?.secrets);
        }
        let key = st.newest_key();
        let mut out = Vec::new();
        for r in &self.secret_rows(v).await? {
            if r.key_generation.unwrap_or(1) != 1 {
                return Err(tamper(format!(
                    "vault {:?}: a secret of key generation {} in a vault that has only one",
                    v.name,
                    r.key_generation.unwrap_or(1)
                )));
            }
            out.push(self.open_secret(v, key, r.id, r)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Refuses a revision older than one this device has seen, and
    /// remembers the newest.
    fn check_fresh(&self, s: &Secret) -> Result<(), Error> {
        let seen = self.state.seen(s.id);
        if s.revision < seen {
            return Err(Error::Rollback(format!(
                "secret {:?}: revision {} after {seen}",
                s.name, s.revision
            )));
        }
        self.state.see(s.id, s.revision);
        Ok(())
    }

    /// Every secret of a vault after the integrity and rollback checks,
    /// sorted by name.
    pub async fn secrets(&self, v: &Vault) -> Result<Vec<Secret>, Error> {
        let all = self.fetch_secrets(v).await?;
        for s in &all {
            self.check_fresh(s)?;
        }
        self.save_state()?;
        Ok(all)
    }

    /// The named secret of a vault (every secret of the vault is checked).
    pub async fn secret(&self, v: &Vault, name: &str) -> Result<Secret, Error> {
        self.secrets(v)
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::NotFound(format!("secret {name:?} in vault {:?}", v.name)))
    }

    fn seal_secret(
        &self,
        key: &[u8; 32],
        vault: Uuid,
        id: Uuid,
        rev: u64,
        name: &str,
        value: &str,
    ) -> Result<String, Error> {
        let plain = Zeroizing::new(
            serde_json::to_vec(&Payload {
                name: name.to_owned(),
                value: value.to_owned(),
            })
            .expect("JSON"),
        );
        envelope::seal_string(key, &secret_context(vault, id, rev), &plain).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// `cur` (a secret of the listing, or a new one of revision 0) holding
    /// `value` as its next revision, sealed under the newest key generation.
    fn next_revision(
        &self,
        v: &Vault,
        st: &super::commit::VaultState,
        cur: &Secret,
        value: &str,
    ) -> Result<Upsert, Error> {
        let revision = cur.revision + 1;
        let ciphertext = self.seal_secret(st.newest_key(), v.id, cur.id, revision, &cur.name, value)?;
        Ok(Upsert {
            secret: Secret {
                value: Zeroizing::new(value.to_owned()),
                revision,
                updated_at: String::new(),
                ..cur.clone()
            },
            generation: st.generation,
            ciphertext,
        })
    }

    /// Writes one secret with the vault's next manifest and returns it.
    async fn commit_one(
        &self,
        v: &Vault,
        mut pick: impl FnMut(&super::commit::Listing) -> Result<Secret, Error>,
        value: &str,
    ) -> Result<Secret, Error> {
        let mut out = None;
        self.commit(v, |l, st| {
            let cur = pick(l)?;
            let u = self.next_revision(v, st, &cur, value)?;
            out = Some(u.secret.clone());
            Ok(Plan {
                upserts: vec![u],
                ..Plan::default()
            })
        })
        .await?;
        out.ok_or_else(|| Error::Invalid("nothing was written".into()))
    }

    /// Creates the named secret, or writes a new revision of it.
    pub async fn set_secret(&self, v: &Vault, name: &str, value: &str) -> Result<Secret, Error> {
        valid_secret_name(name)?;
        check_value(name, value)?;
        if !self.state_of(v).await?.legacy {
            let fresh = Secret {
                id: Uuid::new_v4(),
                vault_id: v.id,
                name: name.to_owned(),
                value: Zeroizing::new(String::new()),
                revision: 0,
                updated_at: String::new(),
            };
            return self
                .commit_one(
                    v,
                    |l| match l.secrets.iter().find(|s| s.name == name) {
                        Some(s) => {
                            self.check_fresh(s)?;
                            Ok(s.clone())
                        }
                        None => Ok(fresh.clone()),
                    },
                    value,
                )
                .await;
        }
        match self.secret(v, name).await {
            Ok(cur) => self.update_secret(v, &cur, value).await,
            Err(Error::NotFound(_)) => self.create_secret(v, name, value).await,
            Err(e) => Err(e),
        }
    }

    /// Adds a new secret without looking for one of the same name first;
    /// the caller must know the name is new ([`Client::set_secret`] looks).
    pub async fn create_secret(&self, v: &Vault, name: &str, value: &str) -> Result<Secret, Error> {
        Ok(self
            .create_secrets(v, &[(name.to_owned(), value.to_owned())])
            .await?
            .remove(0))
    }

    /// Adds many new secrets, encrypted here and sent in batches (each with
    /// the vault's next manifest, for a vault that has one); as with
    /// [`Client::create_secret`] the names must be new.
    pub async fn create_secrets(&self, v: &Vault, items: &[(String, String)]) -> Result<Vec<Secret>, Error> {
        for (name, value) in items {
            valid_secret_name(name)?;
            check_value(name, value)?;
        }
        let st = self.state_of(v).await?;
        let mut out = Vec::with_capacity(items.len());
        for batch in items.chunks(BULK_SIZE) {
            let new: Vec<Secret> = batch
                .iter()
                .map(|(name, _)| Secret {
                    id: Uuid::new_v4(),
                    vault_id: v.id,
                    name: name.clone(),
                    value: Zeroizing::new(String::new()),
                    revision: 0,
                    updated_at: String::new(),
                })
                .collect();
            if !st.legacy {
                let mut written = Vec::new();
                self.commit(v, |_, st| {
                    let mut p = Plan::default();
                    for (s, (_, value)) in new.iter().zip(batch) {
                        p.upserts.push(self.next_revision(v, st, s, value)?);
                    }
                    written = p.upserts.iter().map(|u| u.secret.clone()).collect();
                    Ok(p)
                })
                .await?;
                out.extend(written);
                continue;
            }
            let mut body = Vec::with_capacity(batch.len());
            let first = out.len();
            for (s, (_, value)) in new.iter().zip(batch) {
                let u = self.next_revision(v, &st, s, value)?;
                body.push(json!({"id": s.id, "vault_id": v.id, "revision": 1, "ciphertext": u.ciphertext}));
                out.push(u.secret);
            }
            self.rest::<serde_json::Value>(Method::POST, "/secrets", Some(&serde_json::Value::Array(body)), None)
                .await?;
            for s in &out[first..] {
                self.state.see(s.id, 1);
            }
        }
        self.save_state()?;
        Ok(out)
    }

    /// Writes `value` as revision `cur.revision + 1`, only if nobody wrote
    /// another revision meanwhile.
    pub async fn update_secret(&self, v: &Vault, cur: &Secret, value: &str) -> Result<Secret, Error> {
        check_value(&cur.name, value)?;
        let st = self.state_of(v).await?;
        if !st.legacy {
            return self
                .commit_one(
                    v,
                    |l| match l.secrets.iter().find(|s| s.id == cur.id) {
                        Some(s) if s.revision == cur.revision => Ok(s.clone()),
                        _ => Err(Error::Conflict(format!("secret {:?}", cur.name))),
                    },
                    value,
                )
                .await;
        }
        let u = self.next_revision(v, &st, cur, value)?;
        let rows: Vec<serde_json::Value> = self
            .rows(
                Method::PATCH,
                &format!("/secrets?id=eq.{}&revision=eq.{}", cur.id, cur.revision),
                Some(&json!({"revision": u.secret.revision, "ciphertext": u.ciphertext})),
                Some("return=representation"),
            )
            .await?;
        if rows.len() != 1 {
            return Err(Error::Conflict(format!("secret {:?}", cur.name)));
        }
        self.state.see(cur.id, u.secret.revision);
        self.save_state()?;
        Ok(u.secret)
    }

    /// Removes the named secret and its history.
    pub async fn delete_secret(&self, v: &Vault, name: &str) -> Result<(), Error> {
        if !self.state_of(v).await?.legacy {
            self.commit(v, |l, _| match l.secrets.iter().find(|s| s.name == name) {
                Some(s) => Ok(Plan {
                    deletes: vec![s.clone()],
                    ..Plan::default()
                }),
                None => Err(Error::NotFound(format!("secret {name:?} in vault {:?}", v.name))),
            })
            .await?;
            return Ok(());
        }
        let s = self.secret(v, name).await?;
        let rows: Vec<serde_json::Value> = self
            .rows(
                Method::DELETE,
                &format!("/secrets?id=eq.{}", s.id),
                None,
                Some("return=representation"),
            )
            .await?;
        if rows.len() != 1 {
            return Err(Error::Conflict(format!("secret {name:?}")));
        }
        Ok(())
    }

    /// Every stored revision of the named secret, newest first. Old
    /// revisions are checked like current ones (vault, id, revision and key
    /// generation bound into each envelope), so the server cannot pass one
    /// off as another.
    pub async fn history(&self, v: &Vault, name: &str) -> Result<Vec<Secret>, Error> {
        let s = self.secret(v, name).await?;
        let st = self.state_of(v).await?;
        let path = format!(
            "/secret_versions?select=secret_id,vault_id,revision,key_generation,ciphertext,created_at&secret_id=eq.{}&order=revision.desc",
            s.id
        );
        let rows: Vec<SecretRow> = self.rows(Method::GET, &path, None, None).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if r.secret_id != s.id {
                return Err(tamper("history of another secret"));
            }
            let g = r.key_generation.unwrap_or(1);
            let key = st.keys.get(&g).ok_or_else(|| {
                tamper(format!(
                    "secret {:?} revision {} is sealed under key generation {g}, which this account does not hold",
                    s.name, r.revision
                ))
            })?;
            let h = self.open_secret(v, key, s.id, r)?;
            if h.name != s.name {
                return Err(tamper(format!(
                    "secret {:?}: revision {} carries another name",
                    s.name, h.revision
                )));
            }
            out.push(h);
        }
        if out.first().map(|h| h.revision) != Some(s.revision) {
            return Err(tamper(format!(
                "secret {:?}: history does not include the current revision",
                s.name
            )));
        }
        Ok(out)
    }

    /// Writes the value of an earlier revision as a new revision.
    pub async fn restore(&self, v: &Vault, name: &str, revision: u64) -> Result<Secret, Error> {
        let hist = self.history(v, name).await?;
        let old = hist
            .iter()
            .find(|h| h.revision == revision)
            .ok_or_else(|| Error::NotFound(format!("secret {name:?} has no revision {revision}")))?;
        self.update_secret(v, &hist[0], &old.value).await
    }
}
