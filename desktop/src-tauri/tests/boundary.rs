//! The web view's boundary, as configured: these tests fail when someone
//! widens it — loosens the CSP, grants a core or plugin permission, adds a
//! plugin (the shell plugin above all), adds an IPC command without listing
//! it, or lets the web view load anything but the app's own pages.
//! The end-to-end test (tests/desktop) attacks the same rules in the running
//! app.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

const CSP: &str = "default-src 'self'; connect-src ipc: http://ipc.localhost";

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn listed_commands() -> Vec<String> {
    read("ipc-commands.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn registered_commands_are_exactly_the_listed_ones() {
    let registered: Vec<&str> = zsm_desktop::ipc::COMMANDS.to_vec();
    assert_eq!(registered, listed_commands(), "src/ipc.rs and ipc-commands.txt differ");
    assert_eq!(
        registered.iter().collect::<BTreeSet<_>>().len(),
        registered.len(),
        "a command is listed twice"
    );
}

#[test]
fn the_command_set_is_the_reviewed_one() {
    // Adding a command is a change of the security boundary: update this
    // list, docs/desktop.md and the capability together.
    let want = [
        "app_status",
        "touch",
        "read_kit",
        "sign_in",
        "unlock",
        "lock",
        "sign_out",
        "list_vaults",
        "create_vault",
        "rename_vault",
        "delete_vault",
        "list_secrets",
        "reveal_secret",
        "copy_secret",
        "save_secret",
        "delete_secret",
        "secret_history",
        "restore_revision",
        "generate_secret",
        "sync_status",
        "sync_now",
        "list_sessions",
        "revoke_session",
        "check_identity",
        "trust_identity",
        "decline_invitation",
    ];
    assert_eq!(listed_commands(), want);
    let doc = read("../../docs/desktop.md");
    for c in want {
        assert!(
            doc.contains(&format!("`{c}`")),
            "docs/desktop.md does not describe `{c}`"
        );
    }
}

#[test]
fn the_only_capability_grants_the_commands_and_nothing_else() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("capabilities");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["default.json"], "another capability file appeared");

    let cap = json("capabilities/default.json");
    assert_eq!(cap["identifier"], "default");
    assert_eq!(cap["windows"], serde_json::json!(["main"]));
    assert!(cap.get("webviews").is_none() && cap.get("remote").is_none() && cap.get("platforms").is_none());
    let granted: Vec<String> = cap["permissions"]
        .as_array()
        .expect("permissions is a list")
        .iter()
        .map(|p| {
            p.as_str()
                .expect("a permission is a plain identifier, without scopes")
                .to_owned()
        })
        .collect();
    let want: Vec<String> = listed_commands()
        .iter()
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .collect();
    assert_eq!(granted, want);
    assert!(
        granted.iter().all(|p| !p.contains(':')),
        "a core or plugin permission is granted"
    );
}

#[test]
fn csp_and_security_settings() {
    let conf = json("tauri.conf.json");
    let sec = &conf["app"]["security"];
    assert_eq!(sec["csp"], CSP, "the CSP changed");
    assert!(sec.get("devCsp").is_none(), "a separate development CSP");
    assert_eq!(sec["freezePrototype"], true);
    assert_eq!(sec["capabilities"], serde_json::json!(["default"]));
    assert!(sec.get("dangerousDisableAssetCspModification").is_none());
    assert!(sec.get("assetProtocol").is_none(), "the asset protocol exposes files");
    assert_eq!(conf["app"]["withGlobalTauri"], false);
    assert_eq!(
        conf["app"]["windows"],
        serde_json::json!([]),
        "windows come from src/lib.rs, with a navigation guard"
    );
    assert!(
        conf.get("plugins")
            .is_none_or(|p| p.as_object().is_some_and(|o| o.is_empty()))
    );
    assert_eq!(conf["build"]["frontendDist"], "../dist", "only the app's own files");
    assert!(conf["build"].get("devUrl").is_none(), "no remote or dev-server content");
    let text = read("tauri.conf.json");
    assert!(!text.contains("dangerous"), "a dangerous* option is set");
    // Tauri's IPC origin is the CSP's only URL (the CSP is compared exactly
    // above); any other URL would name content from elsewhere.
    let rest = text.replacen(CSP, "", 1);
    assert!(
        !rest.contains("http://") && !rest.contains("https://"),
        "a remote URL in the config"
    );
}

#[test]
fn no_plugin_at_all_and_no_shell() {
    let cargo = read("Cargo.toml");
    assert!(!cargo.contains("tauri-plugin"), "a Tauri plugin crate is a dependency");
    let pkg = json("../package.json");
    for section in ["dependencies", "devDependencies"] {
        for name in pkg[section].as_object().into_iter().flat_map(|o| o.keys()) {
            assert!(!name.starts_with("@tauri-apps/plugin-"), "npm plugin {name}");
        }
    }
    let lib = read("src/lib.rs");
    assert!(!lib.contains(".plugin("), "src/lib.rs registers a plugin");
    // The lockfile of the workspace, wherever it is.
    for lock in ["../../Cargo.lock", "Cargo.lock"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(lock);
        if let Ok(text) = std::fs::read_to_string(p) {
            assert!(
                !text.contains("name = \"tauri-plugin-shell\""),
                "tauri-plugin-shell is locked in {lock}"
            );
        }
    }
}

#[test]
fn navigation_stays_on_the_app() {
    use tauri::Url;
    let ok = [
        "tauri://localhost/index.html",
        "tauri://localhost/",
        "http://tauri.localhost/x",
    ];
    let bad = [
        "https://example.com/",
        "http://127.0.0.1:8080/",
        "tauri://evil/",
        "file:///etc/passwd",
        "data:text/html,hi",
        "javascript:alert(1)",
        "http://tauri.localhost.example.com/",
    ];
    for u in ok {
        assert!(zsm_desktop::is_app_url(&Url::parse(u).unwrap()), "{u} refused");
    }
    for u in bad {
        assert!(!zsm_desktop::is_app_url(&Url::parse(u).unwrap()), "{u} allowed");
    }
}
