//! zsm-core against the real stack (run by the Go test tests/rustcore, which
//! starts a throwaway stack and sets ZSM_TEST_GATEWAY, ZSM_TEST_CLI,
//! ZSM_TEST_DIR and ZSM_TEST_IDENTITIES; compiled only with the
//! `stack-tests` feature). A missing variable fails the test: nothing skips.
#![cfg(feature = "stack-tests")]

mod common;

use std::sync::Arc;

use common::{EvilServer, cli, env, rows, test_config};
use uuid::Uuid;
use zsm_core::identity::IdentityError;
use zsm_core::kdf::KdfError;
use zsm_core::{Client, Error, FileState, SecretKey};

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap();
    zsm_core::srp::hex(&b)
}

fn expect_err<T>(r: Result<T, Error>, want: fn(&Error) -> bool, what: &str) {
    match r {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) if want(&e) => eprintln!("{what}: refused: {e}"),
        Err(e) => panic!("{what}: wrong refusal: {e:?}"),
    }
}

fn tampered(e: &Error) -> bool {
    matches!(e, Error::Tampered(_))
}

/// Every identity Go's srpgroup.NormalizeIdentity was given, normalized (or
/// refused) the same way here.
#[test]
fn identity_normalization_matches_go() {
    let path = env("ZSM_TEST_IDENTITIES");
    let want: usize = env("ZSM_TEST_IDENTITY_COUNT").parse().unwrap();
    let data = std::fs::read_to_string(path).unwrap();
    let (mut n, mut refused_marks) = (0, 0);
    let mut bad = Vec::new();
    for line in data.lines() {
        let (input, output) = line.split_once('\t').unwrap();
        let input = String::from_utf8(zsm_core::srp::unhex(input).unwrap()).unwrap();
        let got = match zsm_core::identity::normalize(&input) {
            Ok(s) => zsm_core::srp::hex(s.as_bytes()),
            // Refused on purpose (documented): Go breaks long runs of marks
            // with U+034F. Only such inputs may be refused where Go accepts.
            Err(IdentityError::TooManyMarks) => {
                assert!(
                    zsm_core::identity::longest_mark_run(&input) > 30 || output == "!" || output.contains("cd8f"),
                    "{input:?} refused for its marks, but has no long run"
                );
                refused_marks += 1;
                n += 1;
                continue;
            }
            Err(IdentityError::Invalid) => "!".to_owned(),
        };
        if got != output && bad.len() < 20 {
            bad.push(format!("{input:?}: go {output}, rust {got}"));
        }
        n += 1;
    }
    assert!(
        bad.is_empty(),
        "identity normalization differs from Go:\n{}",
        bad.join("\n")
    );
    assert_eq!(n, want, "identities checked");
    assert!(
        refused_marks < 200,
        "{refused_marks} identities refused for runs of marks"
    );
    eprintln!("{n} identities normalized as Go does ({refused_marks} refused for runs of more than 30 marks)");
}

/// A malicious server tampers with the answers the real client gets, through
/// a proxy in front of the real gateway. Every tampering is refused with the
/// named error; none is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malicious_server_is_detected() {
    let gateway = env("ZSM_TEST_GATEWAY");
    let evil = EvilServer::start(&gateway).await;
    let identity = format!("victim-{}@example.test", random_hex(5));
    let password = format!("correct horse {}", random_hex(4));
    let state = Arc::new(FileState::memory());
    let cfg = test_config(&evil.url, state.clone());
    let acct = Client::signup(&cfg, &identity, &password).await.unwrap();
    let sk = acct.secret_key;
    let c = Client::login(&cfg, &identity, &password, &sk).await.unwrap();

    let va = c.create_vault("alpha").await.unwrap();
    let vb = c.create_vault("beta").await.unwrap();
    let s1 = c.set_secret(&va, "API_KEY", "value-one").await.unwrap();
    c.set_secret(&va, "DB_PASSWORD", "value-two").await.unwrap();
    c.set_secret(&vb, "OTHER", "value-three").await.unwrap();
    // Control: honest answers are accepted.
    assert_eq!(c.secret(&va, "API_KEY").await.unwrap().value.as_str(), "value-one");

    // Swap the ciphertexts of two secrets.
    evil.set(rows("/rest/secrets", |rs| {
        if rs.len() == 2 {
            let a = rs[0]["ciphertext"].clone();
            rs[0]["ciphertext"] = rs[1]["ciphertext"].clone();
            rs[1]["ciphertext"] = a;
        }
    }));
    expect_err(c.secret(&va, "API_KEY").await, tampered, "swapped ciphertexts");
    evil.clear();

    // Move a secret of vault alpha into vault beta's listing.
    let captured = evil.capture("/rest/secrets", &va.id.to_string());
    c.secrets(&va).await.unwrap();
    let moved: serde_json::Value = serde_json::from_slice(&captured.take().expect("alpha's secrets captured")).unwrap();
    let mut moved = moved[0].clone();
    moved["vault_id"] = serde_json::json!(vb.id);
    evil.set(rows("/rest/secrets", move |rs| rs.push(moved.clone())));
    expect_err(c.secrets(&vb).await, tampered, "secret moved to another vault");
    evil.clear();

    // Serve an older revision after a newer one was seen.
    let old = evil.capture("/rest/secrets", &va.id.to_string());
    c.secret(&va, "API_KEY").await.unwrap();
    let old = old.take().expect("answer captured");
    evil.clear();
    c.set_secret(&va, "API_KEY", "value-one-v2").await.unwrap();
    assert_eq!(c.secret(&va, "API_KEY").await.unwrap().revision, s1.revision + 1);
    let vid = va.id.to_string();
    evil.set(Box::new(move |path: &str, body: Vec<u8>| {
        if path.starts_with("/rest/secrets") && path.contains(&vid) {
            old.clone()
        } else {
            body
        }
    }));
    expect_err(
        c.secret(&va, "API_KEY").await,
        |e| matches!(e, Error::Rollback(_)),
        "replayed older revision",
    );
    evil.clear();

    // Relabel revision 1's ciphertext as revision 2.
    let hist = c.history(&va, "API_KEY").await.unwrap();
    assert_eq!(hist.iter().map(|h| h.revision).collect::<Vec<_>>(), vec![2, 1]);
    let versions = evil.capture("/rest/secret_versions", "");
    c.history(&va, "API_KEY").await.unwrap();
    let versions: serde_json::Value = serde_json::from_slice(&versions.take().unwrap()).unwrap();
    let old_ct = versions
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["revision"] == 1)
        .unwrap()["ciphertext"]
        .clone();
    evil.set(rows("/rest/secrets", move |rs| {
        for r in rs.iter_mut().filter(|r| r["revision"] == 2) {
            r["ciphertext"] = old_ct.clone();
        }
    }));
    expect_err(
        c.secret(&va, "API_KEY").await,
        tampered,
        "old ciphertext under a new revision",
    );
    evil.clear();

    // Flip one byte of every ciphertext.
    evil.set(rows("/rest/secrets", |rs| {
        for r in rs.iter_mut() {
            let mut b = zsm_core::b64::decode(r["ciphertext"].as_str().unwrap()).unwrap();
            let n = b.len();
            b[n - 20] ^= 1;
            r["ciphertext"] = serde_json::json!(zsm_core::b64::encode(&b));
        }
    }));
    expect_err(c.secrets(&va).await, tampered, "flipped byte");
    evil.clear();

    // A listing that hides a secret, or shows one the manifest does not
    // name: the vault's signed manifest commits to every (id, revision,
    // key generation), so either is refused.
    let alpha = va.id.to_string();
    evil.set(Box::new(move |path: &str, body: Vec<u8>| {
        if path.starts_with("/rest/secrets") && path.contains(&alpha) {
            rows("/rest/secrets", |rs| {
                rs.pop();
            })(path, body)
        } else {
            body
        }
    }));
    expect_err(c.secrets(&va).await, tampered, "a secret hidden from the listing");
    evil.clear();

    // An older manifest after a newer one was verified: a rollback.
    let old_manifest = evil.capture("/rest/vault_manifests", &va.id.to_string());
    c.secrets(&va).await.unwrap();
    let old_manifest = old_manifest.take().expect("alpha's manifest captured");
    evil.clear();
    c.set_secret(&va, "ROLLBACK_PROBE", "x").await.unwrap();
    let vid = va.id.to_string();
    evil.set(Box::new(move |path: &str, body: Vec<u8>| {
        if path.starts_with("/rest/vault_manifests") && path.contains(&vid) {
            old_manifest.clone()
        } else {
            body
        }
    }));
    expect_err(
        c.secrets(&va).await,
        |e| matches!(e, Error::Rollback(_)),
        "an older manifest",
    );
    evil.clear();
    c.delete_secret(&va, "ROLLBACK_PROBE").await.unwrap();

    // Substitute the vault key: sealed to the account's real X-Wing key, so
    // it opens, but nobody this account trusts signed it, and it is not the
    // key the membership log commits to. Each vault is refused on its own;
    // the listing itself does not fail.
    let xwing_pub = c.xwing_public().unwrap().expect("a new account has an X-Wing key");
    let me = c.user_id();
    evil.set(rows("/rest/rpc/vault_states", move |rs| {
        for r in rs.iter_mut() {
            let vid = Uuid::parse_str(r["id"].as_str().unwrap()).unwrap();
            let recipient = zsm_core::grant::RecipientKey::XWing(xwing_pub.clone());
            let (sealed, _) = zsm_core::grant::seal_vault_key_v2(&recipient, vid, me, 1, &[7u8; 32]).unwrap();
            r["grant"]["sealed_key"] = serde_json::json!(sealed);
        }
    }));
    let l = c.list_vaults().await.unwrap();
    assert!(l.vaults.is_empty() && l.refused.len() == 2, "substituted keys: {l:?}");
    for r in l.refused {
        expect_err::<()>(Err(r.error), tampered, "substituted vault key");
    }
    expect_err(
        c.vault_by_name("alpha").await,
        tampered,
        "substituted vault key, asked by name",
    );
    evil.clear();

    // Tamper with one vault's grant (the signature covers the role, and the
    // log gives another): that vault alone is refused; the other opens and
    // its secrets read.
    let alpha = va.id.to_string();
    evil.set(rows("/rest/rpc/vault_states", move |rs| {
        for r in rs.iter_mut().filter(|r| r["id"] == alpha.as_str()) {
            r["grant"]["role"] = serde_json::json!("viewer");
        }
    }));
    let l = c.list_vaults().await.unwrap();
    assert!(
        l.vaults.len() == 1 && l.vaults[0].id == vb.id && l.refused.len() == 1 && l.refused[0].id == va.id,
        "one tampered grant: {l:?}"
    );
    assert_eq!(
        c.secret(&l.vaults[0], "OTHER").await.unwrap().value.as_str(),
        "value-three"
    );
    expect_err(c.vault_by_name("alpha").await, tampered, "alpha's grant, asked by name");
    evil.clear();

    // Another user's access policy in our listing: that vault is refused.
    let alpha = va.id.to_string();
    evil.set(rows("/rest/rpc/vault_states", move |rs| {
        for r in rs.iter_mut().filter(|r| r["id"] == alpha.as_str()) {
            r["grant"]["user_id"] = serde_json::json!(Uuid::new_v4());
        }
    }));
    let l = c.list_vaults().await.unwrap();
    assert!(
        l.vaults.len() == 1 && l.vaults[0].id == vb.id && l.refused.iter().all(|r| r.id == va.id),
        "another user's policy: {l:?}"
    );
    expect_err::<()>(
        Err(l.refused.into_iter().next().unwrap().error),
        tampered,
        "another user's access policy",
    );
    evil.clear();

    // The server adds a vault with a membership signed by a stranger and no
    // log: an invitation, listed apart and used for nothing; the account's
    // own vaults open as before.
    let (foreign, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    evil.set(rows("/rest/rpc/vault_states", move |rs| {
        rs.push(serde_json::json!({"id": foreign, "owner_id": stranger, "meta": "AAAA",
            "revision": 1, "created_at": "2026-11-29T10:00:00Z",
            "grant": {"user_id": me, "role": "owner", "sealed_key": zsm_core::b64::encode(&[5u8; 80]),
                "granted_by": stranger, "signature": zsm_core::b64::encode(&[6u8; 64]),
                "created_at": "2026-11-29T10:00:00Z", "key_generation": 1, "grant_version": 1, "kem_id": null},
            "log": [], "chain": [], "manifest": null}));
    }));
    let l = c.list_vaults().await.unwrap();
    assert!(
        l.vaults.len() == 2 && l.refused.is_empty() && l.invitations.len() == 1,
        "a foreign grant: {l:?}"
    );
    let inv = &l.invitations[0];
    assert_eq!(
        (inv.vault_id, inv.from, inv.role.as_str(), inv.from_identity.as_str()),
        (foreign, stranger, "owner", "")
    );
    let alpha = c.vault_by_name("alpha").await.unwrap();
    assert_eq!(
        c.secret(&alpha, "DB_PASSWORD").await.unwrap().value.as_str(),
        "value-two"
    );
    expect_err(
        c.vault_by_name("nonexistent").await,
        |e| matches!(e, Error::NotFound(_)),
        "an unknown vault next to an invitation",
    );
    evil.clear();

    // Swap the public keys in an identity lookup.
    let other_id = format!("other-{}@example.test", random_hex(5));
    let other = Client::signup(&cfg, &other_id, &password).await.unwrap();
    let pk = c.lookup_identity(&other_id).await.unwrap();
    assert!(pk.signed && pk.user_id == other.user_id, "honest lookup: {pk:?}");
    evil.set(rows("/rest/rpc/lookup_identity", |rs| {
        for r in rs.iter_mut() {
            r["x25519_public"] = serde_json::json!(zsm_core::b64::encode(&[3u8; 32]));
        }
    }));
    expect_err(
        c.lookup_identity(&other_id).await,
        tampered,
        "lookup with a substituted X25519 key",
    );
    evil.set(rows("/rest/rpc/lookup_identity", |rs| {
        for r in rs.iter_mut() {
            r["user_id"] = serde_json::json!(Uuid::new_v4());
        }
    }));
    expect_err(
        c.lookup_identity(&other_id).await,
        tampered,
        "lookup naming another user id",
    );
    evil.set(rows("/rest/rpc/lookup_identity", |rs| {
        let dup = rs[0].clone();
        rs.push(dup);
    }));
    expect_err(
        c.lookup_identity(&other_id).await,
        tampered,
        "lookup naming two accounts",
    );
    evil.clear();

    // Serve a vault's older name (and manifest) after its rename was seen.
    let old_vaults = evil.capture("/rest/rpc/vault_states", "");
    c.vaults().await.unwrap();
    let old_vaults = old_vaults.take().expect("vault list captured");
    evil.clear();
    let renamed = c.rename_vault(&vb, "beta-2").await.unwrap();
    assert_eq!(renamed.revision, 2);
    assert_eq!(c.vault_by_name("beta-2").await.unwrap().id, vb.id);
    evil.set(Box::new(move |path: &str, body: Vec<u8>| {
        if path.starts_with("/rest/rpc/vault_states") {
            old_vaults.clone()
        } else {
            body
        }
    }));
    let l = c.list_vaults().await.unwrap();
    assert!(
        l.refused.len() == 1 && l.refused[0].id == vb.id && l.vaults.iter().all(|v| v.id != vb.id),
        "an older vault name: {l:?}"
    );
    expect_err(
        c.vault_by_name("beta-2").await,
        |e| matches!(e, Error::Rollback(_)),
        "replayed older vault name",
    );
    evil.clear();

    // Lower the KDF parameters: refused before any SRP value is sent.
    let fresh = EvilServer::start(&gateway).await;
    fresh.set(json_edit("/auth/v1/login/params", |m| {
        m["kdf"]["memory_kib"] = serde_json::json!(8);
        m["kdf"]["iterations"] = serde_json::json!(1);
    }));
    let r = Client::login(
        &test_config(&fresh.url, Arc::new(FileState::memory())),
        &identity,
        &password,
        &sk,
    )
    .await;
    expect_err(r, |e| matches!(e, Error::Kdf(KdfError::WeakKdf(_))), "weak KDF");
    assert!(
        !fresh.requested("/auth/v1/login/init"),
        "SRP values sent after weak parameters"
    );

    // Change the KDF salt of an account this device pinned.
    let fresh = EvilServer::start(&gateway).await;
    fresh.set(json_edit("/auth/v1/login/params", |m| {
        m["kdf"]["salt"] = serde_json::json!(zsm_core::b64::encode(&[9u8; 16]));
    }));
    let pinned = Arc::new(FileState::memory());
    zsm_core::DeviceState::pin_kdf(&*pinned, &format!("{}|{identity}", fresh.url), &acct.kdf);
    let r = Client::login(&test_config(&fresh.url, pinned), &identity, &password, &sk).await;
    expect_err(r, |e| matches!(e, Error::KdfChange), "changed salt");
    assert!(
        !fresh.requested("/auth/v1/login/init"),
        "SRP values sent after the parameters changed"
    );

    // Forge the server's SRP proof.
    let fresh = EvilServer::start(&gateway).await;
    fresh.set(json_edit("/auth/v1/login/verify", |m| {
        m["server_proof"] = serde_json::json!("0".repeat(64))
    }));
    let r = Client::login(
        &test_config(&fresh.url, Arc::new(FileState::memory())),
        &identity,
        &password,
        &sk,
    )
    .await;
    expect_err(r, tampered, "forged server proof");

    // A B of the server's choosing that fixes the session key (B = N).
    let fresh = EvilServer::start(&gateway).await;
    fresh.set(json_edit("/auth/v1/login/init", |m| {
        m["b"] = serde_json::json!(zsm_core::srp::N_HEX)
    }));
    let r = Client::login(
        &test_config(&fresh.url, Arc::new(FileState::memory())),
        &identity,
        &password,
        &sk,
    )
    .await;
    expect_err(r, tampered, "B = N");
    assert!(
        !fresh.requested("/auth/v1/login/verify"),
        "a proof was sent for a degenerate B"
    );

    // Swap a public key in the key bundle.
    let fresh = EvilServer::start(&gateway).await;
    fresh.set(json_edit("/auth/v1/login/verify", |m| {
        m["key_bundle"]["x25519_public"] = serde_json::json!(zsm_core::b64::encode(&[1u8; 32]));
    }));
    let r = Client::login(
        &test_config(&fresh.url, Arc::new(FileState::memory())),
        &identity,
        &password,
        &sk,
    )
    .await;
    expect_err(r, tampered, "bundle with a foreign public key");

    // Tamper with the sealed account key in the bundle.
    let fresh = EvilServer::start(&gateway).await;
    fresh.set(json_edit("/auth/v1/login/verify", |m| {
        let mut b = zsm_core::b64::decode(m["key_bundle"]["account_key"].as_str().unwrap()).unwrap();
        let n = b.len();
        b[n - 1] ^= 1;
        m["key_bundle"]["account_key"] = serde_json::json!(zsm_core::b64::encode(&b));
    }));
    let r = Client::login(
        &test_config(&fresh.url, Arc::new(FileState::memory())),
        &identity,
        &password,
        &sk,
    )
    .await;
    expect_err(r, tampered, "tampered account key in the bundle");

    // Wrong password and wrong Secret Key: the server cannot tell them apart.
    let honest = test_config(&evil.url, Arc::new(FileState::memory()));
    let r = Client::login(&honest, &identity, &format!("{password}x"), &sk).await;
    expect_err(r, |e| matches!(e, Error::LoginFailed), "wrong password");
    let r = Client::login(&honest, &identity, &password, &SecretKey::generate()).await;
    expect_err(r, |e| matches!(e, Error::LoginFailed), "wrong Secret Key");

    // Lock zeroizes the keys; unlock needs the password and the Secret Key.
    c.lock();
    expect_err(c.vaults().await, |e| matches!(e, Error::Locked), "read while locked");
    expect_err(
        c.unlock("not the password", &sk),
        |e| matches!(e, Error::WrongPassword),
        "unlock with a wrong password",
    );
    c.unlock(&password, &sk).unwrap();
    assert_eq!(c.secret(&va, "API_KEY").await.unwrap().value.as_str(), "value-one-v2");
}

/// Token refresh and retry, as the Go SDK does them: a 401 from PostgREST
/// makes the client refresh once and retry; a revoked session ends it;
/// concurrent refreshes share one use of the refresh token (a second use
/// would revoke the session as stolen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_and_retry() {
    let gateway = env("ZSM_TEST_GATEWAY");
    let evil = EvilServer::start(&gateway).await;
    let identity = format!("refresh-{}@example.test", random_hex(5));
    let password = format!("correct horse {}", random_hex(4));
    let cfg = test_config(&evil.url, Arc::new(FileState::memory()));
    let acct = Client::signup(&cfg, &identity, &password).await.unwrap();
    let c = Arc::new(
        Client::login(&cfg, &identity, &password, &acct.secret_key)
            .await
            .unwrap(),
    );
    let v = c.create_vault("r").await.unwrap();
    c.set_secret(&v, "K", "v1").await.unwrap();
    let first = c.session_id().await;

    // Four concurrent refreshes: callers that hold the same stale token share
    // one refresh, so no refresh token is spent twice; a second use would
    // revoke the session, and the reads below would fail.
    let before = evil.count("/auth/v1/token/refresh");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.refresh().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let refreshes = evil.count("/auth/v1/token/refresh") - before;
    assert!((1..=4).contains(&refreshes), "{refreshes} refreshes for 4 callers");
    assert_eq!(c.session_id().await, first, "a refresh keeps the session");
    assert_eq!(c.secret(&v, "K").await.unwrap().value.as_str(), "v1");

    // PostgREST says the token is not valid once: refresh, then retry.
    let before = evil.count("/auth/v1/token/refresh");
    let mut once = true;
    evil.answer(Box::new(move |path: &str| {
        if path.starts_with("/rest/secrets") && std::mem::take(&mut once) {
            return Some((401, br#"{"code":"PGRST301","message":"JWT expired"}"#.to_vec()));
        }
        None
    }));
    assert_eq!(c.secret(&v, "K").await.unwrap().value.as_str(), "v1");
    assert_eq!(
        evil.count("/auth/v1/token/refresh") - before,
        1,
        "no refresh after a 401"
    );
    evil.clear();

    // Twice in a row: the session has ended.
    evil.answer(Box::new(|path: &str| {
        path.starts_with("/rest/secrets")
            .then(|| (401, br#"{"code":"PGRST301","message":"JWT expired"}"#.to_vec()))
    }));
    expect_err(
        c.secret(&v, "K").await,
        |e| matches!(e, Error::SessionExpired),
        "401 after a refresh",
    );
    evil.clear();

    // A revoked session is not refreshed.
    let before = evil.count("/auth/v1/token/refresh");
    evil.answer(Box::new(|path: &str| {
        path.starts_with("/rest/secrets")
            .then(|| (401, br#"{"code":"session_revoked","message":"revoked"}"#.to_vec()))
    }));
    expect_err(
        c.secret(&v, "K").await,
        |e| matches!(e, Error::SessionExpired),
        "revoked session",
    );
    assert_eq!(
        evil.count("/auth/v1/token/refresh"),
        before,
        "refreshed a revoked session"
    );
    evil.clear();

    // Revoked for real: the next request ends with SessionExpired, and a
    // refresh is refused by the server.
    let me = c.session_id().await;
    c.revoke_session(&me).await.unwrap();
    expect_err(
        c.vaults().await,
        |e| matches!(e, Error::SessionExpired),
        "own session revoked",
    );
    expect_err(
        c.refresh().await,
        |e| matches!(e, Error::SessionExpired),
        "refresh after revocation",
    );
}

fn json_edit(prefix: &'static str, f: impl Fn(&mut serde_json::Value) + Send + Sync + 'static) -> common::Rewrite {
    Box::new(move |path: &str, body: Vec<u8>| {
        if !path.starts_with(prefix) {
            return body;
        }
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return body;
        };
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    })
}

/// A secret written here is read by the Go CLI and one written by the CLI
/// is read here, on one account the CLI signed up and on one this core
/// signed up; edits, history and restore cross over too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_with_the_go_cli() {
    let gateway = env("ZSM_TEST_GATEWAY");
    let dir = std::path::PathBuf::from(env("ZSM_TEST_DIR")).join(format!("interop-{}", random_hex(4)));
    std::fs::create_dir_all(&dir).unwrap();

    // 1. The CLI signs up; this core logs in with the kit's Secret Key.
    let identity = format!("cli-{}@example.test", random_hex(5));
    let password = format!("a long password {}", random_hex(4));
    let kit = dir.join("kit.txt");
    let mut go = cli::Cli::new(&gateway, &dir.join("home-cli"), &password);
    go.run_ok(&["signup", &identity, "--kit", kit.to_str().unwrap()], "");
    let kit_text = std::fs::read_to_string(&kit).unwrap();
    let sk_text = kit_text
        .split_whitespace()
        .find(|w| w.starts_with("ZSM1-"))
        .expect("the kit names the Secret Key");
    let sk = SecretKey::parse(sk_text).unwrap();
    go.secret_key = Some(sk_text.to_owned());
    go.login(&identity);
    go.run_ok(&["vault", "create", "shared"], "");
    go.run_ok(&["set", "shared/FROM_GO", "-"], "written by go\n");

    let state = Arc::new(FileState::load(dir.join("rust-state.json")).unwrap());
    let c = Client::login(&test_config(&gateway, state.clone()), &identity, &password, &sk)
        .await
        .unwrap();
    let v = c.vault_by_name("shared").await.unwrap();
    assert_eq!(c.secret(&v, "FROM_GO").await.unwrap().value.as_str(), "written by go");
    let value = format!("written by rust {}", random_hex(8));
    c.set_secret(&v, "FROM_RUST", &value).await.unwrap();
    assert_eq!(go.run_ok(&["get", "shared/FROM_RUST"], ""), format!("{value}\n"));

    // 2. A new revision from each side, then history and restore.
    go.run_ok(&["set", "shared/FROM_RUST", "-"], "second, by go\n");
    let s = c.secret(&v, "FROM_RUST").await.unwrap();
    assert_eq!((s.value.as_str(), s.revision), ("second, by go", 2));
    let hist = c.history(&v, "FROM_RUST").await.unwrap();
    assert_eq!(
        hist.iter().map(|h| h.value.as_str()).collect::<Vec<_>>(),
        vec!["second, by go", value.as_str()]
    );
    c.restore(&v, "FROM_RUST", 1).await.unwrap();
    assert_eq!(go.run_ok(&["get", "shared/FROM_RUST"], ""), format!("{value}\n"));
    let renamed = c.rename_vault(&v, "shared-renamed").await.unwrap();
    assert_eq!(go.run_ok(&["get", "shared-renamed/FROM_GO"], ""), "written by go\n");
    c.delete_secret(&renamed, "FROM_GO").await.unwrap();
    assert!(!go.run_ok(&["ls", "shared-renamed"], "").contains("FROM_GO"));

    // Sessions: both devices are listed; revoking the CLI's ends it.
    let sessions = c.sessions().await.unwrap();
    assert_eq!(sessions.iter().filter(|s| s.current).count(), 1);
    let others: Vec<_> = sessions.iter().filter(|s| !s.current).collect();
    assert!(!others.is_empty(), "the CLI's sessions are listed");
    for o in &others {
        c.revoke_session(&o.id).await.unwrap();
    }
    expect_err(
        c.revoke_session(&others[0].id).await,
        |e| matches!(e, Error::NotFound(_)),
        "revoke twice",
    );
    let out = go.run(&["get", "shared-renamed/FROM_RUST"], "");
    assert_eq!(out.code, Some(3), "the CLI's revoked session: {}", out.stderr);

    // 3. This core signs up; the CLI logs in and reads what it wrote.
    let identity2 = format!("rust-{}@example.test", random_hex(5));
    let state2 = Arc::new(FileState::memory());
    let acct = Client::signup(&test_config(&gateway, state2.clone()), &identity2, &password)
        .await
        .unwrap();
    let c2 = Client::login(&test_config(&gateway, state2), &identity2, &password, &acct.secret_key)
        .await
        .unwrap();
    let v2 = c2.create_vault("made-by-rust").await.unwrap();
    c2.set_secret(&v2, "TOKEN", "from the rust core").await.unwrap();
    let mut go2 = cli::Cli::new(&gateway, &dir.join("home-cli-2"), &password);
    go2.secret_key = Some(acct.secret_key.text());
    go2.login(&identity2);
    assert_eq!(go2.run_ok(&["get", "made-by-rust/TOKEN"], ""), "from the rust core\n");
    go2.run_ok(&["set", "made-by-rust/TOKEN", "-"], "from the go cli\n");
    assert_eq!(c2.secret(&v2, "TOKEN").await.unwrap().value.as_str(), "from the go cli");

    // 4. Invitations across the clients: the account this core signed up
    // invites the one the CLI signed up. Both list it; the CLI declines
    // (blocking the sender); the CLI allows the sender again, its lookup
    // verifying the key record this core signed at sign-up; this core
    // declines the next one and the CLI no longer lists it.
    let proxy = EvilServer::start(&gateway).await;
    let verify = proxy.capture("/auth/v1/login/verify", "");
    Client::login(
        &test_config(&proxy.url, Arc::new(FileState::memory())),
        &identity2,
        &password,
        &acct.secret_key,
    )
    .await
    .unwrap();
    let verify: serde_json::Value = serde_json::from_slice(&verify.take().unwrap()).unwrap();
    let token = verify["access_token"].as_str().unwrap().to_owned();
    let me1 = c.user_id();
    let (status, body) = raw_grant(&gateway, &token, v2.id, me1, acct.user_id, "viewer").await;
    assert_eq!(status, 201, "grant to the CLI's account: {body}");
    go.login(&identity);
    let listed: serde_json::Value = serde_json::from_str(&go.run_ok(&["vault", "list", "--json"], "")).unwrap();
    let inv = &listed["invitations"][0];
    assert_eq!(
        (
            inv["vault_id"].as_str(),
            inv["from"].as_str(),
            inv["from_user_id"].as_str()
        ),
        (
            Some(v2.id.to_string().as_str()),
            Some(identity2.as_str()),
            Some(acct.user_id.to_string().as_str())
        ),
        "{listed}"
    );
    let l = c.list_vaults().await.unwrap();
    assert!(
        l.invitations.len() == 1 && l.invitations[0].from_identity == identity2 && l.refused.is_empty(),
        "{l:?}"
    );
    assert!(!l.vaults.is_empty(), "the CLI account's own vaults still open");
    go.run_ok(&["vault", "decline", &v2.id.to_string()], "");
    assert!(c.invitations().await.unwrap().is_empty(), "declined by the CLI");
    let (status, body) = raw_grant(&gateway, &token, v2.id, me1, acct.user_id, "viewer").await;
    assert!(
        status == 403 && body.contains("42501"),
        "grant after the CLI's block: {status} {body}"
    );
    let out = go.run(&["vault", "allow", &identity2], "");
    assert!(
        out.code == Some(0) && out.stderr.contains("may invite you again"),
        "zsm vault allow: {:?} {}",
        out.code,
        out.stderr
    );
    let (status, body) = raw_grant(&gateway, &token, v2.id, me1, acct.user_id, "editor").await;
    assert_eq!(status, 201, "grant after the CLI allowed it: {body}");
    let declined = c.decline_invitation(v2.id).await.unwrap();
    assert_eq!((declined.from, declined.role.as_str()), (acct.user_id, "editor"));
    let listed: serde_json::Value = serde_json::from_str(&go.run_ok(&["vault", "list", "--json"], "")).unwrap();
    assert_eq!(listed["invitations"], serde_json::json!([]), "declined by this core");

    c.logout().await.unwrap();
    expect_err(c.vaults().await, |e| matches!(e, Error::Locked), "after logout");
    c2.delete_vault(&v2).await.unwrap();
    expect_err(
        c2.vault_by_name("made-by-rust").await,
        |e| matches!(e, Error::NotFound(_)),
        "deleted vault",
    );
}

/// Sends a grant as `token`'s account straight to PostgREST (what any
/// account can do with its own token): the unsolicited grant of issue 9.
async fn raw_grant(gateway: &str, token: &str, vault: Uuid, user: Uuid, by: Uuid, role: &str) -> (u16, String) {
    let body = serde_json::json!({"vault_id": vault, "user_id": user, "role": role, "granted_by": by,
        "sealed_key": zsm_core::b64::encode(&[1u8; 80]), "signature": zsm_core::b64::encode(&[2u8; 64])});
    let resp = reqwest::Client::new()
        .post(format!("{gateway}/rest/access_policies"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Key records and invitations between real accounts, no tampering: a
/// sign-up publishes a signed key record; an account without one publishes
/// it at its next login; a grant from another user is an invitation the
/// victim lists apart, declines (blocking the sender) and allows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_and_key_records() {
    let gateway = env("ZSM_TEST_GATEWAY");
    let password = format!("correct horse {}", random_hex(4));
    let evil = EvilServer::start(&gateway).await;
    let cfg = test_config(&evil.url, Arc::new(FileState::memory()));
    let victim_id = format!("victim-{}@example.test", random_hex(5));
    let mallory_id = format!("mallory-{}@example.test", random_hex(5));
    let va = Client::signup(&cfg, &victim_id, &password).await.unwrap();
    let ma = Client::signup(&cfg, &mallory_id, &password).await.unwrap();
    let victim = Client::login(&cfg, &victim_id, &password, &va.secret_key)
        .await
        .unwrap();
    let token = evil.capture("/auth/v1/login/verify", "");
    let mallory = Client::login(&cfg, &mallory_id, &password, &ma.secret_key)
        .await
        .unwrap();
    let verify: serde_json::Value = serde_json::from_slice(&token.take().expect("login answer captured")).unwrap();
    let token = verify["access_token"].as_str().unwrap().to_owned();
    evil.clear();

    // The sign-up sent the key record's signature: the lookup verifies it.
    let pk = mallory.lookup_identity(&victim_id.to_uppercase()).await.unwrap();
    assert!(
        pk.signed && pk.user_id == va.user_id && pk.identity == victim_id,
        "{pk:?}"
    );
    assert_eq!(pk.x25519, victim.x25519_public().unwrap());
    // A new account starts at key record version 2, with its X-Wing key.
    assert!(
        pk.record_version == 2 && pk.xwing.as_ref().is_some_and(|k| k.len() == 1216),
        "a new account's record: version {}",
        pk.record_version
    );
    expect_err(
        mallory.lookup_identity("nobody-here@example.test").await,
        |e| matches!(e, Error::NotFound(_)),
        "lookup of an unknown identity",
    );

    // An account made before key records existed (prepared by the Go
    // harness: its record removed in the database) publishes it at login.
    let legacy_id = env("ZSM_TEST_LEGACY_IDENTITY");
    let before = victim.lookup_identity(&legacy_id).await.unwrap();
    assert!(!before.signed, "the prepared account still has a record");
    let legacy_sk = SecretKey::parse(&env("ZSM_TEST_LEGACY_SECRET_KEY")).unwrap();
    let legacy = Client::login(&cfg, &legacy_id, &env("ZSM_TEST_LEGACY_PASSWORD"), &legacy_sk)
        .await
        .unwrap();
    let after = victim.lookup_identity(&legacy_id).await.unwrap();
    assert!(
        after.signed && after.user_id == legacy.user_id(),
        "after login: {after:?}"
    );
    assert_eq!((after.x25519, after.ed25519), (before.x25519, before.ed25519));
    // Its login moved it to bundle and record version 2: an X-Wing key
    // added, its other keys unchanged.
    assert!(
        before.record_version == 0 && before.xwing.is_none() && after.record_version == 2 && after.xwing.is_some(),
        "the upgrade at login: before {before:?}, after {after:?}"
    );

    // The victim's own vault, and mallory's unsolicited grant of hers.
    let mine = victim.create_vault("mine").await.unwrap();
    victim.set_secret(&mine, "API_KEY", "s3cret").await.unwrap();
    let trap = mallory.create_vault("trap").await.unwrap();
    let (status, body) = raw_grant(&gateway, &token, trap.id, va.user_id, ma.user_id, "editor").await;
    assert_eq!(status, 201, "unsolicited grant: {body}");
    let l = victim.list_vaults().await.unwrap();
    assert!(
        l.vaults.len() == 1 && l.vaults[0].id == mine.id && l.refused.is_empty() && l.invitations.len() == 1,
        "{l:?}"
    );
    let inv = &l.invitations[0];
    assert_eq!(
        (inv.vault_id, inv.from, inv.from_identity.as_str(), inv.role.as_str()),
        (trap.id, ma.user_id, mallory_id.as_str(), "editor")
    );
    assert!(!inv.at.is_empty(), "the invitation's time");
    let v = victim.vault_by_name("mine").await.unwrap();
    assert_eq!(victim.secret(&v, "API_KEY").await.unwrap().value.as_str(), "s3cret");

    // Declining removes the grant and blocks mallory.
    let declined = victim.decline_invitation(trap.id).await.unwrap();
    assert_eq!(declined.from, ma.user_id);
    expect_err(
        victim.decline_invitation(mine.id).await,
        |e| matches!(e, Error::NotFound(_)),
        "declining one's own vault",
    );
    assert!(victim.invitations().await.unwrap().is_empty());
    let (status, body) = raw_grant(&gateway, &token, trap.id, va.user_id, ma.user_id, "viewer").await;
    assert!(
        status == 403 && body.contains("42501"),
        "grant after the block: {status} {body}"
    );

    // The victim allows mallory again: a new grant goes through.
    assert!(victim.allow_invitations_from(&mallory_id).await.unwrap());
    assert!(
        !victim.allow_invitations_from(&mallory_id).await.unwrap(),
        "no block left"
    );
    let (status, body) = raw_grant(&gateway, &token, trap.id, va.user_id, ma.user_id, "viewer").await;
    assert_eq!(status, 201, "grant after the victim allowed it: {body}");
    assert_eq!(victim.invitations().await.unwrap().len(), 1);

    // A server that blocks somebody else than the inviter is caught.
    evil.set(Box::new(|path: &str, body: Vec<u8>| {
        if path.starts_with("/rest/rpc/decline_invitation") {
            serde_json::to_vec(&Uuid::new_v4()).unwrap()
        } else {
            body
        }
    }));
    expect_err(
        victim.decline_invitation(trap.id).await,
        tampered,
        "the server blocks another user",
    );
    evil.clear();
}

/// What this core answers for one input of the parser corpus, in the form
/// the Go harness wrote Go's answer (tests/rustcore/parsers_test.go).
fn parser_outcome(kind: &str, input: &[u8], extra: &str) -> String {
    let ok = |b: &[u8]| format!("ok:{}", zsm_core::srp::hex(b));
    let text = std::str::from_utf8(input);
    match kind {
        "bundle" => zsm_core::bundle::parse_bundle(input).map_or("err".into(), |b| ok(b.to_json().as_bytes())),
        "pins" => zsm_core::trust::pins::parse_pin_set(input).map_or("err".into(), |s| ok(s.marshal().as_bytes())),
        "memberlog" => zsm_core::memberlog::parse(input)
            .and_then(|e| e.marshal())
            .map_or("err".into(), |m| ok(&m)),
        "manifest" => zsm_core::manifest::parse(input)
            .and_then(|m| m.marshal())
            .map_or("err".into(), |m| ok(&m)),
        "qr" => match text.map(zsm_core::trust::parse_qr) {
            Ok(Ok(fp)) => ok(&fp.0),
            _ => "err".into(),
        },
        "secretkey" => match text.map(SecretKey::parse) {
            Ok(Ok(k)) => ok(k.text().as_bytes()),
            _ => "err".into(),
        },
        "envelope" => {
            let p: Vec<&str> = extra.split(',').collect();
            let key = zsm_core::srp::unhex(p[0]).unwrap();
            let ctx = zsm_core::envelope::Context {
                typ: zsm_core::envelope::Type::from_byte(p[1].parse().unwrap()).unwrap(),
                vault_id: Uuid::parse_str(p[2]).unwrap(),
                object_id: Uuid::parse_str(p[3]).unwrap(),
                revision: p[4].parse().unwrap(),
            };
            use zsm_core::envelope::EnvelopeError as E;
            match zsm_core::envelope::open(&key, &ctx, input) {
                Ok(pt) => ok(&pt),
                Err(E::Malformed) => "err:malformed".into(),
                Err(E::UnsupportedVersion) => "err:unsupported_version".into(),
                Err(E::WrongType) => "err:wrong_type".into(),
                Err(E::Tampered) => "err:tampered".into(),
                Err(E::BadKey) => "err:bad_key".into(),
            }
        }
        k => panic!("unknown parser {k}"),
    }
}

/// Every strict parser the two clients share accepts exactly the inputs
/// Go's does, and makes the same of them: the vector inputs and thousands
/// of mutants of them (tests/rustcore/parsers_test.go), for key bundles,
/// pin sets, membership log entries, manifests, envelopes, QR strings and
/// Secret Keys.
#[test]
fn parsers_agree_with_go() {
    let data = std::fs::read_to_string(env("ZSM_TEST_PARSERS")).unwrap();
    let want: usize = env("ZSM_TEST_PARSER_COUNT").parse().unwrap();
    let (mut n, mut accepted) = (0, 0);
    let mut bad = Vec::new();
    for line in data.lines() {
        let mut f = line.split('\t');
        let (kind, input, go, extra) = (
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap_or(""),
        );
        let input = zsm_core::srp::unhex(input).unwrap();
        let rust = parser_outcome(kind, &input, extra);
        if rust != go && bad.len() < 20 {
            bad.push(format!(
                "{kind} {:?}: go {go}, rust {rust}",
                String::from_utf8_lossy(&input)
            ));
        }
        accepted += usize::from(go.starts_with("ok"));
        n += 1;
    }
    assert!(bad.is_empty(), "parsers differ from Go's:\n{}", bad.join("\n"));
    assert_eq!(n, want, "corpus lines checked");
    assert!(
        accepted > 100,
        "only {accepted} inputs accepted: the corpus is degenerate"
    );
    eprintln!("{n} parser inputs answered as Go does ({accepted} accepted)");
}

/// Sharing between the Go CLI and this core through pins (docs/crypto.md
/// §7, §8): a vault the CLI's account shares with this core's account is
/// an invitation (with its role) until this account pins the sharer's key
/// after comparing safety numbers; then it opens with that role, reads and
/// writes both ways, and the pin set this core wrote is the one the Go CLI
/// reads. A pin set the server made, or one it hides after it was seen, is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_vaults_open_through_pins() {
    let gateway = env("ZSM_TEST_GATEWAY");
    let dir = std::path::PathBuf::from(env("ZSM_TEST_DIR")).join(format!("pins-{}", random_hex(4)));
    std::fs::create_dir_all(&dir).unwrap();
    let password = format!("a long password {}", random_hex(4));

    // Bob: this core's account, talking through a proxy that can tamper.
    let bob_id = format!("bob-{}@example.test", random_hex(5));
    let acct = Client::signup(
        &test_config(&gateway, Arc::new(FileState::memory())),
        &bob_id,
        &password,
    )
    .await
    .unwrap();
    let evil = EvilServer::start(&gateway).await;
    let bob = Client::login(
        &test_config(&evil.url, Arc::new(FileState::memory())),
        &bob_id,
        &password,
        &acct.secret_key,
    )
    .await
    .unwrap();

    // Alice: the CLI's account. She shares a vault with Bob, trusting his
    // key on first use.
    let alice_id = format!("alice-{}@example.test", random_hex(5));
    let kit = dir.join("kit.txt");
    let mut alice = cli::Cli::new(&gateway, &dir.join("home-alice"), &password);
    alice.run_ok(&["signup", &alice_id, "--kit", kit.to_str().unwrap()], "");
    let kit_text = std::fs::read_to_string(&kit).unwrap();
    alice.secret_key = kit_text
        .split_whitespace()
        .find(|w| w.starts_with("ZSM1-"))
        .map(str::to_owned);
    alice.login(&alice_id);
    alice.run_ok(&["vault", "create", "team"], "");
    alice.run_ok(&["set", "team/API_KEY", "-"], "from alice\n");
    alice.run_ok(
        &[
            "vault",
            "share",
            "team",
            &bob_id,
            "--role",
            "editor",
            "--trust-on-first-use",
        ],
        "",
    );

    // Not pinned: an invitation with its role; the vault is not opened.
    let l = bob.list_vaults().await.unwrap();
    assert!(
        l.vaults.iter().all(|v| v.name != "team") && l.refused.is_empty(),
        "{l:?}"
    );
    assert_eq!(
        l.invitations
            .iter()
            .map(|i| (i.from_identity.as_str(), i.role.as_str()))
            .collect::<Vec<_>>(),
        vec![(alice_id.as_str(), "editor")]
    );

    // A pin set the server made (it has no account key to seal one) is
    // refused, and so nothing is pinned by it.
    let planted = zsm_core::trust::PinSet::default().seal(&[7u8; 32], bob.user_id(), 1);
    let body = serde_json::json!([{"revision": 1, "ciphertext": planted}]).to_string();
    evil.answer(Box::new(move |path: &str| {
        path.starts_with("/rest/pins").then(|| (200, body.clone().into_bytes()))
    }));
    expect_err(
        bob.check_identity(&alice_id).await,
        tampered,
        "a pin set the server sealed",
    );
    evil.clear();

    // Bob compares the safety number with the one Alice's CLI shows, and
    // confirms.
    let chk = bob.check_identity(&alice_id).await.unwrap();
    assert_eq!(chk.status, zsm_core::IdentityStatus::Unverified);
    let alice_fp = alice.run_ok(&["whoami", "--fingerprint"], "");
    assert!(
        alice_fp.contains(&chk.safety_number),
        "Alice's CLI shows {alice_fp:?}, this core computed {}",
        chk.safety_number
    );
    bob.confirm_identity(&chk, zsm_core::trust::Status::Verified)
        .await
        .unwrap();
    assert_eq!(
        bob.check_identity(&alice_id).await.unwrap().status,
        zsm_core::IdentityStatus::Verified
    );

    // Pinned: the vault opens with its role, and data flows both ways.
    let l = bob.list_vaults().await.unwrap();
    assert!(l.invitations.is_empty() && l.refused.is_empty(), "{l:?}");
    let team = l
        .vaults
        .iter()
        .find(|v| v.name == "team")
        .expect("the shared vault opens");
    assert_eq!(team.role, "editor");
    assert_eq!(bob.secret(team, "API_KEY").await.unwrap().value.as_str(), "from alice");
    bob.set_secret(team, "FROM_BOB", "written by bob").await.unwrap();
    assert_eq!(alice.run_ok(&["get", "team/FROM_BOB"], ""), "written by bob\n");

    // The pin set this core wrote is the Go SDK's: Bob's CLI reads it.
    let mut bob_cli = cli::Cli::new(&gateway, &dir.join("home-bob"), &password);
    bob_cli.secret_key = Some(acct.secret_key.text());
    bob_cli.login(&bob_id);
    let v: serde_json::Value = serde_json::from_str(&bob_cli.run_ok(&["verify", &alice_id, "--json"], "")).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["safety_number"].as_str()),
        (Some("verified"), Some(chk.safety_number.as_str())),
        "{v}"
    );
    assert_eq!(bob_cli.run_ok(&["get", "team/API_KEY"], ""), "from alice\n");

    // The server hides the pin set this device has seen: a rollback.
    evil.answer(Box::new(|path: &str| {
        path.starts_with("/rest/pins").then(|| (200, b"[]".to_vec()))
    }));
    expect_err(
        bob.reload_pins().await,
        |e| matches!(e, Error::Rollback(_)),
        "the pin set hidden after it was seen",
    );
    evil.clear();
    bob.reload_pins().await.unwrap();

    // A viewer's role holds in this core as in the server: Alice lowers
    // Bob to viewer; his write is refused before it is sent.
    alice.run_ok(&["vault", "role", "team", &bob_id, "viewer"], "");
    let team = bob.vault_by_name("team").await.unwrap();
    assert_eq!(team.role, "viewer");
    expect_err(
        bob.set_secret(&team, "FROM_BOB", "again").await,
        |e| matches!(e, Error::Invalid(m) if m.contains("you are a viewer")),
        "a viewer's write",
    );
}
