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
use zsm_core::grant::{self, Grant, GrantError, GrantV2};
use zsm_core::kdf::{self, KdfError, KdfParams};
use zsm_core::keyrecord::Record as KeyRecord;
use zsm_core::machinetoken;
use zsm_core::manifest::{self, ManifestError};
use zsm_core::memberlog::{self, LogError};
use zsm_core::secret_key::SecretKey;
use zsm_core::srp;
use zsm_core::trust::{self, Fingerprint, Identity, TrustError};

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

/// A decimal u64 given as a string (the vectors' encoding of 64-bit
/// integers), written canonically.
fn dec(v: &Value, k: &str) -> u64 {
    let t = s(v, k);
    let n: u64 = t.parse().unwrap_or_else(|e| panic!("{k} = {t:?}: {e}"));
    assert_eq!(n.to_string(), t, "{k} is not canonical decimal");
    n
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
    m.insert("key_record.json", check_key_record);
    m.insert("srp_blake2b_3072.json", check_srp);
    m.insert("flow.json", check_flow);
    m.insert("fingerprint.json", check_fingerprint);
    m.insert("pins.json", check_pins);
    m.insert("vault_log.json", check_vault_log);
    m.insert("manifest.json", check_manifest);
    m.insert("identity.json", check_identity);
    m.insert("token.json", check_token);
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
    let t = n(v, "type");
    let typ = Type::from_byte(u8::try_from(t).expect("a type byte")).unwrap_or_else(|| panic!("adInput type {t}"));
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
    eq("ed25519Public", &a.ed25519_public(), &h(tc, "ed25519Public"))?;
    // Version 2: the X-Wing seed, and the public key it yields (derived here
    // and published in the bundle).
    match (a.xwing_seed(), tc.get("xwingSeed")) {
        (None, None) => Ok(()),
        (Some(seed), Some(_)) => {
            eq("xwingSeed", seed, &h(tc, "xwingSeed"))?;
            eq("xwingPublic", &zsm_core::xwing::public_key(seed), &h(tc, "xwingPublic"))?;
            let published = b.xwing_public().map_err(bundle_class)?.unwrap_or_default();
            eq("published xwingPublic", &published, &h(tc, "xwingPublic"))
        }
        _ => fail(
            "mismatch",
            "an X-Wing key where the vector has none, or none where it has one",
        ),
    }
}

fn check_hpke(g: &Value, tc: &Value) -> Outcome {
    if s(g, "type") == "open_v2" {
        return check_hpke_v2(g, tc);
    }
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

/// HPKE version 2: the info with the generation, the public key derived
/// from skR (the X-Wing seed, or the X25519 scalar), then opening.
fn check_hpke_v2(g: &Value, tc: &Value) -> Outcome {
    let kem = n(g, "kemId") as u16;
    assert_eq!((n(g, "kdfId"), n(g, "aeadId")), (1, 3), "HPKE suite");
    let (vault, user, gen_) = (uuid(tc, "vaultId"), uuid(tc, "userId"), dec(tc, "generation"));
    eq("info", &grant::vault_key_info_v2(vault, user, gen_), &h(tc, "info"))?;
    let sk = h32(tc, "skR");
    let private = match kem {
        grant::KEM_XWING => {
            eq("pkR", &zsm_core::xwing::public_key(&sk), &h(tc, "pkR"))?;
            grant::PrivateKey::XWing(&sk)
        }
        grant::KEM_X25519 => {
            let pk = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(sk));
            eq("pkR", pk.as_bytes(), &h(tc, "pkR"))?;
            grant::PrivateKey::X25519(&sk)
        }
        k => panic!("open_v2: KEM 0x{k:04x}"),
    };
    let k = match grant::open_vault_key_v2(private, vault, user, gen_, s(tc, "sealed")) {
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
    )?;
    // The encrypt direction: seal with this implementation to pkR, open
    // with skR.
    let pk = h(tc, "pkR");
    let recipient = if kem == grant::KEM_XWING {
        grant::RecipientKey::XWing(pk)
    } else {
        grant::RecipientKey::X25519(pk.try_into().expect("32 bytes"))
    };
    let (sealed, used) =
        grant::seal_vault_key_v2(&recipient, vault, user, gen_, &k).map_err(|e| ("other".to_owned(), e.to_string()))?;
    assert_eq!(used, kem);
    let again = grant::open_vault_key_v2(private, vault, user, gen_, &sealed)
        .map_err(|e| ("other".to_owned(), e.to_string()))?;
    eq("vaultKey sealed here", again.as_ref(), k.as_ref())
}

fn check_grant(g: &Value, tc: &Value) -> Outcome {
    match s(g, "type") {
        "verify" => {}
        "verify_v2" => return check_grant_v2(g, tc),
        "key_commitment" | "key_chain" => return check_key_chain(g, tc),
        t => panic!("grant.json: unknown group type {t:?}"),
    }
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

fn check_grant_v2(g: &Value, tc: &Value) -> Outcome {
    let signer = ed25519_dalek::SigningKey::from_bytes(&h32(g, "signerSeed"));
    assert_eq!(
        signer.verifying_key().to_bytes().to_vec(),
        h(g, "signerPublic"),
        "signerPublic"
    );
    let gr = GrantV2 {
        vault_id: uuid(tc, "vaultId"),
        user_id: uuid(tc, "userId"),
        granted_by: uuid(tc, "grantedBy"),
        role: opt_s(tc, "role").to_owned(),
        generation: dec(tc, "generation"),
        kem: n(tc, "kemId") as u16,
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
    let has_xwing = tc["recipientHasXwing"]
        .as_bool()
        .unwrap_or_else(|| panic!("tcId {}: recipientHasXwing", tc["tcId"]));
    gr.verify(opt_s(tc, "signature"), &public)
        .map_err(|e| ("bad_signature".to_owned(), e.to_string()))?;
    match grant::check_kem(gr.kem, has_xwing) {
        Ok(()) => {}
        Err(e @ GrantError::Downgrade) => return fail("downgrade", e),
        Err(e) => return fail("other", e),
    }
    match gr.sign(&signer) {
        Ok(sig) if sig == s(tc, "signature") => Ok(()),
        _ => fail("mismatch", "signature differs when signing again"),
    }
}

fn commitment_map(tc: &Value, k: &str) -> BTreeMap<u64, [u8; 32]> {
    tc[k]
        .as_object()
        .unwrap_or_else(|| panic!("tcId {}: no {k}", tc["tcId"]))
        .keys()
        .map(|g| (g.parse().expect("generation"), h32(&tc[k], g)))
        .collect()
}

fn check_key_chain(g: &Value, tc: &Value) -> Outcome {
    let vault = uuid(tc, "vaultId");
    let class = |e: GrantError| match e {
        GrantError::KeyCommitment(_) => ("key_commitment".to_owned(), e.to_string()),
        GrantError::Chain(_) => ("chain".to_owned(), e.to_string()),
        e => ("other".to_owned(), e.to_string()),
    };
    if s(g, "type") == "key_commitment" {
        let gen_ = dec(tc, "generation");
        let key = h32(tc, "key");
        // The vector's commitment is what the log holds; the key is
        // accepted only if it matches.
        grant::check_key_commitment(&key, vault, gen_, &h32(tc, "commitment")).map_err(class)?;
        return eq(
            "commitment",
            &grant::key_commitment(&key, vault, gen_),
            &h(tc, "commitment"),
        );
    }
    let chain = grant::Chain {
        vault_id: vault,
        wrapped: tc["wrapped"]
            .as_object()
            .expect("wrapped")
            .iter()
            .map(|(g, w)| (g.parse().expect("generation"), w.as_str().expect("base64").to_owned()))
            .collect(),
        commitments: commitment_map(tc, "commitments"),
    };
    let got = chain
        .keys(
            dec(tc, "newestGeneration"),
            &h32(tc, "newestKey"),
            dec(tc, "oldestGeneration"),
        )
        .map_err(class)?;
    let want = commitment_map(tc, "keys");
    if got.len() != want.len() {
        return fail("mismatch", format!("{} keys, want {}", got.len(), want.len()));
    }
    for (g, k) in &want {
        eq(&format!("key {g}"), got.get(g).map_or(&[][..], |k| k.as_ref()), k)?;
    }
    Ok(())
}

fn check_key_record(g: &Value, tc: &Value) -> Outcome {
    assert_eq!(s(g, "type"), "verify");
    let bad = |e: zsm_core::keyrecord::KeyRecordError| ("bad_signature".to_owned(), e.to_string());
    // Tests without a version are version 1; a version 1 test with an
    // X-Wing key, or a version 2 test without one, cannot be encoded.
    let version = tc
        .get("version")
        .map_or(zsm_core::keyrecord::V1, |_| n(tc, "version") as u32);
    let xwing = tc.get("xwingPublic").and_then(Value::as_str);
    let rec = KeyRecord::from_published(
        version,
        uuid(tc, "userId"),
        s(tc, "identity"),
        s(tc, "x25519Public"),
        s(tc, "ed25519Public"),
        xwing,
    )
    .map_err(bad)?;
    if let Ok(m) = rec.message() {
        eq("message", &m, &h(tc, "message"))?;
    }
    rec.verify(s(tc, "signature")).map_err(bad)?;
    // A valid version 2 record's X-Wing key is the one its seed yields.
    if rec.version() == zsm_core::keyrecord::V2 {
        let public = zsm_core::xwing::public_key(&h32(tc, "xwingSeed"));
        eq("xwingPublic", rec.xwing.as_deref().unwrap_or_default(), &public)?;
    }
    // Ed25519 is deterministic: signing again gives the same bytes.
    let signer = ed25519_dalek::SigningKey::from_bytes(&h32(tc, "signerSeed"));
    match rec.sign(&signer) {
        Ok(sig) if sig == s(tc, "signature") => Ok(()),
        _ => fail("mismatch", "signature differs when signing again"),
    }
}

fn ident(v: &Value) -> Result<Identity, TrustError> {
    Identity::from_slice(uuid(v, "userId"), s(v, "identity"), &h(v, "ed25519Public"))
}

fn idents(v: &Value) -> Vec<Identity> {
    v.as_array()
        .expect("keys")
        .iter()
        .map(|k| ident(k).expect("a key of the group"))
        .collect()
}

fn check_fingerprint(g: &Value, tc: &Value) -> Outcome {
    let class = |e: TrustError| {
        let c = match e {
            TrustError::BadIdentity(_) => "bad_identity",
            TrustError::BadQr => "bad_qr",
            TrustError::Mismatch => "mismatch",
            _ => "other",
        };
        (c.to_owned(), e.to_string())
    };
    let i = ident(tc).map_err(class)?;
    match s(g, "type") {
        "fingerprint" => {
            let input = i.fingerprint_input().map_err(class)?;
            eq("input", &input, &h(tc, "input"))?;
            let d = i.digest().map_err(class)?;
            eq("digest", &d.0, &h(tc, "digest"))?;
            eq("fingerprint", &d.fingerprint().0, &h(tc, "fingerprint"))?;
            eq(
                "safetyNumber",
                d.safety_number().as_bytes(),
                s(tc, "safetyNumber").as_bytes(),
            )?;
            eq("qr", d.qr().as_bytes(), s(tc, "qr").as_bytes())
        }
        "qr" => {
            trust::match_qr(s(tc, "qr"), &i).map_err(class)?;
            let fp = trust::parse_qr(s(tc, "qr")).map_err(class)?;
            eq("fingerprint", &fp.0, &h(tc, "fingerprint"))
        }
        t => panic!("fingerprint.json: unknown group type {t:?}"),
    }
}

fn pin_class(e: TrustError) -> (String, String) {
    let c = match &e {
        TrustError::MalformedPins(_) => "malformed",
        TrustError::NotPinned(_) => "not_pinned",
        TrustError::KeyChanged(_) => "key_changed",
        TrustError::Downgrade(_) => "downgrade",
        TrustError::BadIdentity(_) => "bad_record",
        TrustError::Envelope(e) => return env_class(*e),
        _ => "other",
    };
    (c.to_owned(), e.to_string())
}

fn check_pins(g: &Value, tc: &Value) -> Outcome {
    let other = |e: TrustError| ("other".to_owned(), e.to_string());
    match s(g, "type") {
        "parse" => {
            let set = trust::pins::parse_pin_set(s(tc, "pins").as_bytes()).map_err(pin_class)?;
            eq("canonical", set.marshal().as_bytes(), s(tc, "canonical").as_bytes())
        }
        "check" => {
            let set = trust::pins::parse_pin_set(s(tc, "pins").as_bytes()).map_err(other)?;
            let r = &tc["record"];
            let rec = trust::Record {
                identity: ident(r).map_err(pin_class)?,
                version: n(r, "version") as u32,
                xwing_public: r.get("xwingPublic").map(|_| h(r, "xwingPublic")),
            };
            let (p, raised) = set.check(&rec).map_err(pin_class)?;
            let want_raised = tc["raised"].as_bool().expect("raised");
            if raised != want_raised || p.record_version != rec.version {
                return fail(
                    "mismatch",
                    format!("raised {raised}, record version {}", p.record_version),
                );
            }
            match &rec.xwing_public {
                Some(k) => eq(
                    "xwing hash",
                    &p.xwing_sha256.unwrap_or_default(),
                    &<sha2::Sha256 as sha2::Digest>::digest(k),
                ),
                None => Ok(()),
            }
        }
        "merge" => {
            let local = trust::pins::parse_pin_set(s(tc, "pins").as_bytes()).map_err(other)?;
            let remote = trust::pins::parse_pin_set(s(tc, "remote").as_bytes()).map_err(other)?;
            let (m, conflicts) = trust::merge(&local, &remote);
            let got: Vec<&str> = conflicts.iter().map(|c| c.identity.as_str()).collect();
            let want: Vec<&str> = tc
                .get("conflicts")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|c| c.as_str().expect("identity")).collect())
                .unwrap_or_default();
            if got != want {
                return fail("mismatch", format!("conflicts {got:?}, want {want:?}"));
            }
            eq("canonical", m.marshal().as_bytes(), s(tc, "canonical").as_bytes())
        }
        "sealed" => {
            let set = trust::pins::open_pin_set(
                &h32(tc, "accountKey"),
                uuid(tc, "userId"),
                dec(tc, "revision"),
                s(tc, "sealed"),
            )
            .map_err(pin_class)?;
            eq("canonical", set.marshal().as_bytes(), s(tc, "canonical").as_bytes())
        }
        t => panic!("pins.json: unknown group type {t:?}"),
    }
}

fn log_class(e: LogError) -> (String, String) {
    let c = match &e {
        LogError::Malformed(_) => "malformed",
        LogError::WrongVault(_) => "wrong_vault",
        LogError::BrokenChain(_) => "broken_chain",
        LogError::BadCreate(_) => "bad_create",
        LogError::UnknownSigner { .. } => "unknown_signer",
        LogError::KeyMismatch { .. } => "key_mismatch",
        LogError::BadSignature(_) => "bad_signature",
        LogError::NotMember(_) => "not_member",
        LogError::AlreadyMember(_) => "already_member",
        LogError::BadSubject(_) => "bad_subject",
        LogError::NoAuthority(_) => "no_authority",
        LogError::LastOwner(_) => "last_owner",
        LogError::Generation(_) => "generation",
        LogError::Fork(_) => "fork",
        LogError::Rollback { .. } => "rollback",
        LogError::Invitation(_) => "invitation",
        LogError::NotAMember => "not_a_member",
        LogError::Key(_) => "other",
    };
    // The class the Go SDK wraps every refusal in.
    assert_eq!(
        e.is_tampered(),
        !matches!(c, "rollback" | "invitation" | "not_a_member"),
        "{c}"
    );
    (c.to_owned(), e.to_string())
}

fn rows(v: &Value) -> Result<Vec<memberlog::Signed>, LogError> {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| memberlog::parse_row(s(r, "message"), s(r, "signature")))
        .collect()
}

fn head(v: &Value) -> memberlog::Head {
    memberlog::Head {
        seq: dec(v, "seq"),
        hash: h32(v, "hash"),
    }
}

fn check_vault_log(g: &Value, tc: &Value) -> Outcome {
    let keys = match tc.get("keys").or(g.get("keys")) {
        Some(k) => idents(k),
        None => Vec::new(),
    };
    match s(g, "type") {
        "entry" => check_entry(&tc["entry"], &keys),
        "parse" => memberlog::parse(&h(tc, "message")).map(|_| ()).map_err(log_class),
        "replay" => {
            let rows = rows(&tc["rows"]).map_err(log_class)?;
            let st = memberlog::replay(uuid(g, "vaultId"), &rows, &keys).map_err(log_class)?;
            check_replay(&st, tc)
        }
        "open" => {
            let rows = rows(&tc["rows"]).map_err(log_class)?;
            let remembered = tc.get("remembered").map(head).unwrap_or_default();
            let pinned: Vec<(Uuid, Vec<u8>)> = tc
                .get("pinned")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| (uuid(p, "userId"), h(p, "fingerprint")))
                .collect();
            let is_pinned = |u: Uuid, fp: &Fingerprint| pinned.iter().any(|(pu, pf)| *pu == u && pf == &fp.0);
            let me = &tc["self"];
            let r = memberlog::open(
                uuid(g, "vaultId"),
                &rows,
                &keys,
                &remembered,
                uuid(me, "userId"),
                &Fingerprint(h32(me, "fingerprint")),
                &is_pinned,
            );
            // Who invited (and when) is part of the result either way.
            let inv = match &r {
                Ok((_, inv)) => Some(inv),
                Err(LogError::Invitation(inv)) => Some(inv),
                Err(_) => None,
            };
            if let Some(inv) = inv {
                let creator = tc["creator"].as_bool().expect("creator");
                if inv.by != uuid(tc, "invitedBy") || inv.seq != dec(tc, "invitedBySeq") || inv.creator != creator {
                    return fail("mismatch", format!("invitation {inv:?}"));
                }
            }
            r.map(|_| ()).map_err(log_class)
        }
        t => panic!("vault_log.json: unknown group type {t:?}"),
    }
}

/// Encodes the entry by hand, compares it with the vector and this
/// implementation, and checks signature and hash.
fn check_entry(e: &Value, keys: &[Identity]) -> Outcome {
    let (vault, subject, signer) = (uuid(e, "vaultId"), uuid(e, "subject"), uuid(e, "signer"));
    let role = opt_s(e, "role");
    let mut m = b"zsm v1 vault-log\x00".to_vec();
    m.extend_from_slice(vault.as_bytes());
    m.extend_from_slice(&dec(e, "seq").to_be_bytes());
    m.extend(h(e, "prev"));
    m.push(n(e, "op") as u8);
    m.extend_from_slice(subject.as_bytes());
    m.push(role.len() as u8);
    m.extend_from_slice(role.as_bytes());
    m.extend(h(e, "subjectFingerprint"));
    m.extend_from_slice(&dec(e, "generation").to_be_bytes());
    m.extend(h(e, "keyCommitment"));
    m.extend_from_slice(signer.as_bytes());
    m.extend_from_slice(&dec(e, "unixMilli").to_be_bytes());
    eq("messageHex", &m, &h(e, "messageHex"))?;
    let parsed = memberlog::parse(&m).map_err(log_class)?;
    eq("marshal", &parsed.marshal().map_err(log_class)?, &m)?;
    let sig: [u8; 64] = h(e, "signatureHex").try_into().expect("64-byte signature");
    let signed = memberlog::Signed {
        entry: parsed,
        message: m,
        signature: sig,
    };
    eq("hash", &signed.hash(), &h(e, "hash"))?;
    let public = keys
        .iter()
        .find(|k| k.user_id == signer)
        .map(|k| k.ed25519_public)
        .ok_or(("bad_signature".to_owned(), "no key for the signer".to_owned()))?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&public).expect("a point");
    ed25519_dalek::Verifier::verify(&vk, &signed.message, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|e| ("bad_signature".to_owned(), e.to_string()))
}

fn check_replay(st: &memberlog::State, tc: &Value) -> Outcome {
    let want = tc["members"].as_array().expect("members");
    let got = st.members();
    if got.len() != want.len() {
        return fail("mismatch", format!("{} members, want {}", got.len(), want.len()));
    }
    for (m, w) in got.iter().zip(want) {
        if m.user_id != uuid(w, "userId")
            || m.role != s(w, "role")
            || m.fingerprint.0[..] != h(w, "fingerprint")[..]
            || m.added_by != uuid(w, "addedBy")
            || m.added_seq != dec(w, "addedSeq")
        {
            return fail("mismatch", format!("member {m:?}, want {w}"));
        }
    }
    let commitments = commitment_map(tc, "commitments");
    if commitments.len() as u64 != st.generation() || st.generation() != dec(tc, "generation") {
        return fail("mismatch", "generation differs");
    }
    for (g, c) in &commitments {
        eq(&format!("commitment {g}"), &st.commitment(*g).unwrap_or_default(), c)?;
    }
    if st.head() != head(&tc["head"])
        || st.last_cut() != dec(tc, "lastCut")
        || Some(st.rotation_due()) != tc["rotationDue"].as_bool()
    {
        return fail("mismatch", "head, last cut or rotation due differs");
    }
    Ok(())
}

fn manifest_class(e: ManifestError) -> (String, String) {
    let c = match &e {
        ManifestError::Malformed(_) => "malformed",
        ManifestError::WrongVault(_) => "wrong_vault",
        ManifestError::LogMismatch(_) => "log_mismatch",
        ManifestError::NotMember(_) => "not_member",
        ManifestError::NoAuthority(_) => "no_authority",
        ManifestError::BadSignature => "bad_signature",
        ManifestError::Stale { .. } => "stale",
        ManifestError::Generation { .. } => "generation",
        ManifestError::Fork(_) => "fork",
        ManifestError::Rollback { .. } => "rollback",
        ManifestError::Listing(_) => "listing",
        ManifestError::MetaRevision { .. } => "meta_revision",
        ManifestError::Log(_) => "other",
    };
    assert_eq!(e.is_rollback(), c == "rollback");
    (c.to_owned(), e.to_string())
}

fn items(v: &Value) -> Vec<manifest::Item> {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|i| manifest::Item {
            id: uuid(i, "id"),
            revision: dec(i, "revision"),
            generation: dec(i, "generation"),
        })
        .collect()
}

fn check_manifest(g: &Value, tc: &Value) -> Outcome {
    match s(g, "type") {
        "manifest" => {
            let mj = &tc["manifest"];
            let mut b = b"zsm v1 vault-manifest\x00".to_vec();
            b.extend_from_slice(uuid(mj, "vaultId").as_bytes());
            b.extend_from_slice(&dec(mj, "version").to_be_bytes());
            b.extend(h(mj, "prev"));
            b.extend_from_slice(&dec(mj, "keyGeneration").to_be_bytes());
            b.extend_from_slice(&dec(mj, "logSeq").to_be_bytes());
            b.extend(h(mj, "logHash"));
            b.extend_from_slice(&dec(mj, "metaRevision").to_be_bytes());
            b.extend_from_slice(&dec(mj, "secretCount").to_be_bytes());
            b.extend(h(mj, "itemsDigest"));
            eq("message", &b, &h(tc, "message"))?;
            let m = manifest::parse(&h(tc, "message")).map_err(manifest_class)?;
            eq("marshal", &m.marshal().map_err(manifest_class)?, &b)
        }
        "parse" => manifest::parse(&h(tc, "message")).map(|_| ()).map_err(manifest_class),
        "digest" => {
            let its = items(&tc["items"]);
            let d = manifest::digest(&its).ok_or(("duplicate".to_owned(), "an id twice".to_owned()))?;
            eq("digest", &d, &h(tc, "digest"))
        }
        "accept" => {
            let log = rows(&g["log"]).expect("the group's log parses");
            let len = dec(tc, "logLength") as usize;
            let st = memberlog::replay(uuid(g, "vaultId"), &log[..len], &idents(&g["keys"]))
                .unwrap_or_else(|e| panic!("tcId {}: the group's log does not replay: {e}", tc["tcId"]));
            let row = &tc["row"];
            let signed = manifest::parse_row(s(row, "message"), s(row, "signature"), uuid(row, "signer"))
                .map_err(manifest_class)?;
            let seen = tc
                .get("seen")
                .map(|v| manifest::Seen {
                    version: dec(v, "version"),
                    hash: h32(v, "hash"),
                })
                .unwrap_or_default();
            let ns = manifest::accept(&signed, &st, &seen, &items(&tc["listing"]), dec(tc, "metaRevision"))
                .map_err(manifest_class)?;
            let want = &tc["newSeen"];
            if ns.version != dec(want, "version") || ns.hash[..] != h(want, "hash")[..] {
                return fail("mismatch", format!("new seen {ns:?}"));
            }
            Ok(())
        }
        t => panic!("manifest.json: unknown group type {t:?}"),
    }
}

/// Identity normalization and the sign-up rules, on the Unicode version the
/// group names (the tables of this build must be that version: another one
/// could normalize an identity differently and lock an account out).
fn check_identity(g: &Value, tc: &Value) -> Outcome {
    let version = s(g, "unicodeVersion");
    assert_eq!(zsm_core::identity::UNICODE_VERSION, version, "identity tables");
    let (a, b, c) = unicode_normalization::UNICODE_VERSION;
    assert_eq!(format!("{a}.{b}.{c}"), version, "unicode-normalization's tables");
    match s(g, "type") {
        "normalize" => {
            let input = h(tc, "input");
            let text = std::str::from_utf8(&input).map_err(|e| ("bad_identity".to_owned(), e.to_string()))?;
            let got = zsm_core::identity::normalize(text).map_err(|e| ("bad_identity".to_owned(), e.to_string()))?;
            eq("normalized", got.as_bytes(), s(tc, "normalized").as_bytes())?;
            // The normal form is a fixed point.
            match zsm_core::identity::normalize(&got) {
                Ok(again) if again == got => Ok(()),
                _ => fail("mismatch", "the normal form does not normalize to itself"),
            }
        }
        "new_identity" => {
            let id = s(tc, "identity");
            assert_eq!(
                zsm_core::identity::normalize(id).as_deref(),
                Ok(id),
                "tcId {}: not in normal form",
                tc["tcId"]
            );
            zsm_core::identity::check_new_identity(id).map_err(|e| {
                let c = match e {
                    zsm_core::identity::NewIdentityError::ReplacementCharacter => "replacement_character",
                    zsm_core::identity::NewIdentityError::MixedScripts => "mixed_scripts",
                    zsm_core::identity::NewIdentityError::Reserved => "reserved",
                };
                (c.to_owned(), e.to_string())
            })
        }
        t => panic!("identity.json: unknown group type {t:?}"),
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
        ("key_record.json", "message"),
        ("srp_blake2b_3072.json", "v"),
        ("flow.json", "plaintext"),
        ("fingerprint.json", "digest"),
        ("pins.json", "canonical"),
        ("vault_log.json", "generation"),
        ("manifest.json", "digest"),
        ("identity.json", "normalized"),
        ("token.json", "check"),
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
        let text = s(tc, field);
        bad[field] = Value::String(match (srp::unhex(text), text.parse::<u64>()) {
            // A decimal number: one more.
            (_, Ok(d)) if !text.starts_with('0') || text == "0" => (d + 1).to_string(),
            // Hex bytes: one bit flipped.
            (Some(mut v), _) if !v.is_empty() => {
                v[0] ^= 1;
                srp::hex(&v)
            }
            // Text: one character more.
            _ => format!("{text} "),
        });
        assert!(run(g, &bad).is_err(), "{name}: a wrong {field} went unnoticed");
    }
}

/// The token of a vector's tokenId and secret.
fn token_of(tc: &Value) -> machinetoken::Token {
    machinetoken::Token::from_parts(uuid(tc, "tokenId"), &h32(tc, "secret"))
        .unwrap_or_else(|e| panic!("tcId {}: {e}", tc["tcId"]))
}

fn b64_32(tc: &Value, k: &str) -> [u8; 32] {
    zsm_core::b64::decode(s(tc, k))
        .and_then(|b| b.try_into().ok())
        .unwrap_or_else(|| panic!("tcId {}: {k} is not 32 bytes of base64", tc["tcId"]))
}

fn check_token(g: &Value, tc: &Value) -> Outcome {
    match s(g, "type") {
        "parse" => {
            let t =
                machinetoken::Token::parse(opt_s(tc, "text")).map_err(|e| ("malformed".to_owned(), e.to_string()))?;
            let raw = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                t.reveal().trim_start_matches(machinetoken::PREFIX),
            )
            .expect("reveal is base64url");
            eq("token id", t.id().as_bytes(), uuid(tc, "tokenId").as_bytes())?;
            eq("secret", &raw[16..48], &h(tc, "secret"))?;
            eq("check", &raw[48..], &h(tc, "check"))?;
            eq(
                "text",
                t.reveal().as_bytes(),
                s(tc, "text").trim_matches([' ', '\t', '\r', '\n']).as_bytes(),
            )
        }
        "derive" => {
            let t = token_of(tc);
            for (k, info) in [
                ("infoEd25519", machinetoken::INFO_ED25519),
                ("infoX25519", machinetoken::INFO_X25519),
                ("infoXWing", machinetoken::INFO_XWING),
                ("infoCache", machinetoken::INFO_CACHE),
                ("infoAnchor", machinetoken::INFO_ANCHOR),
            ] {
                assert_eq!(s(tc, k), info, "tcId {}: {k}", tc["tcId"]);
            }
            eq(
                "ed25519 seed",
                &t.derive(machinetoken::INFO_ED25519)[..],
                &h(tc, "ed25519Seed"),
            )?;
            eq(
                "x25519 private",
                &t.derive(machinetoken::INFO_X25519)[..],
                &h(tc, "x25519Private"),
            )?;
            eq(
                "x-wing seed",
                &t.derive(machinetoken::INFO_XWING)[..],
                &h(tc, "xwingSeed"),
            )?;
            eq(
                "anchor key",
                &t.derive(machinetoken::INFO_ANCHOR)[..],
                &h(tc, "anchorKey"),
            )?;
            let k = t.keys();
            let p = k.public();
            eq("cache key", k.cache_key(), &h(tc, "cacheKey"))?;
            eq("ed25519 public", &p.ed25519, &h(tc, "ed25519Public"))?;
            eq("x25519 public", &p.x25519, &h(tc, "x25519Public"))?;
            eq("x-wing public", &p.xwing, &h(tc, "xwingPublic"))
        }
        "record" => {
            let id = uuid(tc, "tokenId");
            assert_eq!(
                s(tc, "identity"),
                machinetoken::identity(id),
                "tcId {}: identity",
                tc["tcId"]
            );
            let p = machinetoken::Public {
                token_id: id,
                x25519: b64_32(tc, "x25519PublicB64"),
                ed25519: b64_32(tc, "ed25519PublicB64"),
                xwing: zsm_core::b64::decode(s(tc, "xwingPublicB64")).expect("x-wing key in base64"),
            };
            p.verify_record(opt_s(tc, "signature"))
                .map_err(|e| ("bad_signature".to_owned(), e.to_string()))?;
            let m = p.record_message().expect("a verified record has a message");
            eq("message", &m, &h(tc, "message"))?;
            let seed = h32(tc, "ed25519Seed");
            let sig = ed25519_dalek::Signer::sign(&ed25519_dalek::SigningKey::from_bytes(&seed), &m);
            eq(
                "signature",
                zsm_core::b64::encode(&sig.to_bytes()).as_bytes(),
                s(tc, "signature").as_bytes(),
            )
        }
        "anchor" => {
            let k = token_of(tc).keys();
            let creator = uuid(tc, "creatorId");
            let ed = h32(tc, "creatorEd25519Public");
            k.check_anchor(creator, &ed, &h(tc, "anchor"))
                .map_err(|e| ("bad_anchor".to_owned(), e.to_string()))?;
            eq(
                "message",
                &machinetoken::anchor_message(k.token_id, creator, &ed),
                &h(tc, "message"),
            )
        }
        "login" => {
            let id = uuid(tc, "tokenId");
            let public = h32(tc, "ed25519Public");
            let nonce = h(tc, "nonce");
            let aud = s(tc, "audience");
            let sig = h(tc, "signatureHex");
            if !machinetoken::verify_login(id, &public, &nonce, aud, &sig) {
                return fail("bad_signature", "the login signature does not verify");
            }
            let m = machinetoken::login_message(id, &nonce, aud).expect("a verified login has a message");
            eq("message", &m, &h(tc, "message"))?;
            let seed = h32(tc, "ed25519Seed");
            let again = ed25519_dalek::Signer::sign(&ed25519_dalek::SigningKey::from_bytes(&seed), &m);
            eq("signature", &again.to_bytes(), &sig)
        }
        "identity" => {
            let n =
                zsm_core::identity::normalize(s(tc, "identity")).map_err(|e| ("other".to_owned(), e.to_string()))?;
            eq("normal form", n.as_bytes(), s(tc, "normal").as_bytes())?;
            match zsm_core::identity::check_new_identity(&n) {
                Err(zsm_core::identity::NewIdentityError::Reserved) => fail("reserved", "the token form"),
                Err(e) => fail("other", e),
                Ok(()) => Ok(()),
            }
        }
        t => panic!("token.json: unknown group type {t:?}"),
    }
}
