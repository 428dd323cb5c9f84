//! Checks zsm-core against every vector in spec/vectors, the files the Go
//! implementation is checked against too (docs/crypto.md, spec/README.md).
//!
//! Every file must have a checker here and every test in it must run: the
//! test counts them against each file's `numberOfTests` and fails on a file,
//! group type or result it does not know. Valid tests must reproduce every
//! output byte for byte; invalid ones must be refused with the named class.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use uuid::Uuid;
use zsm_core::bundle::{self, BundleError};
use zsm_core::envelope::{self, Context, EnvelopeError, Type};
use zsm_core::grant::{self, Grant, GrantError};
use zsm_core::kdf::{self, KdfError, KdfParams};
use zsm_core::secret_key::SecretKey;
use zsm_core::srp;

type Outcome = Result<(), (String, String)>;

fn fail(class: &str, detail: impl ToString) -> Outcome {
    Err((class.to_owned(), detail.to_string()))
}

fn eq(what: &str, got: &[u8], want: &[u8]) -> Outcome {
    if got == want {
        Ok(())
    } else {
        fail(
            "mismatch",
            format!("{what}: got {}, want {}", srp::hex(got), srp::hex(want)),
        )
    }
}

fn s<'a>(tc: &'a Value, k: &str) -> &'a str {
    tc.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("tcId {}: no string {k}", tc["tcId"]))
}

fn opt_s<'a>(tc: &'a Value, k: &str) -> &'a str {
    tc.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A hex member; absent means empty (the generator omits empty byte strings).
fn h(tc: &Value, k: &str) -> Vec<u8> {
    srp::unhex(opt_s(tc, k)).unwrap_or_else(|| panic!("tcId {}: {k} is not hex", tc["tcId"]))
}

fn h32(tc: &Value, k: &str) -> [u8; 32] {
    h(tc, k)
        .try_into()
        .unwrap_or_else(|_| panic!("tcId {}: {k} is not 32 bytes", tc["tcId"]))
}

fn uuid(tc: &Value, k: &str) -> Uuid {
    Uuid::parse_str(s(tc, k)).unwrap_or_else(|e| panic!("tcId {}: {k}: {e}", tc["tcId"]))
}

fn n(v: &Value, k: &str) -> u64 {
    v.get(k)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number {k} in {v}"))
}

fn kdf_params(v: &Value) -> KdfParams {
    serde_json::from_value(v.clone()).expect("kdf object")
}

/// Runs every test of one file through `run` (given the group and the
/// test) and returns how many ran.
fn run_file(name: &str, run: fn(&Value, &Value) -> Outcome) -> usize {
    let path = vectors_dir().join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let f: Value = serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(f["schema"], "zsm-vectors-v1", "{name}: schema");
    let declared = n(&f, "numberOfTests") as usize;
    let groups = f["testGroups"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no testGroups"));
    let mut ran = 0;
    let mut errors = Vec::new();
    for g in groups {
        for tc in g["tests"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: group without tests"))
        {
            let id = n(tc, "tcId");
            let result = s(tc, "result");
            assert!(
                result == "valid" || result == "invalid",
                "{name} tcId {id}: unknown result {result:?}"
            );
            let out = run(g, tc);
            ran += 1;
            match (result, out) {
                ("valid", Err((class, detail))) => {
                    errors.push(format!("tcId {id} ({}): {class}: {detail}", s(tc, "comment")))
                }
                ("invalid", Ok(())) => errors.push(format!(
                    "tcId {id} ({}): accepted, want {}",
                    s(tc, "comment"),
                    s(tc, "error")
                )),
                ("invalid", Err((class, detail))) if class != s(tc, "error") => errors.push(format!(
                    "tcId {id} ({}): refused as {class} ({detail}), want {}",
                    s(tc, "comment"),
                    s(tc, "error")
                )),
                _ => {}
            }
        }
    }
    assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
    assert!(
        ran > 0 && ran == declared,
        "{name}: ran {ran} tests, the file declares {declared}"
    );
    ran
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors")
}

fn checkers() -> BTreeMap<&'static str, fn(&Value, &Value) -> Outcome> {
    let mut m: BTreeMap<&'static str, fn(&Value, &Value) -> Outcome> = BTreeMap::new();
    m.insert("kdf.json", check_kdf);
    m.insert("secret_key.json", check_secret_key);
    m.insert("envelope.json", check_envelope);
    m.insert("bundle.json", check_bundle);
    m.insert("hpke_vault_key.json", check_hpke);
    m.insert("grant.json", check_grant);
    m.insert("srp_blake2b_3072.json", check_srp);
    m.insert("flow.json", check_flow);
    m
}

/// Every file in spec/vectors has a checker, every checker a file, and
/// every vector of every file runs.
#[test]
fn every_vector_file_and_every_vector() {
    let mut files: Vec<String> = std::fs::read_dir(vectors_dir())
        .expect("spec/vectors")
        .map(|e| e.expect("dir entry").file_name().into_string().expect("UTF-8 name"))
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let checkers = checkers();
    let unchecked: Vec<&String> = files.iter().filter(|f| !checkers.contains_key(f.as_str())).collect();
    assert!(
        unchecked.is_empty(),
        "vector files without a Rust checker: {unchecked:?}"
    );
    let missing: Vec<&&str> = checkers.keys().filter(|k| !files.iter().any(|f| f == *k)).collect();
    assert!(missing.is_empty(), "checkers without a vector file: {missing:?}");
    let mut total = 0;
    for (name, run) in &checkers {
        let ran = run_file(name, *run);
        eprintln!("{name}: {ran} vectors checked");
        total += ran;
    }
    eprintln!("{total} vectors in {} files checked", checkers.len());
}

fn check_kdf(g: &Value, tc: &Value) -> Outcome {
    match s(g, "type") {
        "argon2id" => {
            let kpw = kdf::argon2id(
                &h(tc, "password"),
                &h(tc, "salt"),
                n(tc, "iterations") as u32,
                n(tc, "memoryKiB") as u32,
                n(tc, "parallelism") as u32,
            )
            .map_err(|e| ("other".to_owned(), e.to_string()))?;
            eq("kpw", kpw.as_ref(), &h(tc, "kpw"))
        }
        "hkdf_split" => {
            let id = s(tc, "identity");
            eq("infoSrp", &kdf::info(kdf::LABEL_SRP, id), &h(tc, "infoSrp"))?;
            eq("infoUnlock", &kdf::info(kdf::LABEL_UNLOCK, id), &h(tc, "infoUnlock"))?;
            let d = kdf::split(&h(tc, "kpw"), &h(tc, "secretKey"), id);
            eq("srpSecret", &d.srp_secret, &h(tc, "srpSecret"))?;
            eq("unlockKey", &d.unlock_key, &h(tc, "unlockKey"))
        }
        "derive" => {
            let sk = SecretKey::from_bytes(h(tc, "secretKey").try_into().expect("16 bytes"));
            let pw = h(tc, "password");
            if tc.get("passwordNfkc").is_some() {
                let typed = std::str::from_utf8(&pw).expect("valid tests have UTF-8 passwords");
                eq(
                    "passwordNfkc",
                    zsm_core::identity::nfkc(typed).as_bytes(),
                    &h(tc, "passwordNfkc"),
                )?;
            }
            match kdf::derive(&pw, &sk, s(tc, "identity"), &kdf_params(&tc["kdf"])) {
                Ok(d) => {
                    eq("srpSecret", &d.srp_secret, &h(tc, "srpSecret"))?;
                    eq("unlockKey", &d.unlock_key, &h(tc, "unlockKey"))
                }
                Err(e @ KdfError::WeakKdf(_)) => fail("weak_kdf", e),
                Err(e @ KdfError::BadPassword) => fail("bad_password", e),
                Err(e @ KdfError::BadIdentity) => fail("bad_identity", e),
            }
        }
        "params" => {
            // The object as authsvc sends it, verbatim: a value that does
            // not even fit the field types is refused like a weak one.
            let p: KdfParams = match serde_json::from_value(tc["kdf"].clone()) {
                Ok(p) => p,
                Err(e) => return fail("weak_kdf", e),
            };
            p.check().or_else(|e| fail("weak_kdf", e))
        }
        t => panic!("kdf.json: unknown group type {t:?}"),
    }
}

fn check_secret_key(g: &Value, tc: &Value) -> Outcome {
    assert_eq!(s(g, "type"), "parse");
    let k = SecretKey::parse(s(tc, "text")).map_err(|e| ("bad_secret_key".to_owned(), e.to_string()))?;
    if k.text() != s(tc, "canonical") {
        return fail("mismatch", "canonical text");
    }
    eq("key", k.as_bytes(), &h(tc, "key"))
}

fn env_class(e: EnvelopeError) -> (String, String) {
    let class = match e {
        EnvelopeError::Malformed => "malformed",
        EnvelopeError::UnsupportedVersion => "unsupported_version",
        EnvelopeError::WrongType => "wrong_type",
        EnvelopeError::Tampered => "tampered",
        EnvelopeError::BadKey => "other",
    };
    (class.to_owned(), e.to_string())
}

fn context(v: &Value) -> Context {
    let typ = match n(v, "type") {
        1 => Type::AccountKey,
        2 => Type::X25519Private,
        3 => Type::Ed25519Private,
        4 => Type::VaultMeta,
        5 => Type::Secret,
        t => panic!("adInput type {t}"),
    };
    Context {
        typ,
        vault_id: uuid(v, "vaultId"),
        object_id: uuid(v, "objectId"),
        revision: s(v, "revision").parse().expect("revision is a decimal u64"),
    }
}

fn check_envelope(g: &Value, tc: &Value) -> Outcome {
    let ctx = context(&tc["adInput"]);
    eq("ad", &ctx.ad(), &h(tc, "ad"))?;
    let key = h(tc, "key");
    let env = h(tc, "envelope");
    match s(g, "type") {
        "seal" => {
            let nonce: [u8; 24] = h(tc, "nonce").try_into().expect("24-byte nonce");
            let sealed = envelope::seal_with_nonce(&key, &ctx, &h(tc, "plaintext"), &nonce).map_err(env_class)?;
            eq("envelope", &sealed, &env)?;
            eq("commitment", &sealed[26..58], &h(tc, "commitment"))?;
        }
        "open" => {}
        t => panic!("envelope.json: unknown group type {t:?}"),
    }
    let pt = envelope::open(&key, &ctx, &env).map_err(env_class)?;
    // The text form opens the same way.
    envelope::open_string(&key, &ctx, &zsm_core::b64::encode(&env)).map_err(env_class)?;
    eq("plaintext", &pt, &h(tc, "plaintext"))
}

fn bundle_class(e: BundleError) -> (String, String) {
    let class = match e {
        BundleError::Malformed(_) => "malformed",
        BundleError::Unlock(_) => "unlock",
        BundleError::Tampered(_) => "tampered",
    };
    (class.to_owned(), e.to_string())
}

fn check_bundle(g: &Value, tc: &Value) -> Outcome {
    assert_eq!(s(g, "type"), "open");
    let b = bundle::parse_bundle(s(tc, "bundle").as_bytes()).map_err(bundle_class)?;
    let a = bundle::open_bundle(&b, &h32(tc, "unlockKey"), uuid(tc, "userId")).map_err(bundle_class)?;
    eq("accountKey", a.account_key(), &h(tc, "accountKey"))?;
    eq("x25519Private", a.x25519_private(), &h(tc, "x25519Private"))?;
    eq("x25519Public", &a.x25519_public(), &h(tc, "x25519Public"))?;
    eq("ed25519Seed", a.ed25519_seed(), &h(tc, "ed25519Seed"))?;
    eq("ed25519Public", &a.ed25519_public(), &h(tc, "ed25519Public"))
}

fn check_hpke(g: &Value, tc: &Value) -> Outcome {
    assert_eq!(s(g, "type"), "open");
    assert_eq!(
        (n(g, "kemId"), n(g, "kdfId"), n(g, "aeadId")),
        (0x20, 1, 3),
        "HPKE suite"
    );
    let (vault, user) = (uuid(tc, "vaultId"), uuid(tc, "userId"));
    eq("info", &grant::vault_key_info(vault, user), &h(tc, "info"))?;
    let sk = h32(tc, "skR");
    let pk = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(sk));
    eq("pkR", pk.as_bytes(), &h(tc, "pkR"))?;
    let k = match grant::open_vault_key(&sk, vault, user, s(tc, "sealed")) {
        Ok(k) => k,
        Err(e @ GrantError::BadSealedKey) => return fail("malformed", e),
        Err(e @ GrantError::OpenVaultKey) => return fail("does_not_open", e),
        Err(e) => return fail("other", e),
    };
    eq("vaultKey", k.as_ref(), &h(tc, "vaultKey"))?;
    let mut both = h(tc, "enc");
    both.extend(h(tc, "ciphertext"));
    eq(
        "sealed",
        &both,
        &zsm_core::b64::decode(s(tc, "sealed")).expect("valid sealed key"),
    )
}

fn check_grant(g: &Value, tc: &Value) -> Outcome {
    assert_eq!(s(g, "type"), "verify");
    let seed = h32(g, "signerSeed");
    let signer = ed25519_dalek::SigningKey::from_bytes(&seed);
    assert_eq!(
        signer.verifying_key().to_bytes().to_vec(),
        h(g, "signerPublic"),
        "signerPublic"
    );
    let gr = Grant {
        vault_id: uuid(tc, "vaultId"),
        user_id: uuid(tc, "userId"),
        granted_by: uuid(tc, "grantedBy"),
        role: opt_s(tc, "role").to_owned(),
        sealed_key: opt_s(tc, "sealedKey").to_owned(),
    };
    if let Some(m) = gr.message() {
        eq("message", &m, &h(tc, "message"))?;
    }
    let public: [u8; 32] = if tc.get("public").is_some() {
        h32(tc, "public")
    } else {
        h32(g, "signerPublic")
    };
    gr.verify(opt_s(tc, "signature"), &public)
        .map_err(|e| ("bad_signature".to_owned(), e.to_string()))?;
    // Ed25519 is deterministic: signing again gives the same bytes.
    match gr.sign(&signer) {
        Ok(sig) if sig == s(tc, "signature") => Ok(()),
        _ => fail("mismatch", "signature differs when signing again"),
    }
}

fn check_srp(g: &Value, tc: &Value) -> Outcome {
    assert_eq!(s(g, "N"), srp::N_HEX, "group N");
    assert_eq!(s(g, "g"), "05", "group g");
    assert_eq!(s(g, "hash"), "BLAKE2b-256", "group hash");
    let id = s(tc, "identity");
    let secret = h(tc, "srpSecret");
    let salt = h(tc, "salt");
    eq("identityHash", &srp::identity_hash(id), &h(tc, "identityHash"))?;
    let x = srp::x(id, &secret, &salt);
    eq("x", &strip(x.as_ref()), &h(tc, "x"))?;
    eq("v", &srp::minimal(&srp::verifier(id, &secret, &salt)), &h(tc, "v"))?;
    match s(g, "type") {
        "registration" => eq("secretHash", &srp::hash(&[&secret]), &h(tc, "secretHash")),
        "login" => {
            // The client's checks on B come first, then the math, then the
            // server's proof.
            let b = srp::parse_public(s(tc, "B")).map_err(|e| ("bad_b".to_owned(), e.to_string()))?;
            let salt_checked = srp::parse_salt(&srp::hex(&salt)).map_err(|e| ("other".to_owned(), e.to_string()))?;
            let mut c = srp::Client::with_a(id, &secret, &h(tc, "a"));
            eq("A", &srp::minimal(c.public()), &h(tc, "A"))?;
            eq("k", &strip(&srp::k()), &h(tc, "k"))?;
            let out = c
                .generate(&salt_checked, &b)
                .map_err(|e| ("other".to_owned(), e.to_string()))?;
            eq("u", &strip(&out.u.to_be_bytes()), &h(tc, "u"))?;
            eq("S", &srp::minimal(&out.s), &h(tc, "S"))?;
            eq("K", &out.session_key, &h(tc, "K"))?;
            eq("M", &out.m, &h(tc, "M"))?;
            if !c.server_ok(s(tc, "serverProof")) {
                return fail("bad_server_proof", "server proof differs");
            }
            Ok(())
        }
        t => panic!("srp: unknown group type {t:?}"),
    }
}

/// Minimal big-endian form of a number given as fixed-size bytes.
fn strip(b: &[u8]) -> Vec<u8> {
    let first = b.iter().position(|&c| c != 0).unwrap_or(b.len());
    b[first..].to_vec()
}

fn check_flow(g: &Value, tc: &Value) -> Outcome {
    assert_eq!(s(g, "type"), "flow");
    let other = |e: &dyn std::fmt::Display| ("other".to_owned(), e.to_string());
    let sk = SecretKey::parse(s(tc, "secretKeyText")).map_err(|e| other(&e))?;
    let d = kdf::derive(
        s(tc, "password").as_bytes(),
        &sk,
        s(tc, "identity"),
        &kdf_params(&tc["kdf"]),
    )
    .map_err(|e| other(&e))?;
    eq("srpSecret", &d.srp_secret, &h(tc, "srpSecret"))?;
    eq("unlockKey", &d.unlock_key, &h(tc, "unlockKey"))?;
    let (user, vault) = (uuid(tc, "userId"), uuid(tc, "vaultId"));
    let b = bundle::parse_bundle(s(tc, "bundle").as_bytes()).map_err(|e| other(&e))?;
    let a = bundle::open_bundle(&b, &d.unlock_key, user).map_err(|e| other(&e))?;
    eq("accountKey", a.account_key(), &h(tc, "accountKey"))?;
    let vk = grant::open_vault_key(a.x25519_private(), vault, user, s(tc, "sealedKey")).map_err(|e| other(&e))?;
    eq("vaultKey", vk.as_ref(), &h(tc, "vaultKey"))?;
    let gr = Grant {
        vault_id: vault,
        user_id: user,
        granted_by: user,
        role: s(tc, "grantRole").to_owned(),
        sealed_key: s(tc, "sealedKey").to_owned(),
    };
    gr.verify(s(tc, "grantSignature"), &b.ed25519_public().map_err(|e| other(&e))?)
        .map_err(|e| other(&e))?;
    let ctx = Context {
        typ: Type::Secret,
        vault_id: vault,
        object_id: uuid(tc, "secretId"),
        revision: s(tc, "revision").parse().expect("u64"),
    };
    let pt = envelope::open_string(vk.as_ref(), &ctx, s(tc, "secretEnvelope")).map_err(|e| other(&e))?;
    eq("plaintext", &pt, &h(tc, "plaintext"))
}

/// The checkers compare: a valid vector with one output changed fails.
#[test]
fn checkers_notice_a_wrong_output() {
    let corrupt = [
        ("kdf.json", "kpw"),
        ("secret_key.json", "key"),
        ("envelope.json", "plaintext"),
        ("bundle.json", "accountKey"),
        ("hpke_vault_key.json", "vaultKey"),
        ("grant.json", "message"),
        ("srp_blake2b_3072.json", "v"),
        ("flow.json", "plaintext"),
    ];
    let checkers = checkers();
    assert_eq!(corrupt.len(), checkers.len(), "every checker is tried");
    for (name, field) in corrupt {
        let data = std::fs::read(vectors_dir().join(name)).unwrap();
        let f: Value = serde_json::from_slice(&data).unwrap();
        let (g, tc) = f["testGroups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["tests"].as_array().unwrap().iter().map(move |t| (g, t)))
            .find(|(_, t)| {
                t["result"] == "valid" && t.get(field).and_then(Value::as_str).is_some_and(|s| !s.is_empty())
            })
            .unwrap_or_else(|| panic!("{name}: no valid test with {field}"));
        let run = checkers[name];
        assert_eq!(run(g, tc), Ok(()), "{name}: the untouched vector passes");
        let mut bad = tc.clone();
        let mut v = h(tc, field);
        v[0] ^= 1;
        bad[field] = Value::String(srp::hex(&v));
        assert!(run(g, &bad).is_err(), "{name}: a wrong {field} went unnoticed");
    }
}
