//! The Secret Key (docs/crypto.md §1): 16 random bytes made at sign-up, kept
//! on the user's devices and in the emergency kit, never sent.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The account's 128-bit Secret Key. Its `Debug` never shows the key;
/// [`SecretKey::text`] is the one way to get its text form.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 16]);

/// Text that is not a Secret Key.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("not a valid Secret Key (ZSM1-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XX)")]
pub struct SecretKeyError;

const PREFIX: &[u8] = b"ZSM1";
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ENCODED_LEN: usize = 26;

fn base32(data: &[u8; 16]) -> String {
    let mut out = String::with_capacity(ENCODED_LEN);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

impl SecretKey {
    /// A fresh random Secret Key.
    pub fn generate() -> SecretKey {
        let mut b = [0u8; 16];
        crate::random_bytes(&mut b);
        SecretKey(b)
    }

    /// The key's bytes.
    pub fn from_bytes(b: [u8; 16]) -> SecretKey {
        SecretKey(b)
    }

    /// The key's bytes (they go into HKDF as its salt).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The canonical text form: `ZSM1-` and the 16 bytes in RFC 4648 base32
    /// (upper case, no padding, 26 characters) in groups of 6 joined by `-`.
    pub fn text(&self) -> String {
        let s = base32(&self.0);
        let groups: Vec<&str> = s
            .as_bytes()
            .chunks(6)
            .map(|c| std::str::from_utf8(c).expect("ASCII"))
            .collect();
        format!("ZSM1-{}", groups.join("-"))
    }

    /// Parses the text form. ASCII space, tab, CR, LF and `-` are dropped
    /// anywhere and ASCII `a`–`z` upper-cased (never Unicode case mapping:
    /// `ſ` must not become `S`); what is left must be `ZSM1` and exactly 26
    /// base32 characters whose 2 unused bits are zero, so a key has one
    /// canonical text.
    pub fn parse(s: &str) -> Result<SecretKey, SecretKeyError> {
        if s.len() > 256 {
            return Err(SecretKeyError);
        }
        let buf: Vec<u8> = s
            .bytes()
            .filter(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'-'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let rest = buf.strip_prefix(PREFIX).ok_or(SecretKeyError)?;
        if rest.len() != ENCODED_LEN {
            return Err(SecretKeyError);
        }
        let mut out = [0u8; 16];
        let (mut acc, mut bits, mut n) = (0u32, 0u32, 0usize);
        for &c in rest {
            let v = ALPHABET.iter().position(|&a| a == c).ok_or(SecretKeyError)? as u32;
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out[n] = (acc >> bits) as u8;
                n += 1;
                acc &= (1 << bits) - 1;
            }
        }
        // 26 characters carry 130 bits: the 2 left over must be zero.
        if n != 16 || acc != 0 {
            return Err(SecretKeyError);
        }
        Ok(SecretKey(out))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_redaction() {
        let k = SecretKey::generate();
        assert_eq!(SecretKey::parse(&k.text()).unwrap(), k);
        assert_eq!(SecretKey::parse(&k.text().to_lowercase()).unwrap(), k);
        assert_eq!(format!("{k:?}"), "SecretKey([redacted])");
    }
}
