//! What a device remembers between runs, so that a malicious server cannot
//! quietly undo what it has already seen: the KDF parameters pinned per
//! account, the highest revision seen of every vault and secret, and for
//! vaults with a membership log the log head and the manifest last accepted
//! (docs/crypto.md §5). [`FileState`] keeps it in the same JSON file format
//! as the Go SDK's `FileState`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kdf::KdfParams;
use crate::manifest;
use crate::memberlog::Head;

/// A device's memory. Implementations must be safe to share between tasks.
pub trait DeviceState: Send + Sync {
    /// The KDF parameters pinned for `account` (`server|identity`).
    fn pinned_kdf(&self, account: &str) -> Option<KdfParams>;
    /// Pins KDF parameters for `account`.
    fn pin_kdf(&self, account: &str, p: &KdfParams);
    /// The highest revision seen of a vault or secret (0 if none).
    fn seen(&self, id: Uuid) -> u64;
    /// Remembers `revision` if it is higher than the one seen.
    fn see(&self, id: Uuid, revision: u64);
    /// The membership log head last accepted for a vault (the default if
    /// none).
    fn log_head(&self, vault: Uuid) -> Head;
    /// Remembers `head` unless a longer one is remembered (the caller
    /// checked that it extends the one remembered).
    fn set_log_head(&self, vault: Uuid, head: Head);
    /// The highest manifest verified for a vault (the default if none).
    fn manifest_seen(&self, vault: Uuid) -> manifest::Seen;
    /// Remembers `m` unless a higher version is remembered.
    fn set_manifest_seen(&self, vault: Uuid, m: manifest::Seen);
    /// The highest revision of `user`'s pin set seen (0 if none).
    fn pins_seen(&self, user: Uuid) -> u64;
    /// Remembers `revision` for `user`'s pin set if it is higher than the
    /// one seen.
    fn set_pins_seen(&self, user: Uuid, revision: u64);
    /// Makes the state durable.
    fn save(&self) -> std::io::Result<()>;
}

#[derive(Serialize, Deserialize, Default)]
struct Data {
    version: u32,
    #[serde(default)]
    kdf: BTreeMap<String, KdfParams>,
    #[serde(default)]
    seen: BTreeMap<Uuid, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    log_heads: BTreeMap<Uuid, SeenHash>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    manifests: BTreeMap<Uuid, SeenHash>,
    /// The highest pin set revision per account (the Go SDK's `pins`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pins: BTreeMap<Uuid, u64>,
}

/// A (sequence number or version, hash) pair as the file keeps it: the hash
/// in standard base64, as Go writes a byte slice.
#[derive(Serialize, Deserialize, Clone, Copy, Default)]
struct SeenHash {
    n: u64,
    #[serde(with = "hash_b64")]
    hash: [u8; 32],
}

mod hash_b64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::b64::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let t = String::deserialize(d)?;
        crate::b64::decode(&t)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| D::Error::custom("a hash is not 32 bytes of base64"))
    }
}

/// A [`DeviceState`] in a JSON file (or only in memory). Changes are held in
/// memory until [`DeviceState::save`], which replaces the file atomically.
pub struct FileState {
    path: Option<PathBuf>,
    data: Mutex<Data>,
}

impl FileState {
    /// Reads the state at `path`; a missing file is an empty state. A damaged
    /// file or an unknown version is an error, never a silent reset: a reset
    /// would forget the revisions that guard against rollback.
    pub fn load(path: impl AsRef<Path>) -> std::io::Result<FileState> {
        let path = path.as_ref().to_path_buf();
        let data = match std::fs::read(&path) {
            Ok(b) => {
                let d: Data = serde_json::from_slice(&b).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("state file {} is damaged: {e}", path.display()),
                    )
                })?;
                if d.version != 1 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("state file {} has unknown version {}", path.display(), d.version),
                    ));
                }
                d
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data {
                version: 1,
                ..Data::default()
            },
            Err(e) => return Err(e),
        };
        Ok(FileState {
            path: Some(path),
            data: Mutex::new(data),
        })
    }

    /// A state kept only in memory.
    pub fn memory() -> FileState {
        FileState {
            path: None,
            data: Mutex::new(Data {
                version: 1,
                ..Data::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DeviceState for FileState {
    fn pinned_kdf(&self, account: &str) -> Option<KdfParams> {
        self.lock().kdf.get(account).cloned()
    }

    fn pin_kdf(&self, account: &str, p: &KdfParams) {
        self.lock().kdf.insert(account.to_owned(), p.clone());
    }

    fn seen(&self, id: Uuid) -> u64 {
        self.lock().seen.get(&id).copied().unwrap_or(0)
    }

    fn see(&self, id: Uuid, revision: u64) {
        let mut d = self.lock();
        let e = d.seen.entry(id).or_insert(0);
        if revision > *e {
            *e = revision;
        }
    }

    fn log_head(&self, vault: Uuid) -> Head {
        self.lock()
            .log_heads
            .get(&vault)
            .map_or_else(Head::default, |h| Head { seq: h.n, hash: h.hash })
    }

    fn set_log_head(&self, vault: Uuid, head: Head) {
        let mut d = self.lock();
        if head.seq >= d.log_heads.get(&vault).map_or(0, |h| h.n) {
            d.log_heads.insert(
                vault,
                SeenHash {
                    n: head.seq,
                    hash: head.hash,
                },
            );
        }
    }

    fn manifest_seen(&self, vault: Uuid) -> manifest::Seen {
        self.lock()
            .manifests
            .get(&vault)
            .map_or_else(manifest::Seen::default, |h| manifest::Seen {
                version: h.n,
                hash: h.hash,
            })
    }

    fn set_manifest_seen(&self, vault: Uuid, m: manifest::Seen) {
        let mut d = self.lock();
        if m.version >= d.manifests.get(&vault).map_or(0, |h| h.n) {
            d.manifests.insert(
                vault,
                SeenHash {
                    n: m.version,
                    hash: m.hash,
                },
            );
        }
    }

    fn pins_seen(&self, user: Uuid) -> u64 {
        self.lock().pins.get(&user).copied().unwrap_or(0)
    }

    fn set_pins_seen(&self, user: Uuid, revision: u64) {
        let mut d = self.lock();
        let e = d.pins.entry(user).or_insert(0);
        if revision > *e {
            *e = revision;
        }
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&*self.lock()).map_err(std::io::Error::other)?;
        write_atomic(path, &bytes)
    }
}

/// Writes `data` to a temporary file beside `path` (mode 0600), syncs it and
/// renames it over `path`, so a crash leaves the old or the new state, never
/// half of one.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = dir.to_path_buf();
    let mut rnd = [0u8; 8];
    crate::random_bytes(&mut rnd);
    tmp.push(format!(
        ".{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        crate::srp::hex(&rnd)
    ));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reload_and_never_goes_back() {
        let dir = std::env::temp_dir().join(format!("zsm-state-{}", Uuid::new_v4()));
        let path = dir.join("state.json");
        let s = FileState::load(&path).unwrap();
        let id = Uuid::new_v4();
        s.see(id, 5);
        s.see(id, 3);
        let p = KdfParams::default_with_random_salt();
        s.pin_kdf("http://x|alice", &p);
        s.save().unwrap();
        let head = Head { seq: 3, hash: [7; 32] };
        s.set_log_head(id, head);
        s.set_log_head(id, Head { seq: 2, hash: [8; 32] });
        let m = manifest::Seen {
            version: 4,
            hash: [9; 32],
        };
        s.set_manifest_seen(id, m);
        s.save().unwrap();
        let again = FileState::load(&path).unwrap();
        assert_eq!(again.seen(id), 5);
        assert_eq!((again.log_head(id), again.manifest_seen(id)), (head, m));
        assert_eq!(again.pinned_kdf("http://x|alice"), Some(p));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(FileState::load(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
