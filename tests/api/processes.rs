//! Real `okta-adapter serve` processes (the binary cargo built), for tests of process roles and
//! replicas: each on a free loopback port, its hook secret read from a file, killed on drop.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{free_port, SECRET};

/// The adapter binary with no `OKTA_ADAPTER*` variable inherited from the test's environment.
pub fn adapter_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_okta-adapter"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OKTA_ADAPTER") {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub struct ServeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    _secret_file: tempfile::NamedTempFile,
}

impl ServeProcess {
    /// `okta-adapter serve --roles <roles>` on Redis `redis_url` with key prefix `prefix`;
    /// `env` adds or overrides `OKTA_ADAPTER__*` settings. Waits until `/healthz` answers.
    pub async fn start(redis_url: &str, prefix: &str, roles: &str, env: &[(&str, &str)]) -> Self {
        let mut secret_file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut secret_file, format!("{SECRET}\n").as_bytes()).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = adapter_command();
        cmd.args(["serve", "--roles", roles])
            .env("OKTA_ADAPTER__REDIS__URL", redis_url)
            .env("OKTA_ADAPTER__REDIS__PREFIX", prefix)
            .env("OKTA_ADAPTER__REDIS__MAINTENANCE_INTERVAL_SECS", "1")
            .env("OKTA_ADAPTER__HTTP__LISTEN", addr.to_string())
            .env("OKTA_ADAPTER__HOOKS__SECRETS_FILE", secret_file.path())
            .env("OKTA_ADAPTER__LOG__LEVEL", "warn")
            .env("OKTA_ADAPTER__PROJECTION__BLOCK_MS", "100")
            .env("OKTA_ADAPTER__PROJECTION__CLAIM_IDLE_MS", "1000")
            .env("OKTA_ADAPTER__REPORT__BLOCK_MS", "100")
            .env("OKTA_ADAPTER__REPORT__CLAIM_IDLE_MS", "1000")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if crate::cluster::cluster_mode() {
            cmd.env("OKTA_ADAPTER__REDIS__CLUSTER", "true");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("okta-adapter starts");
        let process = Self {
            child,
            addr,
            client: reqwest::Client::new(),
            _secret_file: secret_file,
        };
        for _ in 0..300 {
            if let Ok(r) = process.client.get(process.url("/healthz")).send().await {
                if r.status().is_success() {
                    return process;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("okta-adapter serve --roles {roles} did not come up on {addr}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no drain, no clean-up; what it acknowledged must survive anyway.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (as Kubernetes sends on a rolling restart), then waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `okta-adapter keys create --role <role>` against that Redis and prefix; the printed token.
pub fn create_key(redis_url: &str, prefix: &str, role: &str) -> String {
    let out = adapter_command()
        .args(["keys", "create", "--role", role])
        .env("OKTA_ADAPTER__REDIS__URL", redis_url)
        .env("OKTA_ADAPTER__REDIS__PREFIX", prefix)
        .env(
            "OKTA_ADAPTER__REDIS__CLUSTER",
            crate::cluster::cluster_mode().to_string(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
