//! zsm's desktop app: a Tauri 2 shell around zsm-core.
//!
//! The security boundary runs between this Rust process and the web view.
//! Keys, tokens, the password and the Secret Key stay here, inside the
//! core's types, and are zeroized on lock; the web view (strict CSP, no
//! remote content, no plugins, only the app's own pages) gets what a screen
//! shows through the IPC commands of [`ipc`] and nothing else. See
//! docs/desktop.md.
#![forbid(unsafe_code)]

pub mod clipboard;
pub mod core_api;
pub mod error;
pub mod generator;
pub mod ipc;
pub mod kit;
#[cfg(test)]
mod memory;

/// Runs a test's future on a current-thread runtime. The tests use this
/// instead of `#[tokio::test]`: tokio's `macros` and `test-util` features
/// would change tokio's features for the test build and recompile every
/// crate that depends on it (Tauri, reqwest), instead of sharing the app's.
#[cfg(test)]
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a test runtime")
        .block_on(f)
}
pub mod session;
pub mod view;
pub mod zsm;

use std::path::PathBuf;
use std::time::Duration;

use tauri::webview::NewWindowResponse;
use tauri::{Manager, Url, WebviewUrl, WebviewWindowBuilder};

use crate::clipboard::{CLEAR_AFTER, ClipboardGuard, SystemClipboard};
use crate::session::DEFAULT_IDLE_LOCK;

/// The idle time before the app locks itself: ZSM_DESKTOP_IDLE_LOCK_SECONDS
/// (5 s to 24 h), else five minutes.
fn idle_lock() -> Duration {
    std::env::var("ZSM_DESKTOP_IDLE_LOCK_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| (5..=86_400).contains(s))
        .map_or(DEFAULT_IDLE_LOCK, Duration::from_secs)
}

/// Where this device's files go: ZSM_DESKTOP_HOME, else the app's config
/// directory (~/.config/dev.zsm.desktop on Linux).
fn home(app: &tauri::App) -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Some(d) = std::env::var_os("ZSM_DESKTOP_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    Ok(app.path().app_config_dir()?)
}

/// Whether url is one of the app's own pages (the only thing the web view
/// may show: links elsewhere are not followed).
pub fn is_app_url(url: &Url) -> bool {
    match url.scheme() {
        "tauri" => url.host_str() == Some("localhost"),
        "http" | "https" => url.host_str() == Some("tauri.localhost"),
        _ => false,
    }
}

/// Starts the app.
pub fn run() {
    tauri::Builder::default()
        .invoke_handler(ipc::handler())
        .setup(|app| {
            let home = home(app)?;
            let core = zsm::ZsmCore::new(home.join("state.json"));
            let state = ipc::Shared::new(
                core,
                ClipboardGuard::new(SystemClipboard::default(), CLEAR_AFTER),
                idle_lock(),
                Some(home.join("settings.json")),
                std::env::var("ZSM_SERVER").ok().filter(|s| !s.is_empty()),
            );
            app.manage(state);

            WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
                .title("zsm")
                .inner_size(1100.0, 720.0)
                .min_inner_size(760.0, 520.0)
                .on_navigation(is_app_url)
                .on_new_window(|_, _| NewWindowResponse::Deny)
                .on_download(|_, _| false)
                .build()?;

            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    handle.state::<ipc::Shared>().lock_if_idle().await;
                }
            });
            Ok(())
        })
        .run(tauri::generate_context!())
        .expect("the zsm desktop app failed to start");
}
