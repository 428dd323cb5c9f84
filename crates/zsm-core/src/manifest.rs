//! The signed vault manifest (docs/crypto.md §10), as the Go SDK's
//! `sdk/manifest`: a versioned, hash-chained commitment to a shared vault's
//! whole set of secrets (each secret's id, revision and key generation), to
//! the vault row's revision and to the membership log, signed by the member
//! who wrote last.
//!
//! A client checks every listing against the newest manifest it can verify
//! and against the highest manifest it has seen ([`accept`]), so a server
//! that hides a secret, brings back a deleted one, serves an older listing
//! or a fork is refused.

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::memberlog::{self, LogError};

/// Size of the hashes a manifest holds and has.
pub const HASH_SIZE: usize = 32;

const LABEL: &[u8] = b"zsm v1 vault-manifest";

/// Size of a manifest message.
pub const SIZE: usize = LABEL.len() + 1 + 16 + 8 + HASH_SIZE + 8 + 8 + HASH_SIZE + 8 + 8 + HASH_SIZE;

/// Why a manifest or a listing was refused. Every variant is of the class
/// tampered ([`ManifestError::is_tampered`]) but [`ManifestError::Rollback`].
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ManifestError {
    /// A manifest or row that does not parse.
    #[error("vault manifest: malformed: {0}")]
    Malformed(String),
    /// A manifest of another vault.
    #[error("vault manifest of another vault ({0})")]
    WrongVault(Uuid),
    /// The manifest names an entry that is not in the log, or has another
    /// hash.
    #[error("vault manifest names another membership log (entry {0})")]
    LogMismatch(u64),
    /// The manifest predates a membership change.
    #[error("vault manifest written at entry {seq}, before the membership change at {cut}")]
    Stale {
        /// The manifest's log seq.
        seq: u64,
        /// The newest cut of the log.
        cut: u64,
    },
    /// A key generation other than the one in force at its log entry.
    #[error("vault manifest: key generation {got}, the log has {want}")]
    Generation {
        /// The manifest's.
        got: u64,
        /// The log's.
        want: u64,
    },
    /// The signer was not a member at the manifest's log entry.
    #[error("vault manifest signed by {0}, not a member then")]
    NotMember(Uuid),
    /// The signer was a viewer then.
    #[error("vault manifest signed by a {0}, who may not write")]
    NoAuthority(String),
    /// A signature that does not verify.
    #[error("vault manifest: bad signature")]
    BadSignature,
    /// The signer's key could not be taken from the log.
    #[error("vault manifest: {0}")]
    Log(LogError),
    /// The manifest forks from the one this device saw.
    #[error("vault manifest: forks from the one this device saw: {0}")]
    Fork(String),
    /// The manifest is older than the one this device saw.
    #[error("vault manifest: version {got}, this device has seen {seen}")]
    Rollback {
        /// The version served.
        got: u64,
        /// The highest version seen.
        seen: u64,
    },
    /// The listing differs from the manifest (a hidden, resurrected, older
    /// or relabelled secret).
    #[error("the secrets listed differ from the vault manifest: {0}")]
    Listing(String),
    /// The vault row's revision differs from the manifest.
    #[error("the vault row's revision {got} differs from the manifest's {want}")]
    MetaRevision {
        /// The row's.
        got: u64,
        /// The manifest's.
        want: u64,
    },
}

impl ManifestError {
    /// The manifest or listing is not what the members signed, or forks
    /// from what this device saw.
    pub fn is_tampered(&self) -> bool {
        !self.is_rollback()
    }

    /// The manifest is older than the one this device saw.
    pub fn is_rollback(&self) -> bool {
        matches!(self, ManifestError::Rollback { .. })
    }
}

/// One version of a vault's manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The vault.
    pub vault_id: Uuid,
    /// 1, 2, …: each write makes the next.
    pub version: u64,
    /// Hash of version-1; zero at version 1.
    pub prev: [u8; HASH_SIZE],
    /// The generation in force at `log_seq`.
    pub key_generation: u64,
    /// The membership log entry this manifest was written at.
    pub log_seq: u64,
    /// That entry's hash.
    pub log_hash: [u8; HASH_SIZE],
    /// The vault row's revision.
    pub meta_revision: u64,
    /// The number of secrets.
    pub secret_count: u64,
    /// [`digest`] of the secrets.
    pub items_digest: [u8; HASH_SIZE],
}

/// One secret as a listing shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    /// The secret.
    pub id: Uuid,
    /// Its revision.
    pub revision: u64,
    /// The key generation its envelope is sealed under.
    pub generation: u64,
}

/// SHA-256 over the items sorted by id bytes, each
/// `id || u64be(revision) || u64be(generation)`; `None` if an id appears
/// twice (a listing never has two rows of one secret).
pub fn digest(items: &[Item]) -> Option<[u8; HASH_SIZE]> {
    let mut sorted = items.to_vec();
    sorted.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    if sorted.windows(2).any(|w| w[0].id == w[1].id) {
        return None;
    }
    let mut h = Sha256::new();
    for it in &sorted {
        h.update(it.id.as_bytes());
        h.update(it.revision.to_be_bytes());
        h.update(it.generation.to_be_bytes());
    }
    Some(h.finalize().into())
}

impl Manifest {
    fn check(&self) -> Result<(), ManifestError> {
        let bad = |m: &str| Err(ManifestError::Malformed(m.into()));
        if self.version == 0 {
            return bad("version 0");
        }
        if (self.version == 1) != (self.prev == [0; HASH_SIZE]) {
            return bad("a previous hash exactly when the version is above 1");
        }
        if self.key_generation == 0 {
            return bad("key generation 0");
        }
        if self.log_seq == 0 {
            return bad("log seq 0");
        }
        Ok(())
    }

    /// The manifest message (docs/crypto.md §10).
    pub fn marshal(&self) -> Result<Vec<u8>, ManifestError> {
        self.check()?;
        let mut b = Vec::with_capacity(SIZE);
        b.extend_from_slice(LABEL);
        b.push(0);
        b.extend_from_slice(self.vault_id.as_bytes());
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.prev);
        b.extend_from_slice(&self.key_generation.to_be_bytes());
        b.extend_from_slice(&self.log_seq.to_be_bytes());
        b.extend_from_slice(&self.log_hash);
        b.extend_from_slice(&self.meta_revision.to_be_bytes());
        b.extend_from_slice(&self.secret_count.to_be_bytes());
        b.extend_from_slice(&self.items_digest);
        Ok(b)
    }

    /// The manifest a writer signs after changing the vault: the next
    /// version chained to `prev` (`None` for the first), written at the head
    /// of `log`, with the vault row's revision and the secrets as they will
    /// be. `None` if an id appears twice.
    pub fn next(prev: Option<&Signed>, log: &memberlog::State, meta_revision: u64, items: &[Item]) -> Option<Manifest> {
        let head = log.head();
        let (version, prev_hash) = match prev {
            Some(p) => (p.manifest.version + 1, p.hash()),
            None => (1, [0; HASH_SIZE]),
        };
        Some(Manifest {
            vault_id: log.vault_id(),
            version,
            prev: prev_hash,
            key_generation: log.generation(),
            log_seq: head.seq,
            log_hash: head.hash,
            meta_revision,
            secret_count: items.len() as u64,
            items_digest: digest(items)?,
        })
    }
}

/// Parses a manifest message strictly: the label, exactly [`SIZE`] bytes,
/// version ≥ 1 with a zero previous hash exactly at version 1, key
/// generation and log seq ≥ 1.
pub fn parse(b: &[u8]) -> Result<Manifest, ManifestError> {
    if b.len() != SIZE || &b[..LABEL.len()] != LABEL || b[LABEL.len()] != 0 {
        return Err(ManifestError::Malformed(format!("not a manifest of {SIZE} bytes")));
    }
    let mut at = LABEL.len() + 1;
    let mut take = |n: usize| {
        at += n;
        &b[at - n..at]
    };
    let vault_id = Uuid::from_slice(take(16)).expect("16 bytes");
    let version = be64(take(8));
    let prev = take(HASH_SIZE).try_into().expect("32 bytes");
    let key_generation = be64(take(8));
    let log_seq = be64(take(8));
    let log_hash = take(HASH_SIZE).try_into().expect("32 bytes");
    let meta_revision = be64(take(8));
    let secret_count = be64(take(8));
    let items_digest = take(HASH_SIZE).try_into().expect("32 bytes");
    let m = Manifest {
        vault_id,
        version,
        prev,
        key_generation,
        log_seq,
        log_hash,
        meta_revision,
        secret_count,
        items_digest,
    };
    m.check()?;
    Ok(m)
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().expect("8 bytes"))
}

/// A manifest with its message, signature and signer, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// Its message.
    pub message: Vec<u8>,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
    /// The row's signer column: whose key to verify with.
    pub signer: Uuid,
}

impl Signed {
    /// Signs `m` as `signer` with `key`.
    pub fn sign(m: Manifest, signer: Uuid, key: &SigningKey) -> Result<Signed, ManifestError> {
        let message = m.marshal()?;
        let signature = key.sign(&message).to_bytes();
        Ok(Signed {
            manifest: m,
            message,
            signature,
            signer,
        })
    }

    /// `SHA-256(message || signature)`, what the next version names as its
    /// previous hash and what a device remembers.
    pub fn hash(&self) -> [u8; HASH_SIZE] {
        let mut h = Sha256::new();
        h.update(&self.message);
        h.update(self.signature);
        h.finalize().into()
    }

    /// What a device remembers of this manifest.
    pub fn seen(&self) -> Seen {
        Seen {
            version: self.manifest.version,
            hash: self.hash(),
        }
    }

    /// The stored text form: base64(message), base64(signature).
    pub fn row(&self) -> (String, String) {
        (crate::b64::encode(&self.message), crate::b64::encode(&self.signature))
    }
}

/// Parses a stored row: both columns canonical standard base64, the message
/// a manifest ([`parse`]), the signature 64 bytes. The signature is checked
/// by [`verify`].
pub fn parse_row(manifest: &str, signature: &str, signer: Uuid) -> Result<Signed, ManifestError> {
    let message =
        crate::b64::decode(manifest).ok_or_else(|| ManifestError::Malformed("not canonical base64".into()))?;
    let signature: [u8; 64] = crate::b64::decode(signature)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ManifestError::Malformed("signature is not canonical base64 of 64 bytes".into()))?;
    let manifest = parse(&message)?;
    Ok(Signed {
        manifest,
        message,
        signature,
        signer,
    })
}

/// Checks `s` against this client's replayed membership log: another vault,
/// a log seq not in the log or with another hash, a signer who was not a
/// member at that entry (or whose key record was not given), a bad
/// signature, a signer who was a viewer then, a log seq before the newest
/// remove, leave, role change or rotation (whoever lost rights there cannot
/// vouch for the contents afterwards), a key generation other than the one
/// in force at that entry.
pub fn verify(s: &Signed, log: &memberlog::State) -> Result<(), ManifestError> {
    let m = &s.manifest;
    if m.marshal()? != s.message {
        return Err(ManifestError::Malformed("message and fields differ".into()));
    }
    if m.vault_id != log.vault_id() {
        return Err(ManifestError::WrongVault(m.vault_id));
    }
    if log.hash_at(m.log_seq) != Some(m.log_hash) {
        return Err(ManifestError::LogMismatch(m.log_seq));
    }
    let (key, role) = log.key_at(s.signer, m.log_seq).map_err(|e| match e {
        LogError::NotMember(_) => ManifestError::NotMember(s.signer),
        e => ManifestError::Log(e),
    })?;
    if crate::keyrecord::verify_raw(&key, &s.message, &s.signature).is_err() {
        return Err(ManifestError::BadSignature);
    }
    if !matches!(role.as_str(), "owner" | "admin" | "editor") {
        return Err(ManifestError::NoAuthority(role));
    }
    if m.log_seq < log.last_cut() {
        return Err(ManifestError::Stale {
            seq: m.log_seq,
            cut: log.last_cut(),
        });
    }
    let want = log.generation_at(m.log_seq).unwrap_or(0);
    if m.key_generation != want {
        return Err(ManifestError::Generation {
            got: m.key_generation,
            want,
        });
    }
    Ok(())
}

/// The highest manifest a device verified for a vault; the default means
/// none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Its version (0: none).
    pub version: u64,
    /// Its hash.
    pub hash: [u8; HASH_SIZE],
}

/// Checks `s` against the highest manifest this device saw: a lower version
/// is [`ManifestError::Rollback`]; the same version with another hash, or
/// the next version not chained to the remembered hash, is
/// [`ManifestError::Fork`]. A version further ahead cannot be chained (this
/// device never saw the ones between) and passes.
pub fn check_rollback(s: &Signed, seen: &Seen) -> Result<(), ManifestError> {
    let m = &s.manifest;
    if seen.version == 0 {
        return Ok(());
    }
    if m.version < seen.version {
        return Err(ManifestError::Rollback {
            got: m.version,
            seen: seen.version,
        });
    }
    if m.version == seen.version && s.hash() != seen.hash {
        return Err(ManifestError::Fork(format!("another version {}", m.version)));
    }
    if m.version == seen.version + 1 && m.prev != seen.hash {
        return Err(ManifestError::Fork(format!(
            "version {} does not follow the version {} seen",
            m.version, seen.version
        )));
    }
    Ok(())
}

/// Checks a listing against `m`: exactly `secret_count` secrets whose (id,
/// revision, generation) digest is `items_digest` ([`ManifestError::Listing`])
/// and the vault row's revision ([`ManifestError::MetaRevision`]).
pub fn check_listing(m: &Manifest, items: &[Item], meta_revision: u64) -> Result<(), ManifestError> {
    if items.len() as u64 != m.secret_count {
        return Err(ManifestError::Listing(format!(
            "{} secrets listed, {} in the manifest",
            items.len(),
            m.secret_count
        )));
    }
    let d = digest(items).ok_or_else(|| ManifestError::Listing("a secret listed twice".into()))?;
    if d != m.items_digest {
        return Err(ManifestError::Listing("digest differs".into()));
    }
    if meta_revision != m.meta_revision {
        return Err(ManifestError::MetaRevision {
            got: meta_revision,
            want: m.meta_revision,
        });
    }
    Ok(())
}

/// Every check a client makes before believing a listing: [`verify`]
/// against the replayed log, [`check_rollback`] against what this device
/// saw, [`check_listing`] against the listing. Returns what the device
/// remembers from now on.
pub fn accept(
    s: &Signed,
    log: &memberlog::State,
    seen: &Seen,
    items: &[Item],
    meta_revision: u64,
) -> Result<Seen, ManifestError> {
    verify(s, log)?;
    check_rollback(s, seen)?;
    check_listing(&s.manifest, items, meta_revision)?;
    Ok(if s.manifest.version > seen.version {
        s.seen()
    } else {
        *seen
    })
}
