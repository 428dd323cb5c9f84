//! The account key bundle (docs/crypto.md §3): the account key sealed under
//! the unlock key, and the X25519 and Ed25519 key pairs, private halves
//! sealed under the account key.
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

/// The only bundle version.
pub const BUNDLE_VERSION: u32 = 1;
/// A real bundle is about 500 bytes; anything above this is refused unread.
pub const MAX_BUNDLE_SIZE: usize = 16 << 10;

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum BundleError {
    /// Not a well-formed bundle: bad JSON, an unknown, missing or repeated
    /// member, a version other than 1, bad base64, a public key that is not
    /// 32 bytes, or an envelope of the wrong type in a field.
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
}

impl fmt::Debug for AccountKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKeys([redacted])")
    }
}

impl AccountKeys {
    /// Fresh random keys.
    pub fn generate() -> AccountKeys {
        let mut k = AccountKeys {
            account_key: [0; 32],
            x25519: [0; 32],
            ed25519_seed: [0; 32],
        };
        crate::random_bytes(&mut k.account_key);
        crate::random_bytes(&mut k.x25519);
        crate::random_bytes(&mut k.ed25519_seed);
        k
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
    pub fn from_parts(account_key: [u8; 32], x25519: [u8; 32], ed25519_seed: [u8; 32]) -> AccountKeys {
        AccountKeys {
            account_key,
            x25519,
            ed25519_seed,
        }
    }

    /// Seals the private parts for `user_id`: the account key under
    /// `unlock_key`, the private keys under the account key.
    pub fn bundle(&self, unlock_key: &[u8; 32], user_id: Uuid) -> Bundle {
        let seal = |key: &[u8], t: Type, pt: &[u8]| {
            envelope::seal_string(key, &account_context(t, user_id), pt).expect("32-byte keys")
        };
        Bundle {
            version: BUNDLE_VERSION,
            account_key: seal(unlock_key, Type::AccountKey, &self.account_key),
            x25519_public: crate::b64::encode(&self.x25519_public()),
            x25519_private: seal(&self.account_key, Type::X25519Private, &self.x25519),
            ed25519_public: crate::b64::encode(&self.ed25519_public()),
            ed25519_private: seal(&self.account_key, Type::Ed25519Private, &self.ed25519_seed),
        }
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bundle {
    /// Always 1.
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
}

struct Fields {
    account_key: Vec<u8>,
    x25519_public: [u8; 32],
    x25519_private: Vec<u8>,
    ed25519_public: [u8; 32],
    ed25519_private: Vec<u8>,
}

impl Bundle {
    fn fields(&self) -> Result<Fields, BundleError> {
        if self.version != BUNDLE_VERSION {
            return Err(BundleError::Malformed(format!("version {}", self.version)));
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
        Ok(Fields {
            account_key: env("account_key", &self.account_key, Type::AccountKey)?,
            x25519_public: public("x25519_public", &self.x25519_public)?,
            x25519_private: env("x25519_private", &self.x25519_private, Type::X25519Private)?,
            ed25519_public: public("ed25519_public", &self.ed25519_public)?,
            ed25519_private: env("ed25519_private", &self.ed25519_private, Type::Ed25519Private)?,
        })
    }

    /// The published X25519 public key.
    pub fn x25519_public(&self) -> Result<[u8; 32], BundleError> {
        Ok(self.fields()?.x25519_public)
    }

    /// The published Ed25519 public key.
    pub fn ed25519_public(&self) -> Result<[u8; 32], BundleError> {
        Ok(self.fields()?.ed25519_public)
    }

    /// The bundle as the JSON document sent to the server.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a bundle always serializes")
    }
}

/// Parses a key bundle strictly: one JSON object with exactly the six
/// members, each once, names matched exactly, `version` the number `1`
/// written as `1`, every binary member canonical base64 of the right size or
/// envelope type, and nothing after the object.
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
    };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &members {
        if seen.contains(&name.as_str()) {
            return Err(bad("member repeated"));
        }
        seen.push(name);
        if name == "version" {
            match value {
                serde_json::Value::Number(n) if n.as_u64() == Some(1) => b.version = 1,
                _ => return Err(bad("version must be 1")),
            }
            continue;
        }
        let slot = match name.as_str() {
            "account_key" => &mut b.account_key,
            "x25519_public" => &mut b.x25519_public,
            "x25519_private" => &mut b.x25519_private,
            "ed25519_public" => &mut b.ed25519_public,
            "ed25519_private" => &mut b.ed25519_private,
            _ => return Err(bad("unknown member")),
        };
        match value {
            serde_json::Value::String(s) => *slot = s.clone(),
            _ => return Err(bad("members must be strings")),
        }
    }
    if seen.len() != 6 {
        return Err(bad("missing members"));
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
    let keys = AccountKeys::from_parts(*ak, xs, es);
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
