//! The password generator of the "add secret" screen: the same alphabets and
//! the same unbiased draw as `zsm set --generate` (cli/generate.go).

use zeroize::Zeroizing;

use crate::error::{AppError, AppResult};

/// Longest value the generator makes (the CLI's limit).
pub const MAX_LENGTH: usize = 4096;

/// The named alphabets, as in the CLI.
pub fn alphabet(name: &str) -> Option<&'static str> {
    Some(match name {
        "alnum" => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "alpha" => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "digits" => "0123456789",
        "hex" => "0123456789abcdef",
        // Letters, digits and punctuation that need no quoting in most
        // configuration formats: no quotes, backslash, backtick, space or $.
        "symbols" => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%&()*+,-./:;<=>?@[]^_{|}~",
        _ => return None,
    })
}

/// The number of 32-bit draws accepted for modulus n: floor(2^32 / n) * n.
fn rejection_limit(n: u32) -> u64 {
    (1u64 << 32) / u64::from(n) * u64::from(n)
}

/// A uniform index in [0, n): 32-bit draws at or above the largest multiple
/// of n are thrown away, so no index is favoured (a plain `v % n` would
/// favour the small ones whenever n does not divide 2^32).
fn uniform_index(draw: &mut impl FnMut() -> u32, n: usize) -> usize {
    let n32 = u32::try_from(n).expect("alphabets are small");
    let limit = rejection_limit(n32);
    loop {
        let v = u64::from(draw());
        if v < limit {
            return (v % u64::from(n32)) as usize;
        }
    }
}

fn os_draw() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    u32::from_be_bytes(b)
}

/// A new random value of `length` characters from the named alphabet.
pub fn generate(alphabet_name: &str, length: usize) -> AppResult<Zeroizing<String>> {
    generate_with(alphabet_name, length, &mut os_draw)
}

fn generate_with(alphabet_name: &str, length: usize, draw: &mut impl FnMut() -> u32) -> AppResult<Zeroizing<String>> {
    let chars: Vec<char> = alphabet(alphabet_name)
        .ok_or_else(|| {
            AppError::Invalid(format!(
                "unknown alphabet {alphabet_name:?}: use alnum, alpha, digits, hex or symbols"
            ))
        })?
        .chars()
        .collect();
    if !(1..=MAX_LENGTH).contains(&length) {
        return Err(AppError::Invalid(format!(
            "the length must be between 1 and {MAX_LENGTH}"
        )));
    }
    let mut out = Zeroizing::new(String::with_capacity(length));
    for _ in 0..length {
        out.push(chars[uniform_index(draw, chars.len())]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_alphabet() {
        for name in ["alnum", "alpha", "digits", "hex", "symbols"] {
            let a = alphabet(name).unwrap();
            for len in [1, 32, 200] {
                let v = generate(name, len).unwrap();
                assert_eq!(v.chars().count(), len);
                assert!(v.chars().all(|c| a.contains(c)), "{name}: {} outside", v.as_str());
            }
        }
    }

    #[test]
    fn refuses_bad_requests() {
        assert_eq!(generate("alnum", 0).unwrap_err().code(), "invalid_input");
        assert_eq!(generate("alnum", MAX_LENGTH + 1).unwrap_err().code(), "invalid_input");
        assert_eq!(generate("emoji", 10).unwrap_err().code(), "invalid_input");
    }

    #[test]
    fn draws_at_or_above_the_limit_are_rejected() {
        // 62 characters: the limit is floor(2^32/62)*62; a draw equal to it
        // must be thrown away, and the next draw used.
        let limit = rejection_limit(62);
        assert_eq!(limit, (1u64 << 32) / 62 * 62);
        let mut seq = vec![limit as u32, u32::MAX, 63].into_iter();
        let mut draw = || seq.next().unwrap();
        assert_eq!(uniform_index(&mut draw, 62), 1);
        let mut seq = vec![(limit - 1) as u32].into_iter();
        let mut draw = || seq.next().unwrap();
        assert_eq!(uniform_index(&mut draw, 62), ((limit - 1) % 62) as usize);
    }

    #[test]
    fn every_hex_digit_appears_about_equally() {
        let mut counts = [0usize; 16];
        for _ in 0..16 {
            for c in generate("hex", 4000).unwrap().chars() {
                counts[c.to_digit(16).unwrap() as usize] += 1;
            }
        }
        // Expected 4000 each; 5 standard deviations (~5*61) either side.
        for (i, n) in counts.iter().enumerate() {
            assert!((3690..=4310).contains(n), "digit {i:x} appeared {n} times");
        }
    }
}
