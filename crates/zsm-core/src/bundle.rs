//! The account key bundle (docs/crypto.md §3): the account key sealed under
//! the unlock key, and the X25519 and Ed25519 key pairs, private halves
//! sealed under the account key; version 2 adds the X-Wing key
//! (ML-KEM-768 + X25519), its 32-byte seed sealed the same way.
//!
//! On login the server sends the bundle back; it is parsed strictly and
//! opened here, and each private key must yield the published public key,
//! or the bundle is refused as tampered.

use std::fmt;

use ed25519_dalek::SigningKey;
use serde::Serialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::envelope::{self, Context, EnvelopeError, Type};
use crate::xwing;

/// Bundle version 1: the X25519 and Ed25519 keys.
pub const BUNDLE_V1: u32 = 1;
/// Bundle version 2: version 1 and the X-Wing key.
pub const BUNDLE_V2: u32 = 2;
/// A real bundle is about 500 bytes (2,300 in version 2); anything above
/// this is refused unread.
pub const MAX_BUNDLE_SIZE: usize = 16 << 10;

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum BundleError {
    /// Not a well-formed bundle: bad JSON, an unknown, missing or repeated
    /// member, a version other than 1 or 2 (or members of another version),
    /// bad base64, a public key of the wrong size (or an X-Wing key that is
    /// not a valid ML-KEM-768 key), or an envelope of the wrong type in a
    /// field.
    #[error("malformed key bundle: {0}")]
    Malformed(String),
    /// The unlock key does not open the account key: a wrong password or
    /// Secret Key, another user's bundle, or a tampered one.
    #[error("cannot open the account key (wrong password or Secret Key, or a tampered bundle)")]
    Unlock(EnvelopeError),
    /// The account key opened but a private key did not, or does not match
    /// its published public key.
    #[error("tampered key bundle: {0}")]
    Tampered(String),
}

/// A user's long-term keys. Zeroized when dropped; `Debug` never shows them.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AccountKeys {
    account_key: [u8; 32],
    x25519: [u8; 32],
    ed25519_seed: [u8; 32],
    /// The X-Wing seed (bundle version 2); `None` for version 1 keys.
    xwing_seed: Option<[u8; 32]>,
}

impl fmt::Debug for AccountKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKeys([redacted])")
    }
}

impl AccountKeys {
    /// Fresh random keys of bundle version 1 (no X-Wing key; see
    /// [`AccountKeys::add_xwing`]).
    pub fn generate() -> AccountKeys {
        let mut k = AccountKeys {
            account_key: [0; 32],
            x25519: [0; 32],
            ed25519_seed: [0; 32],
            xwing_seed: None,
        };
        crate::random_bytes(&mut k.account_key);
        crate::random_bytes(&mut k.x25519);
        crate::random_bytes(&mut k.ed25519_seed);
        k
    }

    /// Gives the keys an X-Wing key made from 32 random bytes used as its
    /// seed (the public key is derived from it). Refuses keys that have one.
    pub fn add_xwing(&mut self) -> Result<(), BundleError> {
        if self.xwing_seed.is_some() {
            return Err(BundleError::Malformed("the account already has an X-Wing key".into()));
        }
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed);
        self.xwing_seed = Some(seed);
        seed.zeroize();
        Ok(())
    }

    /// The X-Wing seed, if these keys have one.
    pub fn xwing_seed(&self) -> Option<&[u8; 32]> {
        self.xwing_seed.as_ref()
    }

    /// The X-Wing public key (1216 bytes), if these keys have one.
    pub fn xwing_public(&self) -> Option<Vec<u8>> {
        self.xwing_seed.as_ref().map(xwing::public_key)
    }

    /// The account key.
    pub fn account_key(&self) -> &[u8; 32] {
        &self.account_key
    }

    /// The X25519 private scalar (as stored: HPKE clamps it when used).
    pub fn x25519_private(&self) -> &[u8; 32] {
        &self.x25519
    }

    /// The X25519 public key.
    pub fn x25519_public(&self) -> [u8; 32] {
        XPublic::from(&StaticSecret::from(self.x25519)).to_bytes()
    }

    /// The Ed25519 seed.
    pub fn ed25519_seed(&self) -> &[u8; 32] {
        &self.ed25519_seed
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.ed25519_seed)
    }

    /// The Ed25519 public key.
    pub fn ed25519_public(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }

    /// Rebuilds keys from their parts (a stored session).
    pub fn from_parts(
        account_key: [u8; 32],
        x25519: [u8; 32],
        ed25519_seed: [u8; 32],
        xwing_seed: Option<[u8; 32]>,
    ) -> AccountKeys {
        AccountKeys {
            account_key,
            x25519,
            ed25519_seed,
            xwing_seed,
        }
    }

    /// Seals the private parts for `user_id`: the account key under
    /// `unlock_key`, the private keys under the account key. Version 2 when
    /// the keys have an X-Wing key, version 1 otherwise.
    pub fn bundle(&self, unlock_key: &[u8; 32], user_id: Uuid) -> Bundle {
        let seal = |key: &[u8], t: Type, pt: &[u8]| {
            envelope::seal_string(key, &account_context(t, user_id), pt).expect("32-byte keys")
        };
        let b = Bundle {
            version: BUNDLE_V1,
            account_key: seal(unlock_key, Type::AccountKey, &self.account_key),
            x25519_public: crate::b64::encode(&self.x25519_public()),
            x25519_private: seal(&self.account_key, Type::X25519Private, &self.x25519),
            ed25519_public: crate::b64::encode(&self.ed25519_public()),
            ed25519_private: seal(&self.account_key, Type::Ed25519Private, &self.ed25519_seed),
            xwing_public: None,
            xwing_private: None,
        };
        self.with_xwing_members(b, user_id)
    }

    /// `b` with this key's X-Wing members (version 2), or unchanged if the
    /// keys have no X-Wing key.
    fn with_xwing_members(&self, mut b: Bundle, user_id: Uuid) -> Bundle {
        if let Some(seed) = &self.xwing_seed {
            b.version = BUNDLE_V2;
            b.xwing_public = Some(crate::b64::encode(&xwing::public_key(seed)));
            b.xwing_private = Some(
                envelope::seal_string(&self.account_key, &account_context(Type::XWingSeed, user_id), seed)
                    .expect("32-byte keys"),
            );
        }
        b
    }

    /// Turns `b`, the version 1 bundle these keys were opened from, into
    /// version 2 (docs/crypto.md §3, Upgrade): an X-Wing key from fresh
    /// randomness (unless the keys have one), sealed under the account key,
    /// and the five other members of `b` copied byte for byte, so the server
    /// can check that nothing else changed. Refuses a bundle that is not
    /// version 1 or whose public keys are not these keys'.
    pub fn upgrade_bundle(&mut self, b: &Bundle, user_id: Uuid) -> Result<Bundle, BundleError> {
        let f = b.fields()?;
        if b.version != BUNDLE_V1 {
            return Err(BundleError::Malformed(format!(
                "only a version 1 bundle is upgraded, this is version {}",
                b.version
            )));
        }
        if f.x25519_public != self.x25519_public() || f.ed25519_public != self.ed25519_public() {
            return Err(BundleError::Malformed("the bundle is not of these keys".into()));
        }
        if self.xwing_seed.is_none() {
            self.add_xwing()?;
        }
        Ok(self.with_xwing_members(b.clone(), user_id))
    }
}

/// The envelope context of a bundle field: the nil vault, the user, revision 0.
pub fn account_context(t: Type, user_id: Uuid) -> Context {
    Context {
        typ: t,
        vault_id: Uuid::nil(),
        object_id: user_id,
        revision: 0,
    }
}

/// The key bundle the server stores (binary members in canonical base64).
/// The X-Wing members are `None` in version 1 and then left out of the
/// JSON, so a version 1 bundle encodes as it always did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bundle {
    /// 1 or 2.
    pub version: u32,
    /// Envelope type 1 under the unlock key.
    pub account_key: String,
    /// 32 bytes.
    pub x25519_public: String,
    /// Envelope type 2 under the account key.
    pub x25519_private: String,
    /// 32 bytes.
    pub ed25519_public: String,
    /// Envelope type 3 under the account key.
    pub ed25519_private: String,
    /// Version 2: 1216 bytes (ML-KEM-768 encapsulation key, X25519 key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xwing_public: Option<String>,
    /// Version 2: envelope type 6 under the account key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xwing_private: Option<String>,
}

struct Fields {
    account_key: Vec<u8>,
    x25519_public: [u8; 32],
    x25519_private: Vec<u8>,
    ed25519_public: [u8; 32],
    ed25519_private: Vec<u8>,
    /// Version 2: the public key and the sealed seed.
    xwing: Option<(Vec<u8>, Vec<u8>)>,
}

impl Bundle {
    fn fields(&self) -> Result<Fields, BundleError> {
        match (self.version, &self.xwing_public, &self.xwing_private) {
            (BUNDLE_V1, None, None) | (BUNDLE_V2, Some(_), Some(_)) => {}
            (BUNDLE_V1, _, _) => return Err(BundleError::Malformed("version 1 with X-Wing members".into())),
            (BUNDLE_V2, _, _) => return Err(BundleError::Malformed("version 2 without X-Wing members".into())),
            (v, _, _) => return Err(BundleError::Malformed(format!("version {v}"))),
        }
        let env = |name: &str, s: &str, t: Type| -> Result<Vec<u8>, BundleError> {
            let raw =
                crate::b64::decode(s).ok_or_else(|| BundleError::Malformed(format!("{name}: not canonical base64")))?;
            let p = envelope::parse(&raw).map_err(|e| BundleError::Malformed(format!("{name}: {e}")))?;
            if p.typ != t {
                return Err(BundleError::Malformed(format!(
                    "{name} holds an envelope of type {:?}",
                    p.typ
                )));
            }
            Ok(raw)
        };
        let public = |name: &str, s: &str| -> Result<[u8; 32], BundleError> {
            crate::b64::decode(s)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| BundleError::Malformed(format!("{name}: not 32 bytes of canonical base64")))
        };
        let mut f = Fields {
            account_key: env("account_key", &self.account_key, Type::AccountKey)?,
            x25519_public: public("x25519_public", &self.x25519_public)?,
            x25519_private: env("x25519_private", &self.x25519_private, Type::X25519Private)?,
            ed25519_public: public("ed25519_public", &self.ed25519_public)?,
            ed25519_private: env("ed25519_private", &self.ed25519_private, Type::Ed25519Private)?,
            xwing: None,
        };
        if let (Some(p), Some(s)) = (&self.xwing_public, &self.xwing_private) {
            let public = crate::b64::decode(p)
                .filter(|b| b.len() == xwing::PUBLIC_KEY_SIZE)
                .ok_or_else(|| BundleError::Malformed("xwing_public: not 1216 bytes of canonical base64".into()))?;
            let private = env("xwing_private", s, Type::XWingSeed)?;
            // The public key must also be a key others can seal to: a
            // well-formed ML-KEM-768 encapsulation key (every coefficient
            // below q), as Go's crypto/hpke requires.
            xwing::check_public_key(&public).map_err(|e| BundleError::Malformed(format!("xwing_public: {e}")))?;
            f.xwing = Some((public, private));
        }
        Ok(f)
    }

    /// The published X25519 public key.
    pub fn x25519_public(&self) -> Result<[u8; 32], BundleError> {
        Ok(self.fields()?.x25519_public)
    }

    /// The published Ed25519 public key.
    pub fn ed25519_public(&self) -> Result<[u8; 32], BundleError> {
        Ok(self.fields()?.ed25519_public)
    }

    /// The published X-Wing public key (1216 bytes); `None` in version 1.
    pub fn xwing_public(&self) -> Result<Option<Vec<u8>>, BundleError> {
        Ok(self.fields()?.xwing.map(|(p, _)| p))
    }

    /// The bundle as the JSON document sent to the server.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a bundle always serializes")
    }
}

/// Parses a key bundle strictly: one JSON object with exactly the members of
/// its version (six in version 1, those and `xwing_public` and
/// `xwing_private` in version 2), each once, names matched exactly,
/// `version` the number `1` or `2` written as such, every binary member
/// canonical base64 of the right size or envelope type, and nothing after
/// the object.
pub fn parse_bundle(data: &[u8]) -> Result<Bundle, BundleError> {
    let bad = |m: &str| BundleError::Malformed(m.to_owned());
    if data.len() > MAX_BUNDLE_SIZE {
        return Err(bad("too large"));
    }
    // Members in document order, repeats kept, so a repeated or unknown
    // member is seen rather than silently merged.
    let members: Vec<(String, serde_json::Value)> = serde_json::from_slice::<OrderedObject>(data)
        .map_err(|e| BundleError::Malformed(e.to_string()))?
        .0;
    let mut b = Bundle {
        version: 0,
        account_key: String::new(),
        x25519_public: String::new(),
        x25519_private: String::new(),
        ed25519_public: String::new(),
        ed25519_private: String::new(),
        xwing_public: None,
        xwing_private: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &members {
        if seen.contains(&name.as_str()) {
            return Err(bad("member repeated"));
        }
        seen.push(name);
        if name == "version" {
            // A JSON number written as 1 or 2 (serde_json reads `1.0` and
            // `1e0` as floats, which as_u64 refuses).
            match value {
                serde_json::Value::Number(n) if matches!(n.as_u64(), Some(1 | 2)) => {
                    b.version = n.as_u64().expect("matched") as u32
                }
                _ => return Err(bad("version must be 1 or 2")),
            }
            continue;
        }
        let s = match value {
            serde_json::Value::String(s) => s.clone(),
            _ => return Err(bad("members must be strings")),
        };
        match name.as_str() {
            "account_key" => b.account_key = s,
            "x25519_public" => b.x25519_public = s,
            "x25519_private" => b.x25519_private = s,
            "ed25519_public" => b.ed25519_public = s,
            "ed25519_private" => b.ed25519_private = s,
            "xwing_public" => b.xwing_public = Some(s),
            "xwing_private" => b.xwing_private = Some(s),
            _ => return Err(bad("unknown member")),
        }
    }
    // Exactly the members of the version: 6 for version 1, 8 for version 2.
    let want = if b.version == BUNDLE_V2 { 8 } else { 6 };
    if !seen.contains(&"version") || seen.len() != want {
        return Err(BundleError::Malformed(format!(
            "the members of version {} are not all there",
            b.version
        )));
    }
    b.fields()?;
    Ok(b)
}

/// A JSON object read as its members in order, duplicates included.
struct OrderedObject(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<OrderedObject, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry::<String, serde_json::Value>()? {
                    v.push(e);
                }
                Ok(OrderedObject(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Opens `b` for `user_id` with the unlock key: the account key first
/// ([`BundleError::Unlock`] if that fails), then the private keys under it,
/// and checks that each yields the published public key
/// ([`BundleError::Tampered`] otherwise): the public halves are what others
/// encrypt to and verify with, so a bundle whose halves disagree is refused.
pub fn open_bundle(b: &Bundle, unlock_key: &[u8; 32], user_id: Uuid) -> Result<AccountKeys, BundleError> {
    let f = b.fields()?;
    let ak = envelope::open(unlock_key, &account_context(Type::AccountKey, user_id), &f.account_key)
        .map_err(BundleError::Unlock)?;
    let ak: Zeroizing<[u8; 32]> = Zeroizing::new(
        ak.as_slice()
            .try_into()
            .map_err(|_| BundleError::Tampered(format!("account key of {} bytes", ak.len())))?,
    );
    let xs = envelope::open(
        ak.as_ref(),
        &account_context(Type::X25519Private, user_id),
        &f.x25519_private,
    )
    .map_err(|e| BundleError::Tampered(format!("X25519 private key: {e}")))?;
    let es = envelope::open(
        ak.as_ref(),
        &account_context(Type::Ed25519Private, user_id),
        &f.ed25519_private,
    )
    .map_err(|e| BundleError::Tampered(format!("Ed25519 private key: {e}")))?;
    let (Ok(xs), Ok(es)) = (<[u8; 32]>::try_from(xs.as_slice()), <[u8; 32]>::try_from(es.as_slice())) else {
        return Err(BundleError::Tampered("private key of the wrong size".into()));
    };
    let xwing_seed = match &f.xwing {
        None => None,
        Some((public, sealed)) => Some(open_xwing(&ak, user_id, public, sealed)?),
    };
    let keys = AccountKeys::from_parts(*ak, xs, es, xwing_seed);
    if !bool::from(keys.x25519_public().ct_eq(&f.x25519_public)) {
        return Err(BundleError::Tampered(
            "the X25519 private key does not match the published public key".into(),
        ));
    }
    if !bool::from(keys.ed25519_public().ct_eq(&f.ed25519_public)) {
        return Err(BundleError::Tampered(
            "the Ed25519 private key does not match the published public key".into(),
        ));
    }
    Ok(keys)
}

/// Opens the X-Wing seed of a version 2 bundle and checks that it yields the
/// published X-Wing public key: that key is what others seal vault keys to,
/// so one the seed does not give is the server's, not the user's.
fn open_xwing(account_key: &[u8; 32], user_id: Uuid, public: &[u8], sealed: &[u8]) -> Result<[u8; 32], BundleError> {
    let seed = envelope::open(account_key, &account_context(Type::XWingSeed, user_id), sealed)
        .map_err(|e| BundleError::Tampered(format!("X-Wing private key: {e}")))?;
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| BundleError::Tampered(format!("X-Wing seed of {} bytes", seed.len())))?;
    if !bool::from(xwing::public_key(&seed).ct_eq(public)) {
        return Err(BundleError::Tampered(
            "the X-Wing seed does not match the published public key".into(),
        ));
    }
    Ok(seed)
}
