//! X-Wing, the hybrid KEM of bundle version 2 (docs/crypto.md §3):
//! ML-KEM-768 combined with X25519, HPKE KEM `MLKEM768-X25519` (id `0x647a`)
//! of draft-ietf-hpke-pq, as Go's `crypto/hpke.MLKEM768X25519()` implements
//! it. The `hpke` crate's `XWing` is the same construction (checked against
//! spec/vectors, which Go generated): the private key is a 32-byte seed,
//! expanded with SHAKE256 into the ML-KEM-768 seed (d || z) and the X25519
//! scalar; the public key is the ML-KEM-768 encapsulation key (1184 bytes)
//! followed by the X25519 public key (32).

use hpke::kem::XWing;
use hpke::{Deserializable, Kem, Serializable};

/// Size of a seed (the private key).
pub const SEED_SIZE: usize = 32;
/// Size of a public key: ML-KEM-768 encapsulation key || X25519 key.
pub const PUBLIC_KEY_SIZE: usize = 1216;
/// Size of an encapsulation: ML-KEM-768 ciphertext (1088) || X25519 share (32).
pub const ENC_SIZE: usize = 1120;
/// The HPKE KEM id.
pub const KEM_ID: u16 = 0x647a;

/// The public key of the X-Wing key with this seed.
pub fn public_key(seed: &[u8; SEED_SIZE]) -> Vec<u8> {
    let sk = <XWing as Kem>::PrivateKey::from_bytes(seed).expect("any 32 bytes are an X-Wing seed");
    XWing::sk_to_pk(&sk).to_bytes().to_vec()
}

/// Checks that `public` is an X-Wing public key others can seal to: 1216
/// bytes whose ML-KEM-768 half passes FIPS 203's encapsulation key check
/// (every coefficient below q), which Go's crypto/hpke applies too.
pub fn check_public_key(public: &[u8]) -> Result<(), &'static str> {
    if public.len() != PUBLIC_KEY_SIZE {
        return Err("not 1216 bytes");
    }
    <XWing as Kem>::PublicKey::from_bytes(public)
        .map(|_| ())
        .map_err(|_| "not a valid ML-KEM-768 encapsulation key")
}

/// Whether the X25519 share of an X-Wing encapsulation is a point of small
/// order, for which the X25519 shared secret is all zeros whatever the
/// recipient's key. Go's crypto/ecdh refuses that shared secret, so Go
/// cannot open such an encapsulation; the `hpke` crate's X-Wing would,
/// so the caller refuses it first, and both clients open the same set.
pub(crate) fn non_contributory(enc: &[u8]) -> bool {
    let Some(share) = enc.get(ENC_SIZE - 32..ENC_SIZE) else {
        return true;
    };
    let share: [u8; 32] = share.try_into().expect("32 bytes");
    // A clamped scalar is 8·k with 0 < k < ℓ, so the product is the identity
    // exactly for the points of order dividing 8 (on the curve or its twist).
    x25519_dalek::x25519([0x5a; 32], share) == [0u8; 32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_shares_are_found() {
        let mut enc = vec![7u8; ENC_SIZE];
        assert!(!non_contributory(&enc), "a random share");
        for low in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            enc[ENC_SIZE - 32..].copy_from_slice(&low);
            assert!(non_contributory(&enc));
        }
        // The generator is not of small order.
        let mut nine = [0u8; 32];
        nine[0] = 9;
        enc[ENC_SIZE - 32..].copy_from_slice(&nine);
        assert!(!non_contributory(&enc));
        assert!(non_contributory(&enc[..10]));
    }

    #[test]
    fn seeds_give_valid_public_keys() {
        let p = public_key(&[3; 32]);
        assert_eq!(p.len(), PUBLIC_KEY_SIZE);
        check_public_key(&p).unwrap();
        // Coefficients at q (0xd01 = 3329) in the first 12-bit slot.
        let mut bad = p.clone();
        bad[0] = 0x01;
        bad[1] = (bad[1] & 0xf0) | 0x0d;
        assert!(check_public_key(&bad).is_err());
    }
}
