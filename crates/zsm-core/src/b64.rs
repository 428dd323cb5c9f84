//! Canonical standard base64, the text form of every binary value zsm
//! stores (docs/crypto.md: "canonical standard base64 with padding").
//!
//! One byte string has exactly one text: padding is required, unused bits
//! must be zero, and no whitespace or line break is skipped. Go's decoder
//! skips CR and LF even in strict mode; the Go SDK refuses them separately,
//! and this decoder never accepts them at all, so both refuse the same texts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Encodes `data` as standard base64 with padding.
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes canonical standard base64 with padding; `None` for anything
/// else, including the empty string.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return None;
    }
    let b = STANDARD.decode(s.as_bytes()).ok()?;
    // The engine already refuses non-canonical padding and trailing bits;
    // re-encoding makes "one text per byte string" hold by construction.
    (STANDARD.encode(&b) == s).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_second_spellings() {
        assert_eq!(decode("AAAA").as_deref(), Some(&[0u8, 0, 0][..]));
        for bad in ["", "AAA", "AA==\n", "AB==", "AA=A", "-_==", " AAAA", "AA\r\nAA"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
