//! The Go CLI (`zsm`, built by the Go harness from this tree), run with its
//! own configuration directory and no keyring.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Cli {
    bin: String,
    server: String,
    home: PathBuf,
    password: String,
    pub secret_key: Option<String>,
    session: Option<String>,
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    pub fn new(server: &str, home: &Path, password: &str) -> Cli {
        Cli {
            bin: super::env("ZSM_TEST_CLI"),
            server: server.to_owned(),
            home: home.to_path_buf(),
            password: password.to_owned(),
            secret_key: None,
            session: None,
        }
    }

    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("ZSM_HOME", &self.home)
            .env("ZSM_KEYRING", "off")
            .env("ZSM_SERVER", &self.server)
            .env("ZSM_PASSWORD", &self.password)
            .env_remove("ZSM_SESSION")
            .env_remove("ZSM_SECRET_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(sk) = &self.secret_key {
            cmd.env("ZSM_SECRET_KEY", sk);
        }
        if let Some(s) = &self.session {
            cmd.env("ZSM_SESSION", s);
        }
        let mut child = cmd.spawn().expect("the zsm CLI runs");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and requires success; returns stdout.
    pub fn run_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(out.code, Some(0), "zsm {args:?}: {}", out.stderr);
        out.stdout
    }

    /// Logs in and keeps the session key for the next commands.
    pub fn login(&mut self, identity: &str) {
        let key = self.run_ok(&["login", identity, "--raw"], "");
        self.session = Some(key.trim().to_owned());
    }
}
