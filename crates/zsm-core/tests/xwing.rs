//! An X-Wing encapsulation whose X25519 share is a point of small order,
//! built by hand: a real ML-KEM-768 encapsulation to the recipient, the
//! X25519 share 0 (whose shared secret is all zeros), the X-Wing combiner
//! and RFC 9180's key schedule. The `hpke` crate opens it; Go's crypto/hpke
//! does not (crypto/ecdh refuses the all-zero secret), and neither does
//! zsm-core, so both clients open exactly the same sealed keys.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use hkdf::Hkdf;
use hpke::{Deserializable, OpModeR};
use sha2::Sha256;
use sha3::{Digest, Sha3_256};
use uuid::Uuid;
use zsm_core::grant::{self, GrantError, PrivateKey};
use zsm_core::xwing;

const SUITE: [u8; 10] = [b'H', b'P', b'K', b'E', 0x64, 0x7a, 0x00, 0x01, 0x00, 0x03];

fn labeled_extract(salt: &[u8], label: &[u8], ikm: &[u8]) -> Hkdf<Sha256> {
    let input = [b"HPKE-v1".as_slice(), &SUITE, label, ikm].concat();
    Hkdf::<Sha256>::new(Some(salt), &input)
}

fn labeled_expand(prk: &Hkdf<Sha256>, label: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let full = [&(len as u16).to_be_bytes()[..], b"HPKE-v1", &SUITE, label, info].concat();
    prk.expand(&full, &mut out).unwrap();
    out
}

fn extract_bytes(salt: &[u8], label: &[u8], ikm: &[u8]) -> Vec<u8> {
    let input = [b"HPKE-v1".as_slice(), &SUITE, label, ikm].concat();
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &input);
    prk.to_vec()
}

#[test]
fn a_share_of_small_order_is_refused_as_go_refuses_it() {
    let seed = [11u8; 32];
    let (vault, user, generation) = (Uuid::new_v4(), Uuid::new_v4(), 2);
    let vault_key = [0x42u8; 32];
    let pk = xwing::public_key(&seed);

    // ML-KEM-768 half: a genuine encapsulation to the recipient.
    let ek = ml_kem::EncapsulationKey768::new(pk[..1184].try_into().unwrap()).unwrap();
    let (ct_m, ss_m) = ek.encapsulate_deterministic(&[7u8; 32].into());
    // X25519 half: the share 0, so the X25519 secret is all zeros.
    let ct_x = [0u8; 32];
    let ss_x = [0u8; 32];
    let pk_x = &pk[1184..];
    let ss = Sha3_256::new()
        .chain_update(ss_m)
        .chain_update(ss_x)
        .chain_update(ct_x)
        .chain_update(pk_x)
        .chain_update(br"\.//^\")
        .finalize();

    // RFC 9180 base mode key schedule, single-shot seal (sequence 0).
    let info = grant::vault_key_info_v2(vault, user, generation);
    let psk_id_hash = extract_bytes(b"", b"psk_id_hash", b"");
    let info_hash = extract_bytes(b"", b"info_hash", &info);
    let ctx = [&[0u8][..], &psk_id_hash, &info_hash].concat();
    let secret = labeled_extract(&ss, b"secret", b"");
    let key = labeled_expand(&secret, b"key", &ctx, 32);
    let nonce = labeled_expand(&secret, b"base_nonce", &ctx, 12);
    let key: [u8; 32] = key.try_into().unwrap();
    let nonce: [u8; 12] = nonce.try_into().unwrap();
    let ct = ChaCha20Poly1305::new(&key.into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: &vault_key,
                aad: b"",
            },
        )
        .unwrap();
    let enc = [ct_m.as_slice(), &ct_x].concat();
    assert_eq!(enc.len(), xwing::ENC_SIZE);

    // The construction is right: the hpke crate alone opens it.
    let sk = <hpke::kem::XWing as hpke::Kem>::PrivateKey::from_bytes(&seed).unwrap();
    let encapped = <hpke::kem::XWing as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
    let opened = hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, hpke::kem::XWing>(
        &OpModeR::Base,
        &sk,
        &encapped,
        &info,
        &ct,
        b"",
    )
    .expect("the hand-made ciphertext is well formed");
    assert_eq!(opened, vault_key);

    // zsm-core refuses it, as Go does.
    let sealed = zsm_core::b64::encode(&[enc.as_slice(), &ct].concat());
    assert_eq!(
        grant::open_vault_key_v2(PrivateKey::XWing(&seed), vault, user, generation, &sealed),
        Err(GrantError::OpenVaultKey)
    );
}
