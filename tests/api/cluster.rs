//! A local Redis Cluster for tests: three masters on loopback ports (`redis-server
//! --cluster-enabled yes`, joined by `redis-cli --cluster create … --cluster-replicas 0`), one
//! per test, killed when the test ends — the cluster twin of `TestRedis`.
//!
//! With `OKTA_ADAPTER_TEST_REDIS_CLUSTER=1`, `TestRedis::start()` starts one of these instead of
//! a single `redis-server`, and `test_settings` sets `redis.cluster = true`, so the existing API
//! tests run unchanged against a cluster (CI runs the ingest, projection, job and report tests
//! that way: `.ci/run`).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use okta_adapter::store::RedisConn;

use crate::helpers::free_port;

/// Set to `1` to run the API tests against a 3-master cluster.
pub const CLUSTER_ENV: &str = "OKTA_ADAPTER_TEST_REDIS_CLUSTER";

pub fn cluster_mode() -> bool {
    std::env::var(CLUSTER_ENV).is_ok_and(|v| v == "1")
}

pub struct TestCluster {
    nodes: Vec<Child>,
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// `masters` masters, all slots assigned, `cluster_state:ok` on every node.
    pub fn start(masters: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..masters {
            // The cluster bus listens on port + 10000; pick ports whose bus port is free too.
            let port = loop {
                let p = free_port();
                if p < 55535 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
                    break p;
                }
            };
            nodes.push(spawn_node(dir.path(), port));
            ports.push(port);
        }
        let cluster = Self {
            nodes,
            ports,
            _dir: dir,
        };
        for &port in &cluster.ports {
            wait_until(Duration::from_secs(10), || okta_adapter::dev::ping(port));
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for &port in &cluster.ports {
            let ok = wait_until(Duration::from_secs(20), || {
                Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            });
            assert!(ok, "cluster node {port} never reached cluster_state:ok");
        }
        cluster
    }

    /// The seed node's URL (`redis.url`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// Every node's URL (`redis.cluster_nodes`).
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

fn spawn_node(dir: &Path, port: u16) -> Child {
    Command::new("redis-server")
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        .arg("--cluster-config-file")
        .arg(dir.join(format!("nodes-{port}.conf")))
        .arg("--dir")
        .arg(dir)
        .args(["--loglevel", "warning"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts")
}

fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A connection for the test's own checks: a cluster connection in cluster mode (commands go to
/// the node that owns the key), else a single-node one.
///
/// The tests' own reads (e.g. `XRANGE` of a 4,500-entry stream) run while every other test of
/// the binary loads the same two cores; redis-rs's default 500 ms response timeout made them
/// fail with "timed out" under that load, so the tests' connections wait up to 10 s.
pub async fn test_conn(url: &str) -> RedisConn {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
    if cluster_mode() {
        let client = redis::cluster::ClusterClient::builder(vec![url])
            .connection_timeout(PATIENCE)
            .response_timeout(PATIENCE)
            .build()
            .unwrap();
        RedisConn::Cluster(client.get_async_connection().await.unwrap())
    } else {
        let client = redis::Client::open(url).unwrap();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(PATIENCE))
            .set_response_timeout(Some(PATIENCE));
        RedisConn::Single(
            redis::aio::ConnectionManager::new_with_config(client, config)
                .await
                .unwrap(),
        )
    }
}

/// A plain connection to one redis-server (tests that start, kill and restart their own) with
/// the same patience as [`test_conn`].
pub async fn single_node_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let patience = Some(std::time::Duration::from_secs(10));
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(patience)
        .set_response_timeout(patience);
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}
