//! What a device remembers between runs, so that a malicious server cannot
//! quietly undo what it has already seen: the KDF parameters pinned per
//! account, and the highest revision seen of every vault and secret
//! (docs/crypto.md §5). [`FileState`] keeps it in the same JSON file format
//! as the Go SDK's `FileState`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kdf::KdfParams;

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
        let again = FileState::load(&path).unwrap();
        assert_eq!(again.seen(id), 5);
        assert_eq!(again.pinned_kdf("http://x|alice"), Some(p));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(FileState::load(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
