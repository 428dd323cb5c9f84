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

    // Substitute the vault key: sealed to the account's real public key, so
    // it opens, but nobody this account trusts signed it.
    let bundle_pub = c.x25519_public().unwrap();
    let me = c.user_id();
    evil.set(rows("/rest/access_policies", move |rs| {
        for r in rs.iter_mut() {
            let vid = Uuid::parse_str(r["vault_id"].as_str().unwrap()).unwrap();
            r["sealed_key"] = serde_json::json!(zsm_core::grant::seal_vault_key(&bundle_pub, vid, me, &[7u8; 32]));
        }
    }));
    expect_err(c.vaults().await, tampered, "substituted vault key");
    evil.clear();

    // Another user's access policy in our listing.
    evil.set(rows("/rest/access_policies", |rs| {
        rs[0]["user_id"] = serde_json::json!(Uuid::new_v4());
    }));
    expect_err(c.vaults().await, tampered, "another user's access policy");
    evil.clear();

    // Serve a vault's older name after its rename was seen.
    let old_vaults = evil.capture("/rest/vaults", "");
    c.vaults().await.unwrap();
    let old_vaults = old_vaults.take().expect("vault list captured");
    evil.clear();
    let renamed = c.rename_vault(&vb, "beta-2").await.unwrap();
    assert_eq!(renamed.revision, 2);
    assert_eq!(c.vault_by_name("beta-2").await.unwrap().id, vb.id);
    evil.set(Box::new(move |path: &str, body: Vec<u8>| {
        if path.starts_with("/rest/vaults") {
            old_vaults.clone()
        } else {
            body
        }
    }));
    expect_err(
        c.vaults().await,
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

    c.logout().await.unwrap();
    expect_err(c.vaults().await, |e| matches!(e, Error::Locked), "after logout");
    c2.delete_vault(&v2).await.unwrap();
    expect_err(
        c2.vault_by_name("made-by-rust").await,
        |e| matches!(e, Error::NotFound(_)),
        "deleted vault",
    );
}
