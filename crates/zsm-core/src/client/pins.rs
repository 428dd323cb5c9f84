//! Verifying other people's keys and the pins that remember it
//! (docs/crypto.md §7), as the Go SDK's `pins.go`. The pin set is one row of
//! api.pins sealed under the account key: only this account's own devices
//! can read or write it, so a server can neither plant a pin nor read whom
//! this account trusts. A device refuses a pin row older than the newest it
//! has seen, and a missing row after it has seen one.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{Client, PublicKeys};
use crate::error::{Error, tamper};
use crate::trust::{self, Fingerprint, Identity, Pin, PinSet, Record, Status, TrustError};

/// How many times a pin update is tried again when another device of the
/// account wrote the pin set meanwhile.
const PIN_ATTEMPTS: usize = 5;

/// What this account's pins say of an identity's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityStatus {
    /// No pin: compare safety numbers, then confirm.
    Unverified,
    /// Pinned after comparing safety numbers.
    Verified,
    /// Pinned on first use, never compared.
    Tofu,
    /// Other keys than the pinned ones.
    Changed,
    /// An older key record than the one this account has seen.
    Downgrade,
}

impl IdentityStatus {
    /// The word the CLI prints (`zsm verify`).
    pub fn as_str(&self) -> &'static str {
        match self {
            IdentityStatus::Unverified => "unverified",
            IdentityStatus::Verified => "verified",
            IdentityStatus::Tofu => "tofu",
            IdentityStatus::Changed => "changed",
            IdentityStatus::Downgrade => "downgrade",
        }
    }
}

/// An identity's keys as the server shows them now, checked here, with
/// their fingerprint computed here and what the pins say of them.
#[derive(Clone, Debug)]
pub struct IdentityCheck {
    /// The published keys (their key record verified).
    pub keys: PublicKeys,
    /// The fingerprint of those keys.
    pub fingerprint: Fingerprint,
    /// The 12 groups of 5 digits people compare out of band.
    pub safety_number: String,
    /// The QR string of the fingerprint.
    pub qr: String,
    /// What the pins say.
    pub status: IdentityStatus,
    /// The current pin of the identity, if any.
    pub pin: Option<Pin>,
}

#[derive(Deserialize)]
struct PinRow {
    revision: u64,
    ciphertext: String,
}

/// The key record `pk` came with, as the pins compare it. Keys without a
/// record (an account that has not logged in since records exist) cannot be
/// pinned: nothing signed says they are the account's own.
fn record_of(pk: &PublicKeys) -> Result<Record, Error> {
    if !pk.signed {
        return Err(Error::Invalid(format!(
            "identity {:?} has published no key record yet (it must log in once with a current client)",
            pk.identity
        )));
    }
    Ok(Record {
        identity: Identity {
            user_id: pk.user_id,
            identity: pk.identity.clone(),
            ed25519_public: pk.ed25519,
        },
        version: pk.record_version,
        xwing_public: pk.xwing.clone(),
    })
}

impl Client {
    /// Fetches and opens this account's pin set and its revision (0 and an
    /// empty set when there is none). A row older than one this device saw,
    /// or none after one was seen, is [`Error::Rollback`]; a row that does
    /// not open under the account key (a pin planted by the server) is
    /// [`Error::Tampered`].
    async fn load_pins(&self) -> Result<(PinSet, u64), Error> {
        self.with_keys(|_| ())?;
        let rows: Vec<PinRow> = self
            .rows(Method::GET, "/pins?select=revision,ciphertext", None, None)
            .await?;
        let seen = self.state.pins_seen(self.user_id);
        let r = match rows.as_slice() {
            [] if seen > 0 => {
                return Err(Error::Rollback(format!(
                    "pins: the server shows none after revision {seen}"
                )));
            }
            [] => return Ok((PinSet::default(), 0)),
            [r] => r,
            _ => return Err(tamper("pins: the server returned more than one pin set")),
        };
        trust::check_revision(seen, r.revision)
            .map_err(|_| Error::Rollback(format!("pins: revision {} after {seen}", r.revision)))?;
        let set = self
            .with_keys(|k| trust::pins::open_pin_set(k.account_key(), self.user_id, r.revision, &r.ciphertext))?
            .map_err(|e| tamper(format!("pins: {e}")))?;
        if r.revision > seen {
            self.state.set_pins_seen(self.user_id, r.revision);
            self.save_state()?;
        }
        Ok((set, r.revision))
    }

    /// Applies `change` to the pin set and stores it as the next revision.
    /// When another device wrote meanwhile, it reads that revision and
    /// applies `change` again (a few times at most).
    async fn update_pins<T>(&self, mut change: impl FnMut(&mut PinSet) -> Result<T, Error>) -> Result<T, Error> {
        for _ in 0..PIN_ATTEMPTS {
            let (mut set, rev) = self.load_pins().await?;
            let out = change(&mut set)?;
            let sealed = self.with_keys(|k| set.seal(k.account_key(), self.user_id, rev + 1))?;
            let body = json!({ "revision": rev + 1, "ciphertext": sealed });
            let written: Result<Vec<serde_json::Value>, Error> = if rev == 0 {
                self.rows(
                    Method::POST,
                    "/pins?select=revision",
                    Some(&body),
                    Some("return=representation"),
                )
                .await
            } else {
                self.rows(
                    Method::PATCH,
                    &format!("/pins?select=revision&revision=eq.{rev}"),
                    Some(&body),
                    Some("return=representation"),
                )
                .await
            };
            match written {
                // Another device made the first row meanwhile.
                Err(Error::Rest { status: 409, .. }) => continue,
                Err(e) => return Err(e),
                // No row at `rev` any more: another device moved on.
                Ok(rows) if rows.len() != 1 => continue,
                Ok(_) => {}
            }
            self.state.set_pins_seen(self.user_id, rev + 1);
            self.save_state()?;
            self.set_cached_pins(set)?;
            return Ok(out);
        }
        Err(Error::Conflict("pins".into()))
    }

    /// The pin set, read once after each unlock and kept until the next
    /// lock (or [`Client::reload_pins`]).
    pub(crate) async fn pins(&self) -> Result<PinSet, Error> {
        if let Some(p) = self.cached_pins()? {
            return Ok(p);
        }
        let (set, _) = self.load_pins().await?;
        self.set_cached_pins(set.clone())?;
        Ok(set)
    }

    /// Reads the pin set again (another device of the account may have
    /// verified someone since).
    pub async fn reload_pins(&self) -> Result<(), Error> {
        let (set, _) = self.load_pins().await?;
        self.set_cached_pins(set)
    }

    /// This account's own safety number, for others to compare with what
    /// their client shows for it.
    pub fn own_safety_number(&self) -> Result<String, Error> {
        let me = self.own_identity()?;
        me.digest()
            .map(|d| d.safety_number())
            .map_err(|e| Error::Invalid(format!("this account's fingerprint: {e}")))
    }

    /// Looks `identity` up, checks its key record, computes its fingerprint
    /// here and says what this account's pins say of the keys. Nothing is
    /// pinned.
    pub async fn check_identity(&self, identity: &str) -> Result<IdentityCheck, Error> {
        let pk = self.lookup_identity(identity).await?;
        let rec = record_of(&pk)?;
        let digest = rec
            .identity
            .digest()
            .map_err(|e| tamper(format!("identity {:?}: {e}", pk.identity)))?;
        let (set, _) = self.load_pins().await?;
        let pin = set.lookup(&pk.identity).cloned();
        let status = match set.check(&rec) {
            Ok((p, _)) => match p.status {
                Status::Verified => IdentityStatus::Verified,
                Status::Tofu => IdentityStatus::Tofu,
            },
            Err(TrustError::NotPinned(_)) => IdentityStatus::Unverified,
            Err(TrustError::KeyChanged(_)) => IdentityStatus::Changed,
            Err(TrustError::Downgrade(_)) => IdentityStatus::Downgrade,
            Err(e) => return Err(tamper(format!("identity {:?}: {e}", pk.identity))),
        };
        self.set_cached_pins(set)?;
        Ok(IdentityCheck {
            fingerprint: digest.fingerprint(),
            safety_number: digest.safety_number(),
            qr: digest.qr(),
            keys: pk,
            status,
            pin,
        })
    }

    /// Pins the keys of a [`Client::check_identity`] result after the user
    /// compared its safety number out of band ([`Status::Verified`]) or
    /// chose to trust it on first use ([`Status::Tofu`], which never
    /// replaces a pin of other keys). A downgraded record is never pinned.
    pub async fn confirm_identity(&self, check: &IdentityCheck, status: Status) -> Result<Pin, Error> {
        if check.status == IdentityStatus::Downgrade {
            return Err(tamper(format!(
                "identity {:?} shows an older key record than this account has seen",
                check.keys.identity
            )));
        }
        let rec = record_of(&check.keys)?;
        let now = super::vaults::unix_milli();
        self.update_pins(|set| {
            set.confirm(&rec, status, now).map_err(|e| match e {
                TrustError::KeyChanged(id) => Error::Invalid(format!(
                    "identity {id:?} has new keys; compare safety numbers and confirm"
                )),
                other => Error::Invalid(other.to_string()),
            })
        })
        .await
    }
}
