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

use crate::identity_tables::{ALLOWED, FOLD, SCRIPT_NAMES, SCRIPTS, UNKNOWN};

/// The Unicode version of the Go tables the identity rules come from.
pub use crate::identity_tables::GO_UNICODE_VERSION as UNICODE_VERSION;

/// An identity that cannot be normalized.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum IdentityError {
    /// Not 3–254 bytes of printable characters without spaces, or not stable.
    #[error("identity must be 3 to 254 bytes of printable characters without spaces")]
    Invalid,
    /// More than 30 combining marks in a row (see [`nfkc`]).
    #[error("identity has more than {MAX_NON_STARTERS} combining marks in a row")]
    TooManyMarks,
}

/// The stream-safe limit of UAX #15, which Go's normalizer enforces.
pub const MAX_NON_STARTERS: usize = 30;

/// Could `c` count as a non-starter in Go's stream-safe rule? A superset of
/// Go's set (canonical combining class other than 0, or combining with the
/// rune before it): every combining mark, and the Hangul vowel and final
/// jamo.
fn maybe_non_starter(c: char) -> bool {
    unicode_normalization::char::canonical_combining_class(c) != 0
        || unicode_normalization::char::is_combining_mark(c)
        || ('\u{1160}'..='\u{11ff}').contains(&c)
        || ('\u{d7b0}'..='\u{d7ff}').contains(&c)
}

/// The longest run of possible non-starters in the compatibility
/// decomposition of `s`. While it is at most [`MAX_NON_STARTERS`], Go's
/// normalizer never inserts its combining grapheme joiner, and [`nfkc`]
/// equals Go's `norm.NFKC.String`.
pub fn longest_mark_run(s: &str) -> usize {
    let (mut run, mut max) = (0, 0);
    for c in s.nfkd() {
        run = if maybe_non_starter(c) { run + 1 } else { 0 };
        max = max.max(run);
    }
    max
}

/// NFKC (Unicode 15.0.0). Equal to Go's `norm.NFKC.String` for every text
/// whose [`longest_mark_run`] is at most [`MAX_NON_STARTERS`]; beyond that
/// Go inserts U+034F by its own counting, which this crate does not copy:
/// callers refuse such text instead.
pub fn nfkc(s: &str) -> String {
    s.nfkc().collect()
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

fn once(s: &str) -> Result<String, IdentityError> {
    let trimmed = s.trim_matches(char::is_whitespace);
    if longest_mark_run(trimmed) > MAX_NON_STARTERS {
        return Err(IdentityError::TooManyMarks);
    }
    let folded = fold(&nfkc(trimmed));
    if longest_mark_run(&folded) > MAX_NON_STARTERS {
        return Err(IdentityError::TooManyMarks);
    }
    Ok(nfkc(&folded))
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
///
/// Identities with more than 30 combining marks in a row are refused
/// ([`IdentityError::TooManyMarks`]) although Go accepts them: Go's
/// normalizer breaks such runs with U+034F by rules of its own, and a
/// refusal is better than hashing other bytes than the server.
pub fn normalize(s: &str) -> Result<String, IdentityError> {
    let n = once(s)?;
    // An identity whose normal form is not stable would let the two sides
    // hash different bytes: refused.
    if once(&n)? != n {
        return Err(IdentityError::Invalid);
    }
    if n.len() < 3 || n.len() > 254 || !n.chars().all(allowed) {
        return Err(IdentityError::Invalid);
    }
    Ok(n)
}

/// Why a new identity cannot be registered (on top of [`normalize`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum NewIdentityError {
    /// U+FFFD, which only stands in for bytes that were not UTF-8.
    #[error("identity contains U+FFFD, the mark of text that was not valid UTF-8")]
    ReplacementCharacter,
    /// A part between '@' and '.' mixes writing systems (a Cyrillic or
    /// Greek letter in a Latin name, say), so it can pass for another
    /// identity.
    #[error("identity mixes writing systems within one part, so it can pass for another identity")]
    MixedScripts,
}

/// The script combinations UTS #39 allows at its highly restrictive level.
const ALLOWED_MIXES: [&[&str]; 3] = [
    &["Latin", "Han", "Hiragana", "Katakana"],
    &["Latin", "Han", "Bopomofo"],
    &["Latin", "Han", "Hangul"],
];

/// The script of `c` as Go's unicode.Scripts has it; `None` for Common and
/// Inherited (digits, punctuation, combining marks: shared by all).
fn script_of(c: char) -> Option<&'static str> {
    let i = SCRIPTS.partition_point(|&(_, hi, _)| hi < c);
    if let Some(&(lo, _, sc)) = SCRIPTS.get(i)
        && lo <= c
    {
        return Some(SCRIPT_NAMES[sc as usize]);
    }
    let j = UNKNOWN.partition_point(|&(_, hi)| hi < c);
    match UNKNOWN.get(j) {
        Some(&(lo, _)) if lo <= c => Some("Unknown"),
        _ => None,
    }
}

fn single_script(part: &str) -> bool {
    let mut seen: Vec<&str> = Vec::new();
    for sc in part.chars().filter_map(script_of) {
        if !seen.contains(&sc) {
            seen.push(sc);
        }
    }
    seen.len() <= 1 || ALLOWED_MIXES.iter().any(|mix| seen.iter().all(|s| mix.contains(s)))
}

/// The rules an identity must meet to be registered, on top of
/// [`normalize`] (it expects the normal form), as Go's
/// `srpgroup.CheckNewIdentity`: no U+FFFD, and each part between '@' and
/// '.' in one script besides the characters every script shares, or in one
/// of the combinations Japanese, Chinese and Korean are written in (UTS #39,
/// highly restrictive). authsvc refuses a sign-up that breaks them; the
/// client checks first so the user learns why before any key is made.
pub fn check_new_identity(identity: &str) -> Result<(), NewIdentityError> {
    if identity.contains('\u{fffd}') {
        return Err(NewIdentityError::ReplacementCharacter);
    }
    if identity.split(['@', '.']).filter(|p| !p.is_empty()).all(single_script) {
        Ok(())
    } else {
        Err(NewIdentityError::MixedScripts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts() {
        assert_eq!(script_of('a'), Some("Latin"));
        assert_eq!(script_of('1'), None);
        assert_eq!(script_of('\u{301}'), None, "inherited");
        assert_eq!(script_of('\u{430}'), Some("Cyrillic"));
        assert_eq!(script_of('\u{378}'), Some("Unknown"));
        assert!(SCRIPTS.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(UNKNOWN.windows(2).all(|w| w[0].1 < w[1].0));
        assert_eq!(check_new_identity("p\u{430}ypal"), Err(NewIdentityError::MixedScripts));
        assert_eq!(check_new_identity("ivan@\u{43f}\u{440}.rf"), Ok(()));
    }

    #[test]
    fn tables_match_the_unicode_version() {
        assert_eq!(crate::identity_tables::GO_UNICODE_VERSION, "15.0.0");
        assert_eq!(unicode_normalization::UNICODE_VERSION, (15, 0, 0));
        assert!(FOLD.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ALLOWED.windows(2).all(|w| w[0].1 < w[1].0));
    }

    #[test]
    fn long_runs_of_marks_are_refused() {
        let ok = format!("a{}b@x.io", "\u{301}".repeat(30));
        assert!(normalize(&ok).is_ok());
        let long = format!("a{}b@x.io", "\u{301}".repeat(31));
        assert_eq!(normalize(&long), Err(IdentityError::TooManyMarks));
        // Hangul vowels count too: a syllable ends in one.
        let hangul = format!("\u{ac00}{}", "\u{301}".repeat(30));
        assert_eq!(normalize(&hangul), Err(IdentityError::TooManyMarks));
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
            assert_eq!(normalize(bad), Err(IdentityError::Invalid), "{bad:?}");
        }
    }
}
