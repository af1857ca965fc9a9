//! `okta-adapter dev` ([`demo`]), what it leaves for the CLI ([`cli_config`]), and the private
//! `redis-server` it shares with the tests and the benchmarks ([`RedisServer`]).
//!
//! [`RedisServer`] is started from `PATH` on a free loopback port with its data in a folder the
//! caller chooses, and killed when dropped. `restart` brings it back on the same port with the
//! same data folder, which is how the tests simulate a Redis outage.

pub mod cli_config;
#[cfg(feature = "demo")]
pub mod demo;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    #[error(
        "`redis-server` was not found on PATH ({0}). Install it (Debian/Ubuntu: \
         `apt-get install -y redis-server`; macOS: `brew install redis`) or point \
         OKTA_ADAPTER__REDIS__URL at a running Redis"
    )]
    NotInstalled(std::io::Error),
    #[error("redis-server did not answer PING on port {port} within {secs} s")]
    NotReady { port: u16, secs: u64 },
    #[error("could not start redis-server: {0}")]
    Io(#[from] std::io::Error),
}

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    persistent: bool,
    own_group: bool,
}

impl RedisServer {
    /// Starts a server with data in `dir`. With `persistent`, every write is appended to an AOF
    /// file and fsynced, so a restart keeps acknowledged data.
    pub fn start(dir: &Path, persistent: bool) -> Result<Self, RedisServerError> {
        Self::start_with(dir, persistent, false)
    }

    /// Like [`RedisServer::start`], in a process group of its own, so the terminal's Ctrl-C
    /// reaches only its owner (`dev`), which drains its consumers before it stops the server;
    /// otherwise Redis would die first and the adapter's last rounds fail. The tests leave the
    /// server in their group, so an interrupted test run takes its servers with it.
    pub fn start_own_group(dir: &Path, persistent: bool) -> Result<Self, RedisServerError> {
        Self::start_with(dir, persistent, true)
    }

    fn start_with(dir: &Path, persistent: bool, own_group: bool) -> Result<Self, RedisServerError> {
        std::fs::create_dir_all(dir)?;
        let mut server = Self {
            child: None,
            port: free_port()?,
            dir: dir.to_path_buf(),
            persistent,
            own_group,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), RedisServerError> {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        #[cfg(unix)]
        if self.own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RedisServerError::NotInstalled(e),
            _ => RedisServerError::Io(e),
        })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), RedisServerError> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(RedisServerError::NotReady {
            port: self.port,
            secs: limit.as_secs(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would: no shutdown save).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data folder.
    pub fn restart(&mut self) -> Result<(), RedisServerError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True when something on `port` answers a RESP `PING` with `+PONG`.
pub fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
