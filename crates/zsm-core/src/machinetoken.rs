//! Machine tokens (docs/crypto.md §11), the Go SDK's `sdk/machinetoken`: one
//! string that names a token, logs it in and carries its key material, for
//! CI jobs and servers that use zsm without a person.
//!
//! ```text
//! token = "zsm_tok_v1_" || base64url-nopad(token_id (16) || secret (32) || check (4))
//! check = SHA-256("zsm v1 token-check" || 0x00 || token_id || secret)[0:4]
//! key(info) = HKDF-SHA256(ikm = secret, salt = token_id, info, 32)
//! ```
//!
//! A [`Token`] and its [`Keys`] never print their secrets: `Debug` shows
//! `[redacted]`, and the secret bytes are wiped when dropped.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Opens every token's text form; secret scanners can match it.
pub const PREFIX: &str = "zsm_tok_v1_";
/// Length of the text form: the prefix and 70 characters of base64url.
pub const TEXT_SIZE: usize = 81;
/// Size of a login nonce.
pub const NONCE_SIZE: usize = 32;

/// The HKDF labels of the keys derived from a token's secret.
pub const INFO_ED25519: &str = "zsm v1 token ed25519";
/// The X25519 private key's label.
pub const INFO_X25519: &str = "zsm v1 token x25519";
/// The X-Wing seed's label.
pub const INFO_XWING: &str = "zsm v1 token xwing";
/// The offline cache key's label.
pub const INFO_CACHE: &str = "zsm v1 token cache";
/// The anchor MAC key's label.
pub const INFO_ANCHOR: &str = "zsm v1 token anchor";

/// The identity of a token's key record begins with this; sign-up refuses
/// it for people.
pub const IDENTITY_PREFIX: &str = "token:";

const CHECK_LABEL: &[u8] = b"zsm v1 token-check\x00";
const RECORD_LABEL: &[u8] = b"zsm v2 key-record\x00";
const ANCHOR_LABEL: &[u8] = b"zsm v1 token-anchor\x00";
const LOGIN_LABEL: &[u8] = b"zsm v1 machine-login\x00";

/// Why a token, its record, its anchor or a login signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum TokenError {
    /// Not exactly a token: prefix, length, alphabet, check or id version.
    /// Which part was wrong is not told.
    #[error("malformed token")]
    Malformed,
    /// The token's key record does not verify (or cannot be encoded).
    #[error("the token's key record signature does not verify: {0}")]
    BadRecord(&'static str),
    /// The anchor does not vouch for this creator and key.
    #[error("the anchor does not vouch for this creator and key")]
    BadAnchor,
    /// A login message cannot be built (nonce or audience out of bounds).
    #[error("the login message cannot be built: {0}")]
    BadLogin(&'static str),
}

/// A parsed machine token.
pub struct Token {
    id: Uuid,
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

fn check(id: &Uuid, secret: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(CHECK_LABEL);
    h.update(id.as_bytes());
    h.update(secret);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn version4(id: &Uuid) -> bool {
    let b = id.as_bytes();
    b[6] >> 4 == 4 && b[8] >> 6 == 2
}

impl Token {
    /// Makes a new token from the operating system's random source.
    pub fn generate() -> Token {
        let mut b = Zeroizing::new([0u8; 48]);
        crate::random_bytes(&mut b[..]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[..16]);
        id[6] = id[6] & 0x0f | 0x40;
        id[8] = id[8] & 0x3f | 0x80;
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&b[16..]);
        Token {
            id: Uuid::from_bytes(id),
            secret,
        }
    }

    /// Reads a token's text form. Space, tab, CR and LF around it are
    /// ignored; anything else that is not exactly a token is
    /// [`TokenError::Malformed`].
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let text = text.trim_matches([' ', '\t', '\r', '\n']);
        let body = text.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        if text.len() != TEXT_SIZE {
            return Err(TokenError::Malformed);
        }
        let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Malformed)?);
        if raw.len() != 52 {
            return Err(TokenError::Malformed);
        }
        let id = Uuid::from_slice(&raw[..16]).map_err(|_| TokenError::Malformed)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&raw[16..48]);
        let want = check(&id, &secret);
        if !bool::from(want.ct_eq(&raw[48..52])) || !version4(&id) {
            return Err(TokenError::Malformed);
        }
        Ok(Token { id, secret })
    }

    /// A token from its parts (the id must be a version 4 uuid).
    pub fn from_parts(id: Uuid, secret: &[u8; 32]) -> Result<Token, TokenError> {
        if !version4(&id) {
            return Err(TokenError::Malformed);
        }
        Ok(Token {
            id,
            secret: Zeroizing::new(*secret),
        })
    }

    /// The token id: public, the name the server knows it by.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The text form: shown once, when the token is made.
    pub fn reveal(&self) -> String {
        let mut raw = Zeroizing::new(Vec::with_capacity(52));
        raw.extend_from_slice(self.id.as_bytes());
        raw.extend_from_slice(&self.secret[..]);
        raw.extend_from_slice(&check(&self.id, &self.secret));
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw[..]))
    }

    /// HKDF-SHA256(ikm = secret, salt = token id, info, 32).
    pub fn derive(&self, info: &str) -> Zeroizing<[u8; 32]> {
        let h = Hkdf::<Sha256>::new(Some(self.id.as_bytes()), &self.secret[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        h.expand(info.as_bytes(), &mut out[..])
            .expect("32 bytes is a valid HKDF length");
        out
    }

    /// Every key of the token.
    pub fn keys(&self) -> Keys {
        Keys {
            token_id: self.id,
            ed25519: SigningKey::from_bytes(&self.derive(INFO_ED25519)),
            x25519: self.derive(INFO_X25519),
            xwing_seed: self.derive(INFO_XWING),
            cache: self.derive(INFO_CACHE),
            anchor: self.derive(INFO_ANCHOR),
        }
    }
}

/// The keys a token derives from its secret.
pub struct Keys {
    /// The token id.
    pub token_id: Uuid,
    ed25519: SigningKey,
    x25519: Zeroizing<[u8; 32]>,
    xwing_seed: Zeroizing<[u8; 32]>,
    cache: Zeroizing<[u8; 32]>,
    anchor: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The public halves of a token's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Public {
    /// The token id.
    pub token_id: Uuid,
    /// The X25519 public key.
    pub x25519: [u8; 32],
    /// The Ed25519 public key.
    pub ed25519: [u8; 32],
    /// The X-Wing public key (1216 bytes).
    pub xwing: Vec<u8>,
}

impl Keys {
    /// The Ed25519 signing key.
    pub fn ed25519(&self) -> &SigningKey {
        &self.ed25519
    }

    /// The X25519 private key, as X25519 takes it.
    pub fn x25519_private(&self) -> &[u8; 32] {
        &self.x25519
    }

    /// The X-Wing seed.
    pub fn xwing_seed(&self) -> &[u8; 32] {
        &self.xwing_seed
    }

    /// The key that seals this token's offline cache.
    pub fn cache_key(&self) -> &[u8; 32] {
        &self.cache
    }

    /// The public halves.
    pub fn public(&self) -> Public {
        Public {
            token_id: self.token_id,
            x25519: x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*self.x25519)).to_bytes(),
            ed25519: self.ed25519.verifying_key().to_bytes(),
            xwing: crate::xwing::public_key(&self.xwing_seed),
        }
    }

    /// Signs the token's key record; base64 of the signature.
    pub fn sign_record(&self) -> Result<String, TokenError> {
        let m = self.public().record_message()?;
        Ok(crate::b64::encode(&self.ed25519.sign(&m).to_bytes()))
    }

    /// The anchor: HMAC-SHA256(anchor key, anchor message).
    pub fn anchor(&self, creator: Uuid, creator_ed25519: &[u8; 32]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.anchor[..]).expect("HMAC takes any key size");
        mac.update(&anchor_message(self.token_id, creator, creator_ed25519));
        mac.finalize().into_bytes().into()
    }

    /// Checks, in constant time, that `anchor` vouches for `creator` and its
    /// Ed25519 key.
    pub fn check_anchor(&self, creator: Uuid, creator_ed25519: &[u8; 32], anchor: &[u8]) -> Result<(), TokenError> {
        if bool::from(self.anchor(creator, creator_ed25519).ct_eq(anchor)) {
            Ok(())
        } else {
            Err(TokenError::BadAnchor)
        }
    }

    /// Signs the login message for `nonce` and `audience`.
    pub fn sign_login(&self, nonce: &[u8], audience: &str) -> Result<[u8; 64], TokenError> {
        let m = login_message(self.token_id, nonce, audience)?;
        Ok(self.ed25519.sign(&m).to_bytes())
    }
}

/// The identity of a token's key record: "token:" and the id's canonical
/// text.
pub fn identity(token_id: Uuid) -> String {
    format!("{IDENTITY_PREFIX}{token_id}")
}

impl Public {
    /// The token's key record, version 2 of docs/crypto.md §3:
    /// `"zsm v2 key-record" || 0x00 || token_id || u8(len(identity)) ||
    /// identity || x25519 || ed25519 || xwing`.
    pub fn record_message(&self) -> Result<Vec<u8>, TokenError> {
        crate::xwing::check_public_key(&self.xwing).map_err(TokenError::BadRecord)?;
        if crate::keyrecord::small_order(&self.ed25519) {
            return Err(TokenError::BadRecord("the Ed25519 key is a point of small order"));
        }
        let id = identity(self.token_id);
        let mut m = Vec::with_capacity(RECORD_LABEL.len() + 16 + 1 + id.len() + 64 + self.xwing.len());
        m.extend_from_slice(RECORD_LABEL);
        m.extend_from_slice(self.token_id.as_bytes());
        m.push(id.len() as u8);
        m.extend_from_slice(id.as_bytes());
        m.extend_from_slice(&self.x25519);
        m.extend_from_slice(&self.ed25519);
        m.extend_from_slice(&self.xwing);
        Ok(m)
    }

    /// Checks the record's signature (canonical base64 of 64 bytes) under
    /// the record's own Ed25519 key.
    pub fn verify_record(&self, signature: &str) -> Result<(), TokenError> {
        let m = self.record_message()?;
        crate::keyrecord::verify_ed25519(&self.ed25519, &m, signature).map_err(TokenError::BadRecord)
    }
}

/// `"zsm v1 token-anchor" || 0x00 || token_id || creator || creator_ed25519`.
pub fn anchor_message(token_id: Uuid, creator: Uuid, creator_ed25519: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ANCHOR_LABEL.len() + 64);
    m.extend_from_slice(ANCHOR_LABEL);
    m.extend_from_slice(token_id.as_bytes());
    m.extend_from_slice(creator.as_bytes());
    m.extend_from_slice(creator_ed25519);
    m
}

/// `"zsm v1 machine-login" || 0x00 || token_id || nonce (32) ||
/// u8(len(audience)) || audience`, audience 1 to 255 bytes.
pub fn login_message(token_id: Uuid, nonce: &[u8], audience: &str) -> Result<Vec<u8>, TokenError> {
    if nonce.len() != NONCE_SIZE {
        return Err(TokenError::BadLogin("the nonce must be 32 bytes"));
    }
    if audience.is_empty() || audience.len() > 255 {
        return Err(TokenError::BadLogin("the audience must be 1 to 255 bytes"));
    }
    let mut m = Vec::with_capacity(LOGIN_LABEL.len() + 16 + NONCE_SIZE + 1 + audience.len());
    m.extend_from_slice(LOGIN_LABEL);
    m.extend_from_slice(token_id.as_bytes());
    m.extend_from_slice(nonce);
    m.push(audience.len() as u8);
    m.extend_from_slice(audience.as_bytes());
    Ok(m)
}

/// Whether `signature` is the token's login signature over `nonce` and
/// `audience` under `ed25519_public`.
pub fn verify_login(token_id: Uuid, ed25519_public: &[u8; 32], nonce: &[u8], audience: &str, signature: &[u8]) -> bool {
    let Ok(m) = login_message(token_id, nonce, audience) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    !crate::keyrecord::small_order(ed25519_public) && crate::keyrecord::verify_raw(ed25519_public, &m, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_character() {
        let t = Token::generate();
        let text = t.reveal();
        assert_eq!(text.len(), TEXT_SIZE);
        let back = Token::parse(&format!(" {text}\r\n")).expect("parses");
        assert_eq!(back.id(), t.id());
        assert_eq!(back.reveal(), text);
        assert_eq!(format!("{back:?}"), "[redacted]");
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in PREFIX.len()..text.len() {
            for c in alphabet.chars() {
                let mut b = text.clone().into_bytes();
                if b[i] == c as u8 {
                    continue;
                }
                b[i] = c as u8;
                let s = String::from_utf8(b).expect("ascii");
                assert_eq!(Token::parse(&s).err(), Some(TokenError::Malformed), "{s}");
            }
        }
    }

    #[test]
    fn login_and_anchor() {
        let k = Token::generate().keys();
        let p = k.public();
        let sig = k.sign_record().expect("signs");
        assert_eq!(p.verify_record(&sig), Ok(()));
        let nonce = [9u8; 32];
        let s = k.sign_login(&nonce, "zsm-api").expect("signs");
        assert!(verify_login(k.token_id, &p.ed25519, &nonce, "zsm-api", &s));
        assert!(!verify_login(k.token_id, &p.ed25519, &nonce, "zsm-api-2", &s));
        let creator = Uuid::new_v4();
        let a = k.anchor(creator, &[7; 32]);
        assert_eq!(k.check_anchor(creator, &[7; 32], &a), Ok(()));
        assert_eq!(k.check_anchor(creator, &[8; 32], &a), Err(TokenError::BadAnchor));
    }
}
