//! Generates the app's permissions: one `allow-<command>` per line of
//! ipc-commands.txt (the list src/ipc.rs registers, checked by a test).
//! capabilities/default.json grants them to the main window; a command
//! without a granted permission is refused before it runs.

fn main() {
    println!("cargo:rerun-if-changed=ipc-commands.txt");
    let list = std::fs::read_to_string("ipc-commands.txt").expect("read ipc-commands.txt");
    let commands: Vec<&'static str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| &*Box::leak(l.to_owned().into_boxed_str()))
        .collect();
    let commands: &'static [&'static str] = Box::leak(commands.into_boxed_slice());
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("tauri-build");
}
