//! Identity normalization, exactly as Go's `srpgroup.NormalizeIdentity`.
//!
//! go-srp hashes the identity unsalted into every proof and into the
//! verifier, and the key derivation binds it into its HKDF info: a client
//! must hash exactly the bytes the server uses. The canonical form is
//! `NFKC(fold(NFKC(trim(s))))`, refused if normalizing it again would change
//! it, if it is not 3–254 bytes, or if it holds a rune that is not printable
//! or is a space.
//!
//! NFKC comes from `unicode-normalization` pinned at Unicode 15.0.0, the
//! version of Go's x/text tables; case folding and the printable-rune set
//! come from tables generated from Go's own `cases.Fold()`, `unicode.IsPrint`
//! and `unicode.IsSpace` (tests/rustcore keeps them current).

use unicode_normalization::UnicodeNormalization;

use crate::identity_tables::{ALLOWED, FOLD};

/// The Unicode version of the Go tables the identity rules come from.
pub use crate::identity_tables::GO_UNICODE_VERSION as UNICODE_VERSION;

/// An identity that cannot be normalized.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("identity must be 3 to 254 bytes of printable characters without spaces")]
pub struct IdentityError;

/// NFKC as Go's `norm.NFKC.String` computes it, including its stream-safe
/// rule (a combining grapheme joiner after 30 non-starters in a row).
pub fn nfkc(s: &str) -> String {
    s.chars().stream_safe().nfkc().collect()
}

fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match FOLD.binary_search_by_key(&c, |&(k, _)| k) {
            Ok(i) => out.push_str(FOLD[i].1),
            Err(_) => out.push(c),
        }
    }
    out
}

fn once(s: &str) -> String {
    nfkc(&fold(&nfkc(s.trim_matches(char::is_whitespace))))
}

fn allowed(c: char) -> bool {
    ALLOWED
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Returns the canonical form of an identity (an e-mail address or a user
/// name). Two spellings that normalize alike are one account.
pub fn normalize(s: &str) -> Result<String, IdentityError> {
    let n = once(s);
    // An identity whose normal form is not stable would let the two sides
    // hash different bytes: refused.
    if once(&n) != n {
        return Err(IdentityError);
    }
    if n.len() < 3 || n.len() > 254 || !n.chars().all(allowed) {
        return Err(IdentityError);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_unicode_version() {
        assert_eq!(crate::identity_tables::GO_UNICODE_VERSION, "15.0.0");
        assert_eq!(unicode_normalization::UNICODE_VERSION, (15, 0, 0));
        assert!(FOLD.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ALLOWED.windows(2).all(|w| w[0].1 < w[1].0));
    }

    #[test]
    fn equivalences() {
        for (a, b) in [
            ("\u{c4}lice@x.io", "A\u{308}lice@x.io"),
            ("\u{c4}lice@x.io", "\u{e4}lice@x.io"),
            ("ALICE@x.io", "alice@x.io"),
            ("  alice@x.io\t\n", "alice@x.io"),
            ("\u{ff41}lice@x.io", "alice@x.io"),
            ("stra\u{df}e@x.io", "strasse@x.io"),
            ("\u{212b}ngstr\u{f6}m", "\u{e5}ngstr\u{f6}m"),
        ] {
            let (na, nb) = (normalize(a).unwrap(), normalize(b).unwrap());
            assert_eq!(na, nb, "{a:?} vs {b:?}");
            assert_eq!(normalize(&na).unwrap(), na);
        }
        for bad in ["ab", "a b@x.io", "a\u{7}b@x.io", &"a".repeat(255)] {
            assert_eq!(normalize(bad), Err(IdentityError), "{bad:?}");
        }
    }
}
