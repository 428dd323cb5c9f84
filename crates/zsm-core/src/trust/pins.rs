//! Pins (docs/crypto.md §7): this account's decision to trust one other
//! identity's key, the pin set synced between its own devices as envelope
//! type 7 under the account key, checking a key record against the pins,
//! confirming, and merging two devices' sets. The Go SDK's `trust/pins.go`.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{Fingerprint, Identity, TrustError};
use crate::envelope::{self, Context, Type};
use crate::json::{self, Json};

/// How a pin was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The user compared the safety number out of band and confirmed it.
    Verified,
    /// The user explicitly chose to trust the key on first use; shown as
    /// unverified.
    Tofu,
}

impl Status {
    /// The JSON text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Tofu => "tofu",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        match s {
            "verified" => Some(Status::Verified),
            "tofu" => Some(Status::Tofu),
            _ => None,
        }
    }
}

/// One pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The pinned identity (normal form).
    pub identity: String,
    /// Its user id.
    pub user_id: Uuid,
    /// Its Ed25519 key.
    pub ed25519_public: [u8; 32],
    /// How it was pinned.
    pub status: Status,
    /// The highest key record version seen for this key: 1, or 2 once a
    /// record with an X-Wing key was seen.
    pub record_version: u32,
    /// SHA-256 of that record's X-Wing key when `record_version` is 2.
    pub xwing_sha256: Option<[u8; 32]>,
    /// Unix milliseconds.
    pub pinned_at: u64,
}

impl Pin {
    /// The fingerprint of the pinned key.
    pub fn fingerprint(&self) -> Result<Fingerprint, TrustError> {
        Identity {
            user_id: self.user_id,
            identity: self.identity.clone(),
            ed25519_public: self.ed25519_public,
        }
        .fingerprint()
    }

    /// Whether `q` pins the same account key (user id and Ed25519 key),
    /// whatever its status or record version.
    fn same_key(&self, q: &Pin) -> bool {
        self.user_id == q.user_id && self.ed25519_public == q.ed25519_public
    }

    /// The shape a parsed pin must have.
    fn valid(&self) -> Result<(), String> {
        if !crate::keyrecord::normalized(&self.identity) {
            return Err(format!("identity {:?} is not in normal form", self.identity));
        }
        match (self.record_version, &self.xwing_sha256) {
            (1, None) | (2, Some(_)) => {}
            (v, h) => {
                return Err(format!(
                    "record_version {v} with{} an X-Wing hash",
                    if h.is_some() { "" } else { "out" }
                ));
            }
        }
        if self.pinned_at > MAX_PINNED_AT {
            return Err("pinned_at out of range".into());
        }
        Ok(())
    }
}

/// What a key record says about an account, after the caller checked the
/// record's own signature and that its identity is the one asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The account.
    pub identity: Identity,
    /// 1 or 2.
    pub version: u32,
    /// Version 2: the 1216-byte X-Wing key; version 1: `None`.
    pub xwing_public: Option<Vec<u8>>,
}

impl Record {
    fn check(&self) -> Result<(), TrustError> {
        self.identity.check()?;
        match (self.version, &self.xwing_public) {
            (1, None) => Ok(()),
            (2, Some(k)) if k.len() == crate::xwing::PUBLIC_KEY_SIZE => Ok(()),
            (v, k) => Err(TrustError::BadIdentity(format!(
                "key record version {v} with an X-Wing key of {} bytes",
                k.as_ref().map_or(0, Vec::len)
            ))),
        }
    }

    fn xwing_hash(&self) -> Option<[u8; 32]> {
        self.xwing_public.as_ref().map(|k| Sha256::digest(k).into())
    }
}

/// Most pins a set holds.
pub const MAX_PINS: usize = 10_000;
const MAX_PIN_SET_BYTES: usize = 4 << 20;
const MAX_PINNED_AT: u64 = (1 << 53) - 1;

/// An account's pins, one per identity, in identity order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PinSet {
    pins: Vec<Pin>,
}

impl PinSet {
    /// The pins in identity order.
    pub fn pins(&self) -> &[Pin] {
        &self.pins
    }

    /// The number of pins.
    pub fn len(&self) -> usize {
        self.pins.len()
    }

    /// Whether the set has no pin.
    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }

    fn find(&self, identity: &str) -> Result<usize, usize> {
        self.pins
            .binary_search_by(|p| p.identity.as_bytes().cmp(identity.as_bytes()))
    }

    /// The pin of `identity`.
    pub fn lookup(&self, identity: &str) -> Option<&Pin> {
        self.find(identity).ok().map(|i| &self.pins[i])
    }

    fn put(&mut self, p: Pin) {
        match self.find(&p.identity) {
            Ok(i) => self.pins[i] = p,
            Err(i) => self.pins.insert(i, p),
        }
    }

    /// Deletes the pin of `identity`, if any.
    pub fn remove(&mut self, identity: &str) {
        if let Ok(i) = self.find(identity) {
            self.pins.remove(i);
        }
    }

    /// The pin whose key has fingerprint `fp` for user `user_id`. The
    /// membership log names members by fingerprint; this is how a client
    /// asks whether the member who invited it is someone it pinned.
    pub fn vouches(&self, user_id: Uuid, fp: &Fingerprint) -> Option<&Pin> {
        self.pins
            .iter()
            .filter(|p| p.user_id == user_id)
            .find(|p| p.fingerprint().is_ok_and(|f| f.ct_equal(fp)))
    }

    /// Checks a key record against the pins and returns the pin it matches:
    /// [`TrustError::NotPinned`] for an identity without a pin,
    /// [`TrustError::KeyChanged`] for another user id, Ed25519 key or X-Wing
    /// key than the pinned ones, [`TrustError::Downgrade`] for a version 1
    /// record of a key whose version 2 record was seen. A version 2 record
    /// of a key pinned at version 1 is the upgrade of docs/crypto.md §3: the
    /// pin returned is raised to version 2 with the X-Wing hash, and `true`
    /// says so, for the caller to store (the set is not changed here).
    pub fn check(&self, r: &Record) -> Result<(Pin, bool), TrustError> {
        r.check()?;
        let id = &r.identity.identity;
        let p = self.lookup(id).ok_or_else(|| TrustError::NotPinned(id.clone()))?;
        if p.user_id != r.identity.user_id || !bool::from(p.ed25519_public.ct_eq(&r.identity.ed25519_public)) {
            return Err(TrustError::KeyChanged(id.clone()));
        }
        let mut p = p.clone();
        match (r.version, p.record_version) {
            (1, 2) => Err(TrustError::Downgrade(id.clone())),
            (2, 2) => {
                let h = r.xwing_hash().expect("checked: version 2 has an X-Wing key");
                let pinned = p.xwing_sha256.unwrap_or_default();
                if !bool::from(h.ct_eq(&pinned)) {
                    // The X-Wing key never changes without the signing key;
                    // a new one under the same Ed25519 key is unexplained.
                    return Err(TrustError::KeyChanged(format!("{id} (X-Wing key)")));
                }
                Ok((p, false))
            }
            (2, 1) => {
                p.record_version = 2;
                p.xwing_sha256 = r.xwing_hash();
                Ok((p, true))
            }
            _ => Ok((p, false)),
        }
    }

    /// Pins `r`'s key for its identity with `status` at `now_ms`, after the
    /// user asked for it: [`Status::Verified`] after comparing safety numbers
    /// (replaces any pin: the user has decided), [`Status::Tofu`] when
    /// trusting on first use. Tofu never replaces a pin of another key
    /// ([`TrustError::KeyChanged`]: a changed key needs a comparison), nor
    /// demotes a verified pin of the same key. Confirming the same key again
    /// never lowers the record version seen, so a downgrade cannot be
    /// confirmed away.
    pub fn confirm(&mut self, r: &Record, status: Status, now_ms: u64) -> Result<Pin, TrustError> {
        r.check()?;
        let mut p = Pin {
            identity: r.identity.identity.clone(),
            user_id: r.identity.user_id,
            ed25519_public: r.identity.ed25519_public,
            status,
            record_version: r.version,
            xwing_sha256: r.xwing_hash(),
            pinned_at: now_ms.min(MAX_PINNED_AT),
        };
        if let Some(old) = self.lookup(&p.identity) {
            if status == Status::Tofu && !old.same_key(&p) {
                return Err(TrustError::KeyChanged(p.identity));
            }
            if status == Status::Tofu && old.status == Status::Verified {
                p.status = Status::Verified;
                p.pinned_at = old.pinned_at;
            }
            if old.same_key(&p) && old.record_version > p.record_version {
                p.record_version = old.record_version;
                p.xwing_sha256 = old.xwing_sha256;
            }
        }
        self.put(p.clone());
        Ok(p)
    }

    /// The canonical JSON: `{"version":1,"pins":[…]}`, pins in identity
    /// order, members in the order of docs/crypto.md §7, strings encoded as
    /// Go's encoding/json does.
    pub fn marshal(&self) -> String {
        let mut s = String::from(r#"{"version":1,"pins":["#);
        for (i, p) in self.pins.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(r#"{"identity":"#);
            json::push_go_string(&mut s, &p.identity);
            s.push_str(&format!(
                r#","user_id":"{}","ed25519_public":"{}","status":"{}","record_version":{}"#,
                p.user_id,
                crate::b64::encode(&p.ed25519_public),
                p.status.as_str(),
                p.record_version
            ));
            if let Some(h) = &p.xwing_sha256 {
                s.push_str(&format!(r#","xwing_public_sha256":"{}""#, crate::b64::encode(h)));
            }
            s.push_str(&format!(r#","pinned_at":{}}}"#, p.pinned_at));
        }
        s.push_str("]}");
        s
    }

    /// Seals the set under the account key as the pin row of `user_id` at
    /// `revision` (envelope type 7); returns its base64. A server cannot
    /// make such a row: it does not have the account key.
    pub fn seal(&self, account_key: &[u8; 32], user_id: Uuid, revision: u64) -> String {
        envelope::seal_string(account_key, &pin_context(user_id, revision), self.marshal().as_bytes())
            .expect("32-byte key")
    }
}

/// Parses a pin set strictly (docs/crypto.md §7): one object with exactly
/// `version` (the number 1) and `pins`; each pin exactly the members of its
/// record version, each once, names matched exactly; identities in normal
/// form and in strictly ascending byte order (so none twice); the user id
/// canonical lower-case uuid text; base64 canonical and 32 bytes;
/// `pinned_at` an integer in [0, 2^53) without fraction or exponent; at most
/// [`MAX_PINS`] pins; nothing after the object.
pub fn parse_pin_set(data: &[u8]) -> Result<PinSet, TrustError> {
    let bad = TrustError::MalformedPins;
    if data.len() > MAX_PIN_SET_BYTES {
        return Err(bad(format!("{} bytes", data.len())));
    }
    let doc = json::parse(data).map_err(bad)?;
    let m = json::members(&doc, &["version", "pins"], &["version", "pins"]).map_err(bad)?;
    if m["version"].integer().map_err(bad)? != 1 {
        return Err(bad("version must be 1".into()));
    }
    let Json::Array(items) = m["pins"] else {
        return Err(bad("pins is not an array".into()));
    };
    if items.len() > MAX_PINS {
        return Err(bad("too many pins".into()));
    }
    let mut s = PinSet::default();
    for item in items {
        let p = parse_pin(item).map_err(bad)?;
        if let Some(last) = s.pins.last()
            && last.identity.as_bytes() >= p.identity.as_bytes()
        {
            return Err(bad(format!("pin {:?} out of order or repeated", p.identity)));
        }
        s.pins.push(p);
    }
    Ok(s)
}

fn parse_pin(v: &Json) -> Result<Pin, String> {
    let m = json::members(
        v,
        &[
            "identity",
            "user_id",
            "ed25519_public",
            "status",
            "record_version",
            "xwing_public_sha256",
            "pinned_at",
        ],
        &[
            "identity",
            "user_id",
            "ed25519_public",
            "status",
            "record_version",
            "pinned_at",
        ],
    )?;
    let user_id = m["user_id"].str()?;
    let u = Uuid::parse_str(user_id).map_err(|e| e.to_string())?;
    if u.to_string() != user_id {
        return Err(format!("user_id {user_id:?} is not a canonical uuid"));
    }
    let decode32 = |name: &str, v: &Json| -> Result<[u8; 32], String> {
        crate::b64::decode(v.str()?)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{name}: not canonical base64 of 32 bytes"))
    };
    let status = m["status"].str()?;
    let version = m["record_version"].integer()?;
    let p = Pin {
        identity: m["identity"].str()?.to_owned(),
        user_id: u,
        ed25519_public: decode32("ed25519_public", m["ed25519_public"])?,
        status: Status::parse(status).ok_or_else(|| format!("status {status:?}"))?,
        record_version: u32::try_from(version).map_err(|_| format!("record_version {version}"))?,
        xwing_sha256: match m.get("xwing_public_sha256") {
            Some(h) => Some(decode32("xwing_public_sha256", h)?),
            None => None,
        },
        pinned_at: m["pinned_at"].integer()?,
    };
    p.valid()?;
    Ok(p)
}

/// One identity two pin sets pin with different keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The identity.
    pub identity: String,
    /// This device's pin (kept).
    pub local: Pin,
    /// The other device's.
    pub remote: Pin,
}

/// Merges `remote` (another device's pins) into `local` (docs/crypto.md
/// §7). For one identity with the same user id and Ed25519 key: verified
/// wins over tofu, the higher record version wins with its X-Wing hash,
/// `pinned_at` is that of the winning status (the earlier if both have it).
/// Different keys for one identity, or different X-Wing keys at version 2,
/// are conflicts: never merged, the local pin stays, and the conflict is
/// reported for the user to decide.
pub fn merge(local: &PinSet, remote: &PinSet) -> (PinSet, Vec<Conflict>) {
    let mut out = local.clone();
    let mut conflicts = Vec::new();
    for r in &remote.pins {
        let Some(l) = out.lookup(&r.identity).cloned() else {
            out.put(r.clone());
            continue;
        };
        if !l.same_key(r) || (l.record_version == 2 && r.record_version == 2 && l.xwing_sha256 != r.xwing_sha256) {
            conflicts.push(Conflict {
                identity: r.identity.clone(),
                local: l,
                remote: r.clone(),
            });
            continue;
        }
        let mut m = l.clone();
        if l.status == r.status {
            m.pinned_at = l.pinned_at.min(r.pinned_at);
        } else if r.status == Status::Verified {
            m.status = Status::Verified;
            m.pinned_at = r.pinned_at;
        }
        if r.record_version > l.record_version {
            m.record_version = r.record_version;
            m.xwing_sha256 = r.xwing_sha256;
        }
        out.put(m);
    }
    (out, conflicts)
}

/// The envelope context of the pin row of `user_id` at `revision`: type 7,
/// the nil vault, object id the user id.
fn pin_context(user_id: Uuid, revision: u64) -> Context {
    Context {
        typ: Type::PinSet,
        vault_id: Uuid::nil(),
        object_id: user_id,
        revision,
    }
}

/// Opens and parses the pin row of `user_id` at `revision`. An envelope of
/// another account, revision or type is [`TrustError::Envelope`]; a
/// plaintext that does not parse is [`TrustError::MalformedPins`].
pub fn open_pin_set(account_key: &[u8; 32], user_id: Uuid, revision: u64, sealed: &str) -> Result<PinSet, TrustError> {
    let pt =
        envelope::open_string(account_key, &pin_context(user_id, revision), sealed).map_err(TrustError::Envelope)?;
    parse_pin_set(&pt)
}

/// Refuses a pin row older than the newest this device has seen: an old
/// pin set could bring back a pin the user replaced.
pub fn check_revision(remembered: u64, got: u64) -> Result<(), TrustError> {
    if got < remembered {
        return Err(TrustError::Rollback { got, seen: remembered });
    }
    Ok(())
}
