//! Reading a vault's secrets against its signed manifest, and writing them
//! with the next manifest in one transaction (docs/crypto.md §10,
//! api.commit_secrets), as the Go SDK's `commit.go`.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::secrets::SecretRow;
use super::vaults::{ManifestRow, parse_manifest};
use super::{Client, Secret, Vault};
use crate::error::{Error, tamper};
use crate::manifest::{self, Item, ManifestError};
use crate::memberlog;
use crate::trust::Identity;

/// How often a write that lost a race to another writer is tried again.
const MAX_ATTEMPTS: usize = 8;

/// What opening a vault established: the key of every generation this
/// account can reach and, for a vault with a membership log, the replayed
/// log, the key records it was replayed with and the newest manifest
/// verified. Zeroized with the account keys when the client locks.
#[derive(Clone)]
pub(crate) struct VaultState {
    /// A vault this account made before membership logs existed: its
    /// version 1 grant, no log, no manifest; written with plain requests.
    pub legacy: bool,
    /// The newest key generation: writes use it.
    pub generation: u64,
    pub keys: BTreeMap<u64, Zeroizing<[u8; 32]>>,
    pub log: Option<memberlog::State>,
    pub rows: Vec<memberlog::Signed>,
    pub ids: Vec<Identity>,
    pub manifest: Option<manifest::Signed>,
    /// The listing this client last verified or wrote, and the manifest it
    /// is exactly: a write whose fresh manifest is that one starts from it
    /// instead of reading every secret again (the manifest commits to every
    /// secret's id, revision and generation, so nothing else can have
    /// changed).
    pub cache: Option<Box<Listing>>,
}

impl VaultState {
    pub fn legacy(keys: BTreeMap<u64, Zeroizing<[u8; 32]>>) -> VaultState {
        VaultState {
            legacy: true,
            generation: 1,
            keys,
            log: None,
            rows: Vec::new(),
            ids: Vec::new(),
            manifest: None,
            cache: None,
        }
    }

    /// The key of the newest generation.
    pub fn newest_key(&self) -> &[u8; 32] {
        self.keys
            .get(&self.generation)
            .map(|k| &**k)
            .expect("a vault is opened with the key of its newest generation")
    }
}

/// A vault's secrets as verified against its manifest.
#[derive(Clone)]
pub(crate) struct Listing {
    /// Decrypted, by name.
    pub secrets: Vec<Secret>,
    pub items: BTreeMap<Uuid, Item>,
    pub manifest: manifest::Signed,
    pub meta_revision: u64,
}

/// One secret a write creates (revision 1) or changes.
pub(crate) struct Upsert {
    pub secret: Secret,
    pub generation: u64,
    pub ciphertext: String,
}

/// What one write changes: secrets written, secrets deleted, and the
/// vault's name (its sealed metadata and new revision).
#[derive(Default)]
pub(crate) struct Plan {
    pub upserts: Vec<Upsert>,
    pub deletes: Vec<Secret>,
    pub meta: Option<(String, u64)>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty() && self.meta.is_none()
    }
}

/// The manifest as the write functions take it.
pub(crate) fn manifest_body(m: &manifest::Signed) -> serde_json::Value {
    let (msg, sig) = m.row();
    json!({"version": m.manifest.version, "manifest": msg, "signature": sig})
}

/// A refusal by this client of what the account's role does not allow
/// (the server's row-level security refuses it too).
pub(crate) fn forbidden(v: &Vault, what: &str) -> Error {
    Error::Invalid(format!(
        "vault {:?}: you are {} {} and cannot {what}",
        v.name,
        if matches!(v.role.chars().next(), Some('o' | 'a' | 'e')) {
            "an"
        } else {
            "a"
        },
        v.role
    ))
}

/// A write that lost a race: the manifest, a secret or the log moved on
/// meanwhile.
fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Rest { status: 409, code, .. } if code == "write_conflict" || code == "23505")
}

fn manifest_err(v: &Vault, e: ManifestError) -> Error {
    if e.is_rollback() {
        Error::Rollback(format!("vault {:?}: manifest: {e}", v.name))
    } else {
        tamper(format!("vault {:?}: manifest: {e}", v.name))
    }
}

impl Client {
    /// Opens `v` again (a fresh snapshot of its log, grant, keys and
    /// manifest).
    async fn reopen(&self, v: &Vault) -> Result<VaultState, Error> {
        let l = self.list_vaults().await?;
        if let Some(r) = l.refused.into_iter().find(|r| r.id == v.id) {
            return Err(r.error);
        }
        if !l.vaults.iter().any(|o| o.id == v.id) {
            return Err(Error::NotFound(format!("vault {:?} (no longer a member?)", v.name)));
        }
        self.state_of(v).await
    }

    /// Fetches `v`'s manifest and checks it (docs/crypto.md §10) against the
    /// replayed log, reopening `v` once when it names log entries newer than
    /// the replayed ones, and against the newest manifest this device saw.
    async fn current_manifest(&self, v: &Vault) -> Result<(manifest::Signed, VaultState), Error> {
        let path = format!(
            "/vault_manifests?select=version,manifest,signature,signer_id&vault_id=eq.{}",
            v.id
        );
        let rows: Vec<ManifestRow> = self.rows(Method::GET, &path, None, None).await?;
        let [r] = rows.as_slice() else {
            return Err(tamper(format!("vault {:?}: {} manifests", v.name, rows.len())));
        };
        let m = parse_manifest(v.id, r)?;
        let mut st = self.state_of(v).await?;
        for attempt in 0.. {
            if st.manifest.as_ref().is_some_and(|k| k.seen() == m.seen()) {
                return Ok((m, st));
            }
            let log = st
                .log
                .as_ref()
                .ok_or_else(|| tamper(format!("vault {:?}: a manifest for a vault without a log", v.name)))?;
            match crate::shared::verify_manifest(&m, log, &st.rows, &st.ids, &self.state.manifest_seen(v.id)) {
                Err(crate::shared::SharedError::Manifest(ManifestError::LogMismatch(_))) if attempt == 0 => {
                    // Written after entries this client has not replayed.
                    st = self.reopen(v).await?;
                }
                Err(crate::shared::SharedError::Manifest(e)) => return Err(manifest_err(v, e)),
                Err(e) => return Err(tamper(format!("vault {:?}: manifest: {e}", v.name))),
                Ok(()) => break,
            }
        }
        manifest::check_rollback(&m, &self.state.manifest_seen(v.id)).map_err(|e| manifest_err(v, e))?;
        self.state.set_manifest_seen(v.id, m.seen());
        let newer = st
            .manifest
            .as_ref()
            .is_none_or(|k| m.manifest.version >= k.manifest.version);
        if newer {
            st.manifest = Some(m.clone());
            let m = m.clone();
            self.update_vault(v.id, |s| s.manifest = Some(m))?;
        }
        Ok((m, st))
    }

    /// Every row of a vault's secrets, in pages, in id order.
    pub(crate) async fn secret_rows(&self, v: &Vault) -> Result<Vec<SecretRow>, Error> {
        const PAGE_SIZE: usize = 1000;
        let mut out: Vec<SecretRow> = Vec::new();
        loop {
            let mut path = format!(
                "/secrets?select=id,vault_id,revision,key_generation,ciphertext,updated_at&vault_id=eq.{}&order=id&limit={PAGE_SIZE}",
                v.id
            );
            let after = out.last().map(|r| r.id);
            if let Some(a) = after {
                path.push_str(&format!("&id=gt.{a}"));
            }
            let rows: Vec<SecretRow> = self.rows(Method::GET, &path, None, None).await?;
            let n = rows.len();
            for r in rows {
                if let Some(a) = out.last().map(|r| r.id)
                    && r.id.to_string() <= a.to_string()
                {
                    return Err(tamper("the server repeated or reordered secrets"));
                }
                out.push(r);
            }
            if n < PAGE_SIZE {
                return Ok(out);
            }
        }
    }

    /// `v`'s secrets, read between two reads of its manifest (writes change
    /// both in one transaction, so a listing between two reads of the same
    /// version is that version's). Every secret must open under the key of
    /// the generation it names, and the (id, revision, generation) of all
    /// of them must be exactly what the manifest commits to: a hidden,
    /// resurrected, older or relabelled secret is [`Error::Tampered`].
    pub(crate) async fn listing(&self, v: &Vault) -> Result<Listing, Error> {
        let mut reopened = false;
        'attempt: for _ in 0..MAX_ATTEMPTS {
            let (man, st) = self.current_manifest(v).await?;
            let rows = self.secret_rows(v).await?;
            let (again, _) = self.current_manifest(v).await?;
            if again.manifest.version != man.manifest.version {
                continue; // written meanwhile: read again
            }
            let mut l = Listing {
                secrets: Vec::with_capacity(rows.len()),
                items: BTreeMap::new(),
                meta_revision: man.manifest.meta_revision,
                manifest: man,
            };
            for r in &rows {
                let g = r.key_generation.unwrap_or(1);
                let Some(key) = st.keys.get(&g) else {
                    // Sealed under a generation made after this client
                    // opened the vault: open it again, once.
                    if reopened {
                        return Err(tamper(format!(
                            "vault {:?}: a secret is sealed under a key generation the log does not give this account",
                            v.name
                        )));
                    }
                    self.reopen(v).await?;
                    reopened = true;
                    continue 'attempt;
                };
                let s = self.open_secret(v, key, r.id, r)?;
                // An older revision than this device saw is a rollback,
                // whatever the manifest says, unless this client wrote a
                // newer manifest meanwhile.
                let seen = self.state.seen(s.id);
                if s.revision < seen {
                    if self.state.manifest_seen(v.id).version > l.manifest.manifest.version {
                        continue 'attempt;
                    }
                    return Err(Error::Rollback(format!(
                        "secret {:?}: revision {} after {seen}",
                        s.name, s.revision
                    )));
                }
                l.items.insert(
                    r.id,
                    Item {
                        id: r.id,
                        revision: r.revision,
                        generation: g,
                    },
                );
                l.secrets.push(s);
            }
            let items: Vec<Item> = l.items.values().copied().collect();
            manifest::check_listing(&l.manifest.manifest, &items, l.manifest.manifest.meta_revision).map_err(|e| {
                tamper(format!(
                    "vault {:?}: the secrets listed are not the ones its manifest names: {e}",
                    v.name
                ))
            })?;
            for s in &l.secrets {
                self.state.see(s.id, s.revision);
            }
            l.secrets.sort_by(|a, b| a.name.cmp(&b.name));
            let c = l.clone();
            self.update_vault(v.id, |s| s.cache = Some(Box::new(c)))?;
            return Ok(l);
        }
        Err(Error::Conflict(format!(
            "vault {:?} keeps changing while it is read",
            v.name
        )))
    }

    /// [`Client::listing`], or the listing this client verified or wrote
    /// last when the vault's current manifest is still exactly the one it
    /// belongs to. Writes use it; reads always fetch.
    async fn cached_listing(&self, v: &Vault) -> Result<Listing, Error> {
        if let Some(l) = self.state_of(v).await?.cache {
            let (m, _) = self.current_manifest(v).await?;
            if m.seen() == l.manifest.seen() {
                return Ok(*l);
            }
        }
        self.listing(v).await
    }

    /// Reads `v`'s verified listing, makes a plan from it and applies it
    /// with the next manifest; when somebody else wrote meanwhile it reads
    /// again and makes the plan anew (a few times at most). Only owners,
    /// admins and editors write. Returns the listing after the write.
    pub(crate) async fn commit(
        &self,
        v: &Vault,
        mut plan: impl FnMut(&Listing, &VaultState) -> Result<Plan, Error>,
    ) -> Result<Listing, Error> {
        if !matches!(v.role.as_str(), "owner" | "admin" | "editor") {
            return Err(forbidden(v, "write to it"));
        }
        for attempt in 0..MAX_ATTEMPTS {
            let l = self.cached_listing(v).await?;
            let st = self.state_of(v).await?;
            let p = plan(&l, &st)?;
            if p.is_empty() {
                return Ok(l);
            }
            match self.apply(v, l, &st, p).await {
                Err(e) if is_conflict(&e) => {
                    let mut r = [0u8; 1];
                    crate::random_bytes(&mut r);
                    let ms = 1 + u64::from(r[0]) % (20 * (attempt as u64 + 1));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                other => return other,
            }
        }
        Err(Error::Conflict(format!("vault {:?}", v.name)))
    }

    /// Sends `p`, made from `l`, with the next manifest, in one transaction
    /// (api.commit_secrets), and returns the listing after it.
    async fn apply(&self, v: &Vault, mut l: Listing, st: &VaultState, p: Plan) -> Result<Listing, Error> {
        let mut ups = Vec::with_capacity(p.upserts.len());
        for u in &p.upserts {
            let it = Item {
                id: u.secret.id,
                revision: u.secret.revision,
                generation: u.generation,
            };
            l.items.insert(it.id, it);
            ups.push(json!({"id": it.id, "revision": it.revision, "key_generation": it.generation, "ciphertext": u.ciphertext}));
        }
        let mut dels = Vec::with_capacity(p.deletes.len());
        for d in &p.deletes {
            l.items.remove(&d.id);
            dels.push(json!({"id": d.id, "revision": d.revision}));
        }
        if let Some((_, rev)) = &p.meta {
            l.meta_revision = *rev;
        }
        let log = st
            .log
            .as_ref()
            .ok_or_else(|| Error::Invalid("a vault without a membership log has no manifest".into()))?;
        let items: Vec<Item> = l.items.values().copied().collect();
        let m = manifest::Manifest::next(Some(&l.manifest), log, l.meta_revision, &items)
            .ok_or_else(|| Error::Invalid("a secret appears twice".into()))?;
        let signing = self.with_keys(|k| k.signing_key())?;
        let signed = manifest::Signed::sign(m, self.user_id, &signing).map_err(|e| Error::Invalid(e.to_string()))?;
        drop(signing);
        let mut body = json!({"vault_id": v.id, "manifest": manifest_body(&signed), "upserts": ups, "deletes": dels});
        if let Some((meta, rev)) = &p.meta {
            body["meta"] = json!({"meta": meta, "revision": rev});
        }
        self.rest::<serde_json::Value>(Method::POST, "/rpc/commit_secrets", Some(&body), None)
            .await?;
        self.state.set_manifest_seen(v.id, signed.seen());
        let m = signed.clone();
        self.update_vault(v.id, |s| s.manifest = Some(m))?;
        l.manifest = signed;
        let deleted: Vec<Uuid> = p.deletes.iter().map(|d| d.id).collect();
        l.secrets.retain(|s| !deleted.contains(&s.id));
        for u in p.upserts {
            self.state.see(u.secret.id, u.secret.revision);
            l.secrets.retain(|s| s.id != u.secret.id);
            l.secrets.push(u.secret);
        }
        l.secrets.sort_by(|a, b| a.name.cmp(&b.name));
        let c = l.clone();
        self.update_vault(v.id, |s| s.cache = Some(Box::new(c)))?;
        if let Some((_, rev)) = p.meta {
            self.state.see(v.id, rev);
        }
        self.save_state()?;
        Ok(l)
    }
}
