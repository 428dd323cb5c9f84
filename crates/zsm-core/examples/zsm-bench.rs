//! zsm-core's half of `go tool task bench` (cmd/zsmbench, phase "rust"):
//! logs in to an account the Go side prepared and times unlock (Argon2id at
//! the floor and opening the key bundle), sync + verify + decrypt of a vault,
//! and single-secret writes. Prints one JSON object of milliseconds.
//!
//! zsm-bench --server URL --identity ID --password PW --secret-key ZSM1-… \
//!           --sync-vault NAME --write-vault NAME [--rounds 3] [--writes 50]
//!           [--name-prefix RUST_W_]

use std::sync::Arc;
use std::time::Instant;

use zsm_core::{Client, Config, FileState, SecretKey};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let need = |n: &str| arg(&args, n).ok_or_else(|| format!("missing {n}"));
    let (server, identity, password) = (need("--server")?, need("--identity")?, need("--password")?);
    let sk = SecretKey::parse(&need("--secret-key")?)?;
    let rounds: usize = arg(&args, "--rounds").map_or(Ok(3), |s| s.parse())?;
    let writes: usize = arg(&args, "--writes").map_or(Ok(50), |s| s.parse())?;
    let prefix = arg(&args, "--name-prefix").unwrap_or_else(|| "RUST_W_".into());

    let cfg = Config::new(&server, Arc::new(FileState::memory()));
    let t = Instant::now();
    let c = Client::login(&cfg, &identity, &password, &sk).await?;
    let login = ms(t);

    let mut unlock = Vec::new();
    for _ in 0..=rounds {
        c.lock();
        let t = Instant::now();
        c.unlock(&password, &sk)?;
        unlock.push(ms(t));
    }

    let v = c.vault_by_name(&need("--sync-vault")?).await?;
    let mut sync = Vec::new();
    let mut count = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        count = c.secrets(&v).await?.len();
        sync.push(ms(t));
    }

    let w = c.vault_by_name(&need("--write-vault")?).await?;
    let mut write = Vec::new();
    for i in 0..writes {
        let t = Instant::now();
        c.create_secret(&w, &format!("{prefix}{i}"), "value").await?;
        write.push(ms(t));
    }
    println!(
        "{}",
        serde_json::json!({"login_ms": login, "unlock_ms": unlock, "sync_ms": sync, "synced": count, "write_ms": write})
    );
    Ok(())
}
