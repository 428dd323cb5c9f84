//! The checked client of a zsm server (the Go SDK `sdk/zsm`, in Rust).
//!
//! Every secret is encrypted here before it is sent, and everything the
//! server sends back is checked before it is believed: the envelope's
//! associated data binds each ciphertext to its vault, object and revision;
//! vault keys are used only under a grant signed by a key this account
//! trusts; revisions never go backwards ([`DeviceState`]); KDF parameters
//! are held to the floor and to the ones pinned for the account; and the
//! server must prove it knows the SRP verifier.
//!
//! The account keys live only inside the [`Client`]. [`Client::lock`]
//! zeroizes them and every vault key; [`Client::unlock`] opens them again
//! from the password and the Secret Key, without the network.

mod commit;
mod http;
mod invitations;
mod pins;
mod secrets;
mod vaults;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
/// The id type of vaults, secrets and accounts.
pub use uuid::Uuid;
use zeroize::Zeroizing;

use crate::bundle::{self, AccountKeys, Bundle};
use crate::error::{Error, tamper};
use crate::kdf::{self, KdfParams};
use crate::keyrecord;
use crate::secret_key::SecretKey;
use crate::state::DeviceState;
use crate::{identity, srp};

pub use invitations::{Invitation, PublicKeys};
pub use pins::{IdentityCheck, IdentityStatus};
pub use secrets::{MAX_VALUE_BYTES, Secret, valid_secret_name};
pub use vaults::{RefusedVault, Vault, VaultList, valid_vault_name};

use http::{TokenAnswer, auth_call, map_api};

/// Where and how a client talks to a server.
#[derive(Clone)]
pub struct Config {
    /// The gateway, e.g. `http://127.0.0.1:8080` (no trailing slash needed).
    pub server: String,
    /// What this device remembers: pinned KDF parameters, revisions seen.
    pub state: Arc<dyn DeviceState>,
    /// Names the sessions this device's logins open (shown in session lists).
    pub device_label: String,
    /// The HTTP client (bounded timeouts, rustls).
    pub http: reqwest::Client,
}

impl Config {
    /// A configuration with the default HTTP client and device label.
    pub fn new(server: &str, state: Arc<dyn DeviceState>) -> Config {
        Config {
            server: server.trim_end_matches('/').to_owned(),
            state,
            device_label: "zsm desktop".into(),
            http: default_http(),
        }
    }
}

/// The default HTTP client: bounded timeouts, connection reuse, rustls.
pub fn default_http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(8)
        .build()
        .expect("the HTTP client builds")
}

/// The account key the device state pins KDF parameters under.
fn account_key(server: &str, identity: &str) -> String {
    format!("{}|{identity}", server.trim_end_matches('/'))
}

/// What a new account must keep. The Secret Key is shown to the user once
/// (the emergency kit) and kept on the device.
#[derive(Debug)]
pub struct SignupResult {
    /// The account's user id.
    pub user_id: Uuid,
    /// The normalized identity.
    pub identity: String,
    /// The Secret Key (its Debug is redacted).
    pub secret_key: SecretKey,
    /// The KDF parameters (pinned in the device state).
    pub kdf: KdfParams,
}

pub(crate) struct Tokens {
    session_id: String,
    access: Zeroizing<String>,
    expiry: Instant,
    refresh: Zeroizing<String>,
}

impl Tokens {
    fn from_answer(a: TokenAnswer, started: Instant) -> Tokens {
        Tokens {
            session_id: a.session_id,
            access: Zeroizing::new(a.access_token),
            // Measured from before the request: never later than the server's.
            expiry: started + Duration::from_secs(a.expires_in),
            refresh: Zeroizing::new(a.refresh_token),
        }
    }
}

/// One live session of the account, as the server lists it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// The device label its login gave.
    pub device_label: Option<String>,
    /// The client address.
    pub client_addr: Option<String>,
    /// RFC 3339 times as the server sent them.
    pub created_at: String,
    /// Last login or refresh.
    pub last_used_at: String,
    /// Absolute end.
    pub expires_at: String,
    /// Idle end.
    pub idle_expires_at: Option<String>,
    /// This client's session.
    pub current: bool,
}

/// A logged-in session of one account on one server.
pub struct Client {
    http: reqwest::Client,
    server: String,
    identity: String,
    user_id: Uuid,
    kdf: KdfParams,
    /// The account's sealed bundle as the server sent it at login; opened
    /// again by [`Client::unlock`].
    bundle: Bundle,
    state: Arc<dyn DeviceState>,
    tokens: tokio::sync::Mutex<Tokens>,
    keys: RwLock<Option<Unlocked>>,
}

/// What a lock zeroizes: the account keys, and what opening each vault
/// established (its keys among it).
struct Unlocked {
    account: AccountKeys,
    vaults: HashMap<Uuid, commit::VaultState>,
    /// The pin set, once read.
    pins: Option<crate::trust::PinSet>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "zsm client of {} at {} (keys and tokens redacted)",
            self.identity, self.server
        )
    }
}

#[derive(Deserialize)]
struct ParamsAnswer {
    kdf: KdfParams,
}

#[derive(Deserialize)]
struct InitAnswer {
    handshake_id: String,
    srp_salt: String,
    b: String,
}

#[derive(Deserialize)]
struct VerifyAnswer {
    #[serde(default)]
    server_proof: String,
    user_id: String,
    #[serde(flatten)]
    tokens: TokenAnswer,
    #[serde(default)]
    key_bundle: Option<Box<RawValue>>,
}

impl Client {
    /// Creates an account: a Secret Key, KDF parameters at the floor, the SRP
    /// verifier, the key bundle and the key record's signature, all made
    /// here. The server receives the verifier, the KDF parameters, the bundle
    /// and the signature, which proves this sign-up holds the keys it
    /// publishes (authsvc refuses a sign-up without it); never the password,
    /// the Secret Key or any key. The parameters are pinned in the device
    /// state.
    pub async fn signup(cfg: &Config, identity: &str, password: &str) -> Result<SignupResult, Error> {
        let id = identity::normalize(identity).map_err(|e| Error::Invalid(format!("identity: {e}")))?;
        identity::check_new_identity(&id).map_err(|e| Error::Invalid(format!("identity: {e}")))?;
        if password.is_empty() {
            return Err(Error::Invalid("the password must not be empty".into()));
        }
        let sk = SecretKey::generate();
        let params = KdfParams::default_with_random_salt();
        let d = kdf::derive(password.as_bytes(), &sk, &id, &params)?;
        // New accounts start at bundle and record version 2, with the
        // X-Wing key vault keys are sealed to (docs/crypto.md §3).
        let mut keys = AccountKeys::generate();
        keys.add_xwing().map_err(|e| Error::Invalid(e.to_string()))?;
        let user_id = Uuid::new_v4();
        let b = keys.bundle(&d.unlock_key, user_id);
        let record_signature = own_record(user_id, &id, &keys)
            .sign(&keys.signing_key())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let reg = srp::register(&id, &d.srp_secret);
        let body = json!({
            "identity": id,
            "srp_salt": srp::hex(&reg.salt),
            "srp_verifier": srp::format_public(&reg.verifier),
            "kdf": params,
            "user_id": user_id,
            "key_bundle": b,
            "key_record_signature": record_signature,
        });
        #[derive(Deserialize)]
        struct Out {
            user_id: String,
        }
        let out: Out = auth_call(&cfg.http, &cfg.server, "/auth/v1/signup", &body)
            .await
            .map_err(map_api)?;
        if out.user_id != user_id.to_string() {
            return Err(tamper("sign-up answered another user id"));
        }
        cfg.state.pin_kdf(&account_key(&cfg.server, &id), &params);
        cfg.state.save().map_err(|e| Error::State(e.to_string()))?;
        Ok(SignupResult {
            user_id,
            identity: id,
            secret_key: sk,
            kdf: params,
        })
    }

    /// Proves the password and Secret Key with SRP-6a and opens the account's
    /// keys.
    ///
    /// Before anything derived from the password leaves the device, the KDF
    /// parameters the server returned are checked against the floor and
    /// against the ones this device pinned for the account: a server that
    /// lowers them, or swaps the salt, is refused before the SRP exchange
    /// starts. After the exchange the server's proof is checked, and the key
    /// bundle must open with the unlock key and match its own public keys.
    pub async fn login(cfg: &Config, identity: &str, password: &str, sk: &SecretKey) -> Result<Client, Error> {
        Client::login_inner(cfg, identity, password, sk, false).await
    }

    /// [`Client::login`] that accepts KDF parameters other than the pinned
    /// ones (after a password change on another device) and pins the new
    /// ones; the floor still applies.
    pub async fn login_accepting_new_kdf(
        cfg: &Config,
        identity: &str,
        password: &str,
        sk: &SecretKey,
    ) -> Result<Client, Error> {
        Client::login_inner(cfg, identity, password, sk, true).await
    }

    async fn login_inner(
        cfg: &Config,
        identity: &str,
        password: &str,
        sk: &SecretKey,
        accept_new_kdf: bool,
    ) -> Result<Client, Error> {
        let id = identity::normalize(identity).map_err(|e| Error::Invalid(format!("identity: {e}")))?;
        let acct = account_key(&cfg.server, &id);
        let p: ParamsAnswer = auth_call(
            &cfg.http,
            &cfg.server,
            "/auth/v1/login/params",
            &json!({ "identity": id }),
        )
        .await
        .map_err(map_api)?;
        let params = p.kdf;
        // Floor first, then the pin: neither weaker nor different parameters
        // ever get a derived secret out of this device.
        params.check()?;
        if let Some(pinned) = cfg.state.pinned_kdf(&acct)
            && pinned != params
            && !accept_new_kdf
        {
            return Err(Error::KdfChange);
        }
        let derived = kdf::derive(password.as_bytes(), sk, &id, &params)?;
        let mut c = srp::Client::new(&id, &derived.srp_secret);
        let init: InitAnswer = auth_call(
            &cfg.http,
            &cfg.server,
            "/auth/v1/login/init",
            &json!({ "identity": id, "a": srp::format_public(c.public()) }),
        )
        .await
        .map_err(map_api)?;
        // The server's values get the scrutiny the server gives ours: B ≡ 0,
        // 1 or N-1 would let whoever sent it predict the session key.
        let b = srp::parse_public(&init.b).map_err(|e| tamper(format!("SRP B: {e}")))?;
        let salt = srp::parse_salt(&init.srp_salt).map_err(|e| tamper(format!("SRP salt: {e}")))?;
        let m = c.generate(&salt, &b).map_err(|e| tamper(format!("SRP: {e}")))?.m;
        let mut verify = json!({ "handshake_id": init.handshake_id, "m": srp::hex(&m) });
        if !cfg.device_label.is_empty() {
            verify["device_label"] = json!(cfg.device_label);
        }
        let started = Instant::now();
        let ans: VerifyAnswer = auth_call(&cfg.http, &cfg.server, "/auth/v1/login/verify", &verify)
            .await
            .map_err(map_api)?;
        // The server proves it knows the verifier; without that the tokens
        // and the bundle may come from anyone.
        if !c.server_ok(&ans.server_proof) {
            return Err(tamper("SRP server proof"));
        }
        let raw = match &ans.key_bundle {
            Some(r) if r.get() != "null" => r.get(),
            _ => return Err(tamper("the account has no key bundle")),
        };
        let b = bundle::parse_bundle(raw.as_bytes()).map_err(|e| tamper(format!("key bundle: {e}")))?;
        let user_id = Uuid::parse_str(&ans.user_id).map_err(|e| tamper(format!("user id: {e}")))?;
        let keys =
            bundle::open_bundle(&b, &derived.unlock_key, user_id).map_err(|e| tamper(format!("key bundle: {e}")))?;
        cfg.state.pin_kdf(&acct, &params);
        cfg.state.save().map_err(|e| Error::State(e.to_string()))?;
        let record = own_record(user_id, &id, &keys).sign(&keys.signing_key());
        let mut c = Client {
            http: cfg.http.clone(),
            server: cfg.server.clone(),
            identity: id,
            user_id,
            kdf: params,
            bundle: b,
            state: cfg.state.clone(),
            tokens: tokio::sync::Mutex::new(Tokens::from_answer(ans.tokens, started)),
            keys: RwLock::new(Some(Unlocked {
                account: keys,
                vaults: HashMap::new(),
                pins: None,
            })),
        };
        // An account with a version 1 bundle moves to version 2 now (which
        // also publishes its record if it had none). If that fails, one made
        // before key records existed publishes its version 1 record; for
        // every other account that is a no-op the server answers 204. Best
        // effort, as in the Go SDK: the next login tries again, and nothing
        // here depends on it.
        if c.bundle.version == bundle::BUNDLE_V1
            && !c.upgrade_keys().await
            && let Ok(sig) = record
        {
            let _ = c.publish_key_record(&sig).await;
        }
        Ok(c)
    }

    /// Moves this account from key bundle version 1 to version 2
    /// (docs/crypto.md §3, "Upgrade"), as the Go SDK does at login: a new
    /// X-Wing key sealed under the same account key, the five other members
    /// of the bundle unchanged, uploaded with the version 2 key record
    /// (POST /auth/v1/keys/upgrade). On success the client holds the new
    /// bundle and keys; on failure (another device upgraded meanwhile, the
    /// server is busy) it keeps the version 1 keys, everything that needs no
    /// X-Wing key works, and the next login tries again. Reports success.
    async fn upgrade_keys(&mut self) -> bool {
        let Ok(Some(mut keys)) = self.with_keys(|k| (k.xwing_seed().is_none()).then(|| k.clone())) else {
            return false;
        };
        let Ok(nb) = keys.upgrade_bundle(&self.bundle, self.user_id) else {
            return false;
        };
        let Ok(sig) = own_record(self.user_id, &self.identity, &keys).sign(&keys.signing_key()) else {
            return false;
        };
        let body = json!({ "key_bundle": nb, "key_record_signature": sig });
        if self
            .authed::<serde_json::Value>(Method::POST, "/auth/v1/keys/upgrade", Some(&body))
            .await
            .is_err()
        {
            return false;
        }
        self.bundle = nb;
        if let Some(u) = self.keys.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
            u.account = keys;
        }
        true
    }

    /// Sends this account's key record signature (POST
    /// /auth/v1/keys/record): authsvc checks it over the keys the account
    /// published and stores it if the account has none yet.
    async fn publish_key_record(&self, signature: &str) -> Result<(), Error> {
        self.authed::<serde_json::Value>(
            Method::POST,
            "/auth/v1/keys/record",
            Some(&json!({ "key_record_signature": signature })),
        )
        .await
        .map_err(map_api)?;
        Ok(())
    }

    /// The normalized identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The account's user id.
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }

    /// The server this client talks to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The account's X25519 public key (what others seal vault keys to).
    pub fn x25519_public(&self) -> Result<[u8; 32], Error> {
        self.with_keys(|k| k.x25519_public())
    }

    /// This account's X-Wing public key (1216 bytes), if it has one (key
    /// bundle version 2).
    pub fn xwing_public(&self) -> Result<Option<Vec<u8>>, Error> {
        self.with_keys(|k| k.xwing_public())
    }

    /// The id of this client's session.
    pub async fn session_id(&self) -> String {
        self.tokens.lock().await.session_id.clone()
    }

    /// Whether the keys are locked away.
    pub fn is_locked(&self) -> bool {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// Zeroizes the account keys and every vault key. The tokens stay, so
    /// [`Client::unlock`] needs no network; nothing can be read or written
    /// until then.
    pub fn lock(&self) {
        let mut k = self.keys.write().unwrap_or_else(|p| p.into_inner());
        *k = None; // AccountKeys and the vault keys zeroize on drop
    }

    /// Opens the account keys again from the password and the Secret Key,
    /// with the KDF parameters of this login (held to the floor and the pin).
    pub fn unlock(&self, password: &str, sk: &SecretKey) -> Result<(), Error> {
        if let Some(pinned) = self.state.pinned_kdf(&account_key(&self.server, &self.identity))
            && pinned != self.kdf
        {
            return Err(Error::KdfChange);
        }
        let d = kdf::derive(password.as_bytes(), sk, &self.identity, &self.kdf)?;
        let keys = bundle::open_bundle(&self.bundle, &d.unlock_key, self.user_id).map_err(|e| match e {
            bundle::BundleError::Unlock(_) => Error::WrongPassword,
            other => tamper(format!("key bundle: {other}")),
        })?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Unlocked {
            account: keys,
            vaults: HashMap::new(),
            pins: None,
        });
        Ok(())
    }

    /// Runs `f` with the account keys, or [`Error::Locked`].
    fn with_keys<T>(&self, f: impl FnOnce(&AccountKeys) -> T) -> Result<T, Error> {
        let k = self.keys.read().unwrap_or_else(|p| p.into_inner());
        k.as_ref().map(|u| f(&u.account)).ok_or(Error::Locked)
    }

    /// What opening vault `id` established, if this client opened it since
    /// its last unlock.
    fn vault_state(&self, id: Uuid) -> Result<Option<commit::VaultState>, Error> {
        let k = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let u = k.as_ref().ok_or(Error::Locked)?;
        Ok(u.vaults.get(&id).cloned())
    }

    /// Remembers what opening vault `id` established.
    fn remember_vault(&self, id: Uuid, st: commit::VaultState) -> Result<(), Error> {
        let mut k = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let u = k.as_mut().ok_or(Error::Locked)?;
        u.vaults.insert(id, st);
        Ok(())
    }

    /// Changes what is remembered of vault `id` (nothing if it is not).
    fn update_vault(&self, id: Uuid, f: impl FnOnce(&mut commit::VaultState)) -> Result<(), Error> {
        let mut k = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let u = k.as_mut().ok_or(Error::Locked)?;
        if let Some(st) = u.vaults.get_mut(&id) {
            f(st);
        }
        Ok(())
    }

    /// The pin set read since the last unlock, if any.
    fn cached_pins(&self) -> Result<Option<crate::trust::PinSet>, Error> {
        let k = self.keys.read().unwrap_or_else(|p| p.into_inner());
        Ok(k.as_ref().ok_or(Error::Locked)?.pins.clone())
    }

    /// Keeps `set` as the pin set until the next lock.
    fn set_cached_pins(&self, set: crate::trust::PinSet) -> Result<(), Error> {
        let mut k = self.keys.write().unwrap_or_else(|p| p.into_inner());
        k.as_mut().ok_or(Error::Locked)?.pins = Some(set);
        Ok(())
    }

    fn save_state(&self) -> Result<(), Error> {
        self.state.save().map_err(|e| Error::State(e.to_string()))
    }

    /// Rotates the session's tokens now.
    pub async fn refresh(&self) -> Result<(), Error> {
        let stale = self.tokens.lock().await.access.clone();
        self.refresh_if(&stale).await
    }

    /// The account's live sessions; `current` marks this one.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, Error> {
        #[derive(Deserialize)]
        struct Out {
            sessions: Vec<SessionInfo>,
        }
        let out: Option<Out> = self
            .authed(Method::GET, "/auth/v1/sessions", None)
            .await
            .map_err(map_api)?;
        Ok(out.map(|o| o.sessions).unwrap_or_default())
    }

    /// Ends one of the account's sessions (this one included): its tokens
    /// stop working at once. An id that is not a live session of this
    /// account is [`Error::NotFound`].
    pub async fn revoke_session(&self, id: &str) -> Result<(), Error> {
        let path = format!("/auth/v1/sessions/{}", path_escape(id));
        match self.authed::<serde_json::Value>(Method::DELETE, &path, None).await {
            Ok(_) => Ok(()),
            Err(Error::Api { code, .. }) if code == "not_found" => Err(Error::NotFound("no such session".into())),
            Err(e) => Err(map_api(e)),
        }
    }

    /// Ends the session on the server and locks the client.
    pub async fn logout(&self) -> Result<(), Error> {
        let refresh = self.tokens.lock().await.refresh.clone();
        self.lock();
        let (status, data) = http::send(
            &self.http,
            Method::POST,
            &format!("{}/auth/v1/logout", self.server),
            None,
            Some(&json!({ "refresh_token": &*refresh })),
            None,
            1 << 20,
        )
        .await?;
        if status.as_u16() >= 300 {
            return Err(map_api(http::api_error(status, &data)));
        }
        Ok(())
    }
}

/// This account's key record (docs/crypto.md §3): version 2 when the
/// account has an X-Wing key.
fn own_record(user_id: Uuid, identity: &str, keys: &AccountKeys) -> keyrecord::Record {
    keyrecord::Record {
        user_id,
        identity: identity.to_owned(),
        x25519: keys.x25519_public(),
        ed25519: keys.ed25519_public(),
        xwing: keys.xwing_public(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No key, value or secret prints through Debug.
    #[test]
    fn redaction() {
        let keys = AccountKeys::generate();
        let seed_hex = srp::hex(keys.ed25519_seed());
        let sk = SecretKey::generate();
        let derived = kdf::split(&[1; 32], sk.as_bytes(), "alice@example.com");
        let secret = Secret {
            id: Uuid::nil(),
            vault_id: Uuid::nil(),
            name: "API_KEY".into(),
            value: Zeroizing::new("hunter2-value".into()),
            revision: 3,
            updated_at: String::new(),
        };
        let srp_client = srp::Client::new("alice@example.com", &derived.srp_secret);
        let printed = format!("{keys:?} {sk:?} {derived:?} {secret:?} {srp_client:?} {:#?}", secret);
        for leak in [
            seed_hex.as_str(),
            &sk.text(),
            &srp::hex(&derived.unlock_key),
            "hunter2-value",
        ] {
            assert!(!printed.contains(leak), "{printed} shows {leak}");
        }
        assert!(printed.contains("redacted"), "{printed}");
    }

    #[test]
    fn names() {
        assert!(valid_vault_name("prod").is_ok());
        for bad in ["", " prod", "a/b", "a\tb", &"v".repeat(65)] {
            assert!(valid_vault_name(bad).is_err(), "{bad:?}");
        }
        assert!(valid_secret_name("db/password").is_ok());
        for bad in ["", "x ", "a\u{7f}", "a\nb", &"s".repeat(257)] {
            assert!(valid_secret_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(path_escape("a b/c"), "a%20b%2Fc");
    }
}
