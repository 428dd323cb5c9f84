//! The SRP-6a client of go-srp v0.6.7's BLAKE2b variant, with the pinned
//! RFC 5054 3072-bit group and g = 5 (docs/auth.md, spec/vectors/srp_blake2b_3072.json).
//!
//! ```text
//! x = H(H(I) || H(p) || s)                  v = g^x mod N
//! k = H(N || pad(g))                        A = g^a mod N
//! u = H(pad(A) || pad(B))                   S = (B - k·v)^(a + u·x) mod N
//! K = H(S)                                  M = H(K || A || B || H(I) || s || N || g)
//! server proof = H(K || M)
//! ```
//!
//! H is BLAKE2b-256; pad() left-pads to 384 bytes; every other number is its
//! minimal big-endian bytes. The group and hash live here, in code: nothing a
//! server sends can choose them. The server's B and salt are checked before
//! any arithmetic, and the session is refused unless the server's proof
//! matches. The modular exponentiations are constant-time.

use std::fmt;
use std::sync::OnceLock;

use blake2::{Blake2b256, Digest};
use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U256, U3072, U4096};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Size of the group in bits.
pub const BITS: u32 = 3072;
/// Size of N in bytes: salts, A, B and v are at most this long.
pub const FIELD_BYTES: usize = 384;
/// The generator.
pub const G: u8 = 5;

/// The RFC 5054 3072-bit prime.
pub const N_HEX: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e208e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff";

const N: U3072 = U3072::from_be_hex(N_HEX);

fn params() -> &'static FixedMontyParams<{ U3072::LIMBS }> {
    static P: OnceLock<FixedMontyParams<{ U3072::LIMBS }>> = OnceLock::new();
    P.get_or_init(|| FixedMontyParams::new_vartime(Odd::new(N).expect("N is odd")))
}

/// Why an SRP value or exchange was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum SrpError {
    /// B (or another public value) is not canonical lower-case hex without
    /// leading zeros.
    #[error("SRP value is not canonical lower-case hex")]
    Encoding,
    /// The value is outside 1 < x < N-1: B ≡ 0 (and 1, N-1) would let
    /// whoever sent it predict the session key.
    #[error("SRP value is outside the group")]
    Range,
    /// The salt is not 384 bytes of lower-case hex.
    #[error("SRP salt has the wrong size or encoding")]
    Salt,
    /// u = 0 (go-srp refuses it too).
    #[error("SRP scrambler is zero")]
    ZeroScrambler,
    /// The server could not prove it knows the verifier.
    #[error("the server's SRP proof is wrong; refusing the session")]
    BadServerProof,
}

/// BLAKE2b-256 of the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// H(I): the identity hash that enters the proofs and the verifier.
pub fn identity_hash(identity: &str) -> [u8; 32] {
    hash(&[identity.as_bytes()])
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * b.len());
    for &x in b {
        s.push(D[usize::from(x >> 4)] as char);
        s.push(D[usize::from(x & 15)] as char);
    }
    s
}

/// Minimal big-endian bytes (no leading zeros; empty for zero).
pub fn minimal(x: &U3072) -> Vec<u8> {
    let b = x.to_be_bytes();
    let b: &[u8] = b.as_ref();
    let first = b.iter().position(|&c| c != 0).unwrap_or(b.len());
    b[first..].to_vec()
}

fn padded(x: &U3072) -> Vec<u8> {
    let b = x.to_be_bytes();
    let b: &[u8] = b.as_ref();
    b.to_vec()
}

/// The canonical wire form of a public value: lower-case hex, no leading zeros.
pub fn format_public(x: &U3072) -> String {
    let h = hex(&minimal(x));
    h.strip_prefix('0').map(str::to_owned).unwrap_or(h)
}

/// Parses a public value (A, B, v) sent as hex and checks it is an element
/// of the group other than the degenerate ones: canonical lower-case hex
/// without leading zeros, at most as long as N, and 1 < x < N-1, all before
/// any arithmetic.
pub fn parse_public(s: &str) -> Result<U3072, SrpError> {
    if s.is_empty() || s.len() > 2 * FIELD_BYTES {
        return Err(SrpError::Range);
    }
    if s.starts_with('0') {
        return Err(SrpError::Encoding);
    }
    if !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return Err(SrpError::Encoding);
    }
    let padded = format!("{s:0>768}");
    let x = U3072::from_be_hex(&padded);
    let n_minus_1 = N.wrapping_sub(&U3072::ONE);
    if x.cmp_vartime(&U3072::ONE).is_le() || x.cmp_vartime(&n_minus_1).is_ge() {
        return Err(SrpError::Range);
    }
    Ok(x)
}

/// Parses an SRP salt sent as hex: go-srp makes salts as long as N, the only
/// size accepted, in lower-case hex.
pub fn parse_salt(s: &str) -> Result<Vec<u8>, SrpError> {
    if s.len() != 2 * FIELD_BYTES {
        return Err(SrpError::Salt);
    }
    let b = unhex(s).ok_or(SrpError::Salt)?;
    if hex(&b) != s {
        return Err(SrpError::Salt);
    }
    Ok(b)
}

/// Decodes hex (either case); `None` if it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

fn monty(x: &U3072) -> FixedMontyForm<{ U3072::LIMBS }> {
    FixedMontyForm::new(x, params())
}

fn hash_uint(h: &[u8; 32]) -> U256 {
    U256::from_be_slice(h)
}

fn widen<const L: usize>(x: &crypto_bigint::Uint<L>) -> U4096 {
    let b = x.to_be_bytes();
    let mut out = [0u8; 512];
    let b: &[u8] = b.as_ref();
    out[512 - b.len()..].copy_from_slice(b);
    U4096::from_be_slice(&out)
}

/// x = H(H(I) || H(p) || salt) as go-srp computes it.
pub fn x(identity: &str, secret: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(hash(&[&identity_hash(identity), &hash(&[secret]), salt]))
}

/// The verifier v = g^x mod N.
pub fn verifier(identity: &str, secret: &[u8], salt: &[u8]) -> U3072 {
    let x = hash_uint(&x(identity, secret, salt));
    monty(&U3072::from_u8(G)).pow_bounded_exp(&x, 256).retrieve()
}

/// What a client computes at sign-up from its SRP secret.
pub struct Registration {
    /// 384 random bytes.
    pub salt: Vec<u8>,
    /// v = g^x mod N.
    pub verifier: U3072,
}

/// Makes the SRP salt and verifier for `identity` and the SRP secret (never
/// the password: zsm passes a key derived from it).
pub fn register(identity: &str, secret: &[u8]) -> Registration {
    let mut salt = vec![0u8; FIELD_BYTES];
    crate::random_bytes(&mut salt);
    let v = verifier(identity, secret, &salt);
    Registration { salt, verifier: v }
}

/// k = H(N || pad(g)).
pub fn k() -> [u8; 32] {
    let mut g = [0u8; FIELD_BYTES];
    g[FIELD_BYTES - 1] = G;
    hash(&[&padded(&N), &g])
}

/// One SRP login from the client's side.
pub struct Client {
    identity_hash: [u8; 32],
    secret_hash: Zeroizing<[u8; 32]>,
    a: Zeroizing<Vec<u8>>,
    big_a: U3072,
    session: Option<Zeroizing<([u8; 32], [u8; 32])>>, // K, M
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("srp::Client([redacted])")
    }
}

/// The results of [`Client::generate`] that the vectors check.
pub struct Computed {
    /// u.
    pub u: U256,
    /// S.
    pub s: U3072,
    /// K.
    pub session_key: [u8; 32],
    /// M.
    pub m: [u8; 32],
}

impl Drop for Computed {
    fn drop(&mut self) {
        self.session_key.zeroize();
    }
}

impl Client {
    /// A client for `identity` (already normalized) with a fresh random
    /// secret exponent a, as long as the group like go-srp's.
    pub fn new(identity: &str, secret: &[u8]) -> Client {
        let mut a = Zeroizing::new(vec![0u8; FIELD_BYTES]);
        crate::random_bytes(&mut a);
        Client::with_a(identity, secret, &a)
    }

    /// A client with a given secret exponent (the test vectors fix it).
    pub fn with_a(identity: &str, secret: &[u8], a: &[u8]) -> Client {
        let a_int = Zeroizing::new(U3072::from_be_slice(&left_pad(a)));
        let big_a = monty(&U3072::from_u8(G)).pow(&*a_int).retrieve();
        Client {
            identity_hash: identity_hash(identity),
            secret_hash: Zeroizing::new(hash(&[secret])),
            a: Zeroizing::new(a.to_vec()),
            big_a,
            session: None,
        }
    }

    /// A, the client's public value.
    pub fn public(&self) -> &U3072 {
        &self.big_a
    }

    /// Computes the session from the server's salt and B (both already
    /// checked with [`parse_salt`] and [`parse_public`]) and returns M.
    pub fn generate(&mut self, salt: &[u8], b: &U3072) -> Result<Computed, SrpError> {
        let u_hash = hash(&[&padded(&self.big_a), &padded(b)]);
        let u = hash_uint(&u_hash);
        if bool::from(u.is_zero()) {
            return Err(SrpError::ZeroScrambler);
        }
        let xh = Zeroizing::new(hash(&[&self.identity_hash, &*self.secret_hash, salt]));
        let x = Zeroizing::new(hash_uint(&xh));
        let g = monty(&U3072::from_u8(G));
        let v = g.pow_bounded_exp(&*x, 256);
        let k = monty(&U3072::from_be_slice(&left_pad(&k())));
        let base = monty(b) - k * v;
        let a = Zeroizing::new(U4096::from_be_slice(&left_pad512(&self.a)));
        let exp = Zeroizing::new(a.wrapping_add(&widen(&u).wrapping_mul(&widen(&x))));
        let s = base.pow_bounded_exp(&*exp, BITS + 1).retrieve();
        let session_key = hash(&[&minimal(&s)]);
        let m = hash(&[
            &session_key,
            &minimal(&self.big_a),
            &minimal(b),
            &self.identity_hash,
            salt,
            &minimal(&N),
            &[G],
        ]);
        self.session = Some(Zeroizing::new((session_key, m)));
        Ok(Computed { u, s, session_key, m })
    }

    /// Checks the server's proof, H(K || M) as lower-case hex, in constant
    /// time. False before [`Client::generate`].
    pub fn server_ok(&self, proof: &str) -> bool {
        match &self.session {
            Some(km) => {
                let want = hex(&hash(&[&km.0, &km.1]));
                bool::from(want.as_bytes().ct_eq(proof.as_bytes()))
            }
            None => false,
        }
    }
}

fn left_pad(b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; FIELD_BYTES.max(b.len())];
    let n = out.len();
    out[n - b.len()..].copy_from_slice(b);
    out[n - FIELD_BYTES..].to_vec()
}

fn left_pad512(b: &[u8]) -> [u8; 512] {
    let mut out = [0u8; 512];
    out[512 - b.len()..].copy_from_slice(b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_constants() {
        assert_eq!(minimal(&N).len(), FIELD_BYTES);
        assert_eq!(N.bit_width(), BITS);
        assert_eq!(format_public(&U3072::from_u8(5)), "5");
        assert_eq!(parse_public("5"), Ok(U3072::from_u8(5)));
    }

    #[test]
    fn client_and_verifier_agree() {
        // A server computes S = (A·v^u)^b; the client's S must equal it.
        let salt = vec![7u8; FIELD_BYTES];
        let v = verifier("alice@example.com", b"secret", &salt);
        let mut c = Client::new("alice@example.com", b"secret");
        let b_priv = U3072::from_u8(77);
        let kv = monty(&U3072::from_be_slice(&left_pad(&k()))) * monty(&v);
        let big_b = (kv + monty(&U3072::from_u8(G)).pow(&b_priv)).retrieve();
        let out = c.generate(&salt, &big_b).unwrap();
        let server_s = (monty(c.public()) * monty(&v).pow(&out.u)).pow(&b_priv).retrieve();
        assert_eq!(out.s, server_s);
    }
}
