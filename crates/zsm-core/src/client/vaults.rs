//! Vaults (docs/crypto.md §4, §8–§11). A vault made since membership logs
//! exist is opened by replaying its log, checking this account's grant
//! against the log's key commitment, walking the chain of older keys and
//! verifying its signed manifest ([`crate::shared::open`]); one this account
//! made before has its version 1 grant (the key sealed to its own X25519 key,
//! signed with its own Ed25519 key) and nothing else. The listing judges
//! each vault on its own: one vault never spoils the others.

use std::collections::{BTreeMap, HashSet};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::commit::{VaultState, manifest_body};
use super::invitations::{LookupRow, check_keys};
use super::{Client, Invitation};
use crate::envelope::{self, Context, Type};
use crate::error::{Error, tamper};
use crate::grant::{self, Grant, GrantV2, RecipientKey};
use crate::manifest;
use crate::memberlog::{self, Op};
use crate::shared::{self, GrantRow, Inputs, Outcome};
use crate::trust::{Identity, PinSet};

/// A vault this account may open. Its keys stay inside the [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vault {
    /// The vault id.
    pub id: Uuid,
    /// The decrypted name.
    pub name: String,
    /// This account's role, as the vault's membership log says.
    pub role: String,
    /// The revision of the name.
    pub revision: u64,
    /// RFC 3339, as the server sent it.
    pub created_at: String,
    /// The newest key generation, which writes use.
    pub generation: u64,
}

#[derive(Serialize, Deserialize)]
struct VaultMeta {
    name: String,
}

/// This account's grant of a vault as api.vault_states returns it.
#[derive(Deserialize)]
struct GrantJson {
    user_id: Uuid,
    role: String,
    sealed_key: String,
    granted_by: Uuid,
    signature: String,
    #[serde(default)]
    created_at: String,
    key_generation: u64,
    grant_version: u32,
    kem_id: Option<u32>,
}

#[derive(Deserialize)]
struct LogRow {
    seq: u64,
    entry: String,
    signature: String,
}

#[derive(Deserialize)]
struct ChainRow {
    generation: u64,
    wrapped: String,
}

#[derive(Deserialize)]
pub(crate) struct ManifestRow {
    pub(crate) version: u64,
    pub(crate) manifest: String,
    pub(crate) signature: String,
    pub(crate) signer_id: Uuid,
}

/// One vault of api.vault_states: the vault row and, from the same
/// snapshot, this account's grant, the log, the older keys and the manifest.
#[derive(Deserialize)]
struct StateRow {
    id: Uuid,
    owner_id: Uuid,
    meta: String,
    revision: u64,
    #[serde(default)]
    created_at: String,
    grant: Option<GrantJson>,
    #[serde(default)]
    log: Vec<LogRow>,
    #[serde(default)]
    chain: Vec<ChainRow>,
    manifest: Option<ManifestRow>,
}

/// Everything the server lists as this account's memberships, sorted into
/// what this device could verify and what it could not.
#[derive(Debug, Default)]
pub struct VaultList {
    /// Vaults whose log, grant, keys and manifest verified (or this
    /// account's own vaults from before membership logs, under the grant it
    /// signed itself), by name.
    pub vaults: Vec<Vault>,
    /// Memberships this device cannot vouch for: added by somebody whose key
    /// this account has not pinned ([`Client::confirm_identity`]), or
    /// granted without the vault's log naming this account. Nothing of them
    /// is used; the user may verify the sender or decline them.
    pub invitations: Vec<Invitation>,
    /// Vaults whose log, grant, key, manifest, name or revision failed
    /// verification: the server sent something this account did not write.
    /// By id.
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

/// What opening one row of the listing gave.
enum Listed {
    Vault(Vault),
    Invitation(Invitation),
}

/// Milliseconds since the Unix epoch, as log entries claim their time.
pub(crate) fn unix_milli() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A refusal of [`shared::open`] as the client's error.
fn shared_err(vault: Uuid, e: shared::SharedError) -> Error {
    if e.is_rollback() {
        Error::Rollback(format!("vault {vault}: {e}"))
    } else {
        tamper(format!("vault {vault}: {e}"))
    }
}

impl Client {
    pub(crate) fn seal_meta(&self, key: &[u8; 32], id: Uuid, revision: u64, name: &str) -> Result<String, Error> {
        let plain = Zeroizing::new(serde_json::to_vec(&VaultMeta { name: name.to_owned() }).expect("JSON"));
        envelope::seal_string(key, &meta_context(id, revision), &plain).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// This account's identity as the membership log names it.
    pub(crate) fn own_identity(&self) -> Result<Identity, Error> {
        let ed = self.with_keys(|k| k.ed25519_public())?;
        Ok(Identity {
            user_id: self.user_id,
            identity: self.identity.clone(),
            ed25519_public: ed,
        })
    }

    /// This account's memberships (docs/crypto.md §4, §8–§10): the vaults
    /// it can open, each checked (the membership log replayed and anchored
    /// in this account, the grant verified and its key matching the log's
    /// commitment, the manifest verified and no older than this device has
    /// seen, the name decrypted at a revision no older than seen; for a
    /// vault of its own from before logs, the grant it signed itself), the
    /// invitations others sent, and the vaults that failed those checks. It
    /// fails as a whole only when the server cannot be asked (or the client
    /// is locked).
    pub async fn list_vaults(&self) -> Result<VaultList, Error> {
        self.with_keys(|_| ())?;
        let rows: Vec<StateRow> = self.rows(Method::GET, "/rpc/vault_states", None, None).await?;
        let mut out = VaultList::default();
        let mut people: Option<Vec<Identity>> = None;
        let mut pins: Option<PinSet> = None;
        let mut seen = HashSet::new();
        for r in rows {
            if !seen.insert(r.id) {
                out.refused.push(RefusedVault {
                    id: r.id,
                    error: tamper(format!("vault {}: listed twice", r.id)),
                });
                continue;
            }
            // Without a grant of ours a vault cannot be opened (an
            // interrupted creation); it is not listed.
            let Some(g) = &r.grant else {
                continue;
            };
            if g.user_id != self.user_id {
                out.refused.push(RefusedVault {
                    id: r.id,
                    error: tamper(format!(
                        "vault {}: the server returned another user's access policy",
                        r.id
                    )),
                });
                continue;
            }
            let res = if r.log.is_empty() && g.granted_by != self.user_id {
                // Somebody else's vault without a log: nothing can be
                // verified (a vault from an unverified key could be the
                // server's own, planted to collect what the user writes).
                Ok(Listed::Invitation(Invitation {
                    vault_id: r.id,
                    from: g.granted_by,
                    from_identity: String::new(),
                    role: g.role.clone(),
                    at: g.created_at.clone(),
                }))
            } else if r.log.is_empty() {
                self.open_legacy(&r, g).map(Listed::Vault)
            } else {
                if people.is_none() {
                    people = Some(self.member_keys().await?);
                }
                if pins.is_none() {
                    pins = Some(self.pins().await?);
                }
                self.open_logged(
                    &r,
                    g,
                    people.as_deref().unwrap_or_default(),
                    pins.as_ref().expect("read above"),
                )
            };
            match res {
                Ok(Listed::Vault(v)) => out.vaults.push(v),
                Ok(Listed::Invitation(i)) => out.invitations.push(i),
                Err(Error::Locked) => return Err(Error::Locked),
                Err(error) => out.refused.push(RefusedVault { id: r.id, error }),
            }
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

    /// The published keys of everyone the logs of this account's vaults
    /// name, each checked; a key that does not check out is left out (the
    /// replay then refuses the entries it would have verified).
    async fn member_keys(&self) -> Result<Vec<Identity>, Error> {
        let rows: Vec<LookupRow> = self.rows(Method::GET, "/rpc/vault_member_keys", None, None).await?;
        Ok(rows
            .iter()
            .filter_map(|r| check_keys(r, &r.identity).ok())
            .map(|pk| Identity {
                user_id: pk.user_id,
                identity: pk.identity,
                ed25519_public: pk.ed25519,
            })
            .collect())
    }

    /// Decrypts a vault's name with whichever of its keys it is sealed
    /// under, after the rollback check of its revision.
    fn open_meta(
        &self,
        r: &StateRow,
        role: &str,
        generation: u64,
        keys: &BTreeMap<u64, Zeroizing<[u8; 32]>>,
    ) -> Result<Vault, Error> {
        let seen = self.state.seen(r.id);
        if r.revision < seen {
            return Err(Error::Rollback(format!(
                "vault {}: revision {} after {seen}",
                r.id, r.revision
            )));
        }
        let ctx = meta_context(r.id, r.revision);
        let plain = keys
            .values()
            .rev()
            .find_map(|k| envelope::open_string(k.as_ref(), &ctx, &r.meta).ok())
            .ok_or_else(|| tamper(format!("vault {}: name", r.id)))?;
        let m: VaultMeta = serde_json::from_slice(&plain).map_err(|e| tamper(format!("vault {}: name: {e}", r.id)))?;
        self.state.see(r.id, r.revision);
        Ok(Vault {
            id: r.id,
            name: m.name,
            role: role.to_owned(),
            revision: r.revision,
            created_at: r.created_at.clone(),
            generation,
        })
    }

    /// Opens a vault this account made before membership logs existed: its
    /// own version 1 grant, no log, no manifest. A vault key counts only
    /// under a grant this account signed: a server that seals a key of its
    /// own choosing cannot sign for it.
    fn open_legacy(&self, r: &StateRow, g: &GrantJson) -> Result<Vault, Error> {
        let me = self.user_id;
        if g.grant_version != 1
            || g.key_generation != 1
            || r.owner_id != me
            || g.role != "owner"
            || r.manifest.is_some()
            || !r.chain.is_empty()
        {
            return Err(tamper(format!(
                "vault {}: a vault without a membership log must be this account's own, with its version 1 grant",
                r.id
            )));
        }
        let v1 = Grant {
            vault_id: r.id,
            user_id: me,
            granted_by: me,
            role: g.role.clone(),
            sealed_key: g.sealed_key.clone(),
        };
        let (own_public, x25519) = self.with_keys(|k| (k.ed25519_public(), Zeroizing::new(*k.x25519_private())))?;
        v1.verify(&g.signature, &own_public)
            .map_err(|e| tamper(format!("vault {}: grant signature: {e}", r.id)))?;
        let key = grant::open_vault_key(&x25519, r.id, me, &g.sealed_key)
            .map_err(|e| tamper(format!("vault {}: vault key: {e}", r.id)))?;
        // The device saw a log for it: the server hides it now.
        if self.state.log_head(r.id).seq > 0 {
            return Err(Error::Rollback(format!(
                "vault {}: the membership log this device saw is gone",
                r.id
            )));
        }
        let keys = BTreeMap::from([(1, key)]);
        let v = self.open_meta(r, "owner", 1, &keys)?;
        self.remember_vault(r.id, VaultState::legacy(keys))?;
        Ok(v)
    }

    /// Opens a vault that has a membership log ([`shared::open`]), or says
    /// it is an invitation.
    fn open_logged(&self, r: &StateRow, g: &GrantJson, people: &[Identity], pins: &PinSet) -> Result<Listed, Error> {
        let mut rows = Vec::with_capacity(r.log.len());
        for l in &r.log {
            let s = memberlog::parse_row(&l.entry, &l.signature)
                .map_err(|e| tamper(format!("vault {}: log entry {}: {e}", r.id, l.seq)))?;
            if s.entry.seq != l.seq {
                return Err(tamper(format!(
                    "vault {}: log row {} holds entry {}",
                    r.id, l.seq, s.entry.seq
                )));
            }
            rows.push(s);
        }
        let man = r.manifest.as_ref().map(|m| parse_manifest(r.id, m)).transpose()?;
        let kem_id = g
            .kem_id
            .map(|k| u16::try_from(k).map_err(|_| tamper(format!("vault {}: KEM {k}", r.id))))
            .transpose()?;
        let grant = GrantRow {
            user_id: g.user_id,
            role: g.role.clone(),
            sealed_key: g.sealed_key.clone(),
            granted_by: g.granted_by,
            signature: g.signature.clone(),
            key_generation: g.key_generation,
            grant_version: g.grant_version,
            kem_id,
        };
        let chain: Vec<(u64, String)> = r.chain.iter().map(|c| (c.generation, c.wrapped.clone())).collect();
        let me = self.own_identity()?;
        let self_fp = me
            .fingerprint()
            .map_err(|e| Error::Invalid(format!("this account's fingerprint: {e}")))?;
        // A vault is anchored in this account's own key (its creator) or in
        // a member this account pinned (docs/crypto.md §7, §8): the one who
        // added this account must be vouched for by a pin, compared by
        // fingerprint, or the vault stays an invitation.
        let pinned = |u: Uuid, fp: &crate::trust::Fingerprint| pins.vouches(u, fp).is_some();
        let inp = Inputs {
            vault_id: r.id,
            revision: r.revision,
            log: &rows,
            keys: people,
            grant: &grant,
            chain: &chain,
            manifest: man.as_ref(),
            remembered_head: self.state.log_head(r.id),
            manifest_seen: self.state.manifest_seen(r.id),
            self_id: self.user_id,
            self_fp,
            pinned: &pinned,
        };
        match self.with_keys(|k| shared::open(&inp, k))? {
            Err(e) => Err(shared_err(r.id, e)),
            Ok(Outcome::Invitation { invitation, role }) => {
                let from_identity = people
                    .iter()
                    .find(|p| p.user_id == invitation.by && p.fingerprint().is_ok_and(|f| f == invitation.fingerprint))
                    .map(|p| p.identity.clone())
                    .unwrap_or_default();
                Ok(Listed::Invitation(Invitation {
                    vault_id: r.id,
                    from: invitation.by,
                    from_identity,
                    role,
                    at: g.created_at.clone(),
                }))
            }
            Ok(Outcome::Open(o)) => {
                let v = self.open_meta(r, &o.role, o.generation, &o.keys)?;
                self.state.set_log_head(r.id, o.log.head());
                self.state.set_manifest_seen(r.id, o.manifest.seen());
                let o = *o;
                self.remember_vault(
                    r.id,
                    VaultState {
                        legacy: false,
                        generation: o.generation,
                        keys: o.keys,
                        log: Some(o.log),
                        rows,
                        ids: people.to_vec(),
                        manifest: Some(o.manifest),
                        cache: None,
                    },
                )?;
                Ok(Listed::Vault(v))
            }
        }
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

    /// What opening a vault listed before established (listing again if
    /// this client has not opened it yet, or not since an unlock).
    pub(crate) async fn state_of(&self, v: &Vault) -> Result<VaultState, Error> {
        if let Some(st) = self.vault_state(v.id)? {
            return Ok(st);
        }
        self.vaults().await?;
        self.vault_state(v.id)?
            .ok_or_else(|| Error::NotFound(format!("vault {:?}", v.name)))
    }

    /// Makes a vault, in one transaction on the server (api.create_vault): a
    /// fresh vault key (generation 1), the name sealed under it, this
    /// account's grant (the key sealed to its own X-Wing key, or X25519 key
    /// for an account without one, signed with its Ed25519 key), the
    /// membership log's create entry committing to the key, and the first
    /// manifest.
    pub async fn create_vault(&self, name: &str) -> Result<Vault, Error> {
        valid_vault_name(name)?;
        if self.vault_by_name(name).await.is_ok() {
            return Err(Error::Exists(format!("vault {name:?}")));
        }
        let me = self.user_id;
        let id = Uuid::new_v4();
        let key = grant::new_vault_key();
        let meta = self.seal_meta(&key, id, 1, name)?;
        let own = self.own_identity()?;
        let own_fp = own
            .fingerprint()
            .map_err(|e| Error::Invalid(format!("this account's fingerprint: {e}")))?;
        let (recipient, signing) = self.with_keys(|k| {
            let r = match k.xwing_public() {
                Some(x) => RecipientKey::XWing(x),
                None => RecipientKey::X25519(k.x25519_public()),
            };
            (r, k.signing_key())
        })?;
        let invalid = |e: &dyn std::fmt::Display| Error::Invalid(e.to_string());
        let mut log = memberlog::State::new(id, std::slice::from_ref(&own)).map_err(|e| invalid(&e))?;
        let e = log.next(
            Op::Create,
            me,
            "owner",
            own_fp,
            grant::key_commitment(&key, id, 1),
            me,
            unix_milli(),
        );
        let entry = memberlog::Signed::sign(e, &signing).map_err(|e| invalid(&e))?;
        log.apply(&entry).map_err(|e| invalid(&e))?;
        let (sealed_key, kem) = grant::seal_vault_key_v2(&recipient, id, me, 1, &key).map_err(|e| invalid(&e))?;
        let g = GrantV2 {
            vault_id: id,
            user_id: me,
            granted_by: me,
            role: "owner".into(),
            generation: 1,
            kem,
            sealed_key,
        };
        let signature = g.sign(&signing).map_err(|e| invalid(&e))?;
        let m = manifest::Manifest::next(None, &log, 1, &[]).ok_or_else(|| invalid(&"manifest"))?;
        let man = manifest::Signed::sign(m, me, &signing).map_err(|e| invalid(&e))?;
        drop(signing);
        let (e, sig) = entry.row();
        self.rest::<serde_json::Value>(
            Method::POST,
            "/rpc/create_vault",
            Some(&json!({
                "vault_id": id, "meta": meta,
                "owner_grant": {"sealed_key": g.sealed_key, "signature": signature, "grant_version": 2, "kem_id": kem},
                "log_entry": {"seq": 1, "entry": e, "signature": sig},
                "manifest": manifest_body(&man),
            })),
            None,
        )
        .await?;
        self.state.see(id, 1);
        self.state.set_log_head(id, log.head());
        self.state.set_manifest_seen(id, man.seen());
        self.remember_vault(
            id,
            VaultState {
                legacy: false,
                generation: 1,
                keys: BTreeMap::from([(1, key)]),
                log: Some(log),
                rows: vec![entry],
                ids: vec![own],
                manifest: Some(man),
                cache: None,
            },
        )?;
        self.save_state()?;
        Ok(Vault {
            id,
            name: name.to_owned(),
            role: "owner".into(),
            revision: 1,
            created_at: String::new(),
            generation: 1,
        })
    }

    /// Gives a vault a new name: a new revision of its metadata, only if
    /// nobody renamed it meanwhile. For a vault with a manifest the name is
    /// sealed under the newest key generation and written with the vault's
    /// next manifest; owners and admins rename.
    pub async fn rename_vault(&self, v: &Vault, name: &str) -> Result<Vault, Error> {
        valid_vault_name(name)?;
        if let Ok(other) = self.vault_by_name(name).await
            && other.id != v.id
        {
            return Err(Error::Exists(format!("vault {name:?}")));
        }
        let st = self.state_of(v).await?;
        let mut nv = v.clone();
        nv.name = name.to_owned();
        if !st.legacy {
            if v.role != "owner" && v.role != "admin" {
                return Err(super::commit::forbidden(v, "rename it"));
            }
            let l = self
                .commit(v, |l, st| {
                    let rev = l.meta_revision + 1;
                    let meta = self.seal_meta(st.newest_key(), v.id, rev, name)?;
                    Ok(super::commit::Plan {
                        meta: Some((meta, rev)),
                        ..Default::default()
                    })
                })
                .await?;
            nv.revision = l.meta_revision;
            self.state.see(v.id, nv.revision);
            self.save_state()?;
            return Ok(nv);
        }
        nv.revision = v.revision + 1;
        let meta = self.seal_meta(st.newest_key(), v.id, nv.revision, name)?;
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

/// Parses a stored manifest row; its version column must be its message's.
pub(crate) fn parse_manifest(vault: Uuid, m: &ManifestRow) -> Result<manifest::Signed, Error> {
    let s = manifest::parse_row(&m.manifest, &m.signature, m.signer_id)
        .map_err(|e| tamper(format!("vault {vault}: manifest: {e}")))?;
    if s.manifest.version != m.version {
        return Err(tamper(format!(
            "vault {vault}: the manifest row and its message disagree on the version"
        )));
    }
    Ok(s)
}
