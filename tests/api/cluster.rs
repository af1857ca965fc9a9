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
    /// One per port; `None` once killed.
    nodes: Vec<Option<Child>>,
    pub ports: Vec<u16>,
    dir: tempfile::TempDir,
}

impl TestCluster {
    /// `masters` masters, all slots assigned, `cluster_state:ok` on every node.
    pub fn start(masters: usize) -> Self {
        Self::start_with_replicas(masters, 0)
    }

    /// `masters` masters with `replicas` replicas each (`redis-cli --cluster create …
    /// --cluster-replicas <replicas>`), all slots assigned, `cluster_state:ok` on every node and
    /// every replica in sync with its master.
    pub fn start_with_replicas(masters: usize, replicas: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            // The cluster bus listens on port + 10000; pick ports whose bus port is free too.
            let port = loop {
                let p = free_port();
                if p < 55535 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
                    break p;
                }
            };
            nodes.push(Some(spawn_node(dir.path(), port)));
            ports.push(port);
        }
        let cluster = Self { nodes, ports, dir };
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
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
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
        if replicas > 0 {
            for &port in &cluster.ports {
                let ok = wait_until(Duration::from_secs(20), || {
                    let info = cli(port, &["info", "replication"]);
                    info.contains("role:master") || info.contains("master_link_status:up")
                });
                assert!(ok, "replica {port} never synced with its master");
            }
        }
        cluster
    }

    /// The port of the master serving `key`'s slot, as a live node's `CLUSTER NODES` says.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = okta_adapter::store::conn::key_slot(key);
        let port = self.live_port();
        for line in cli(port, &["cluster", "nodes"]).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut ends = range.split('-').map(|n| n.parse::<u16>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                    (Some(Ok(a)), None) => a == slot,
                    _ => false,
                }
            });
            if serves {
                return node_port(fields[1]);
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// The port of the replica of the master on `master`, from `CLUSTER NODES`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let id = cli(master, &["cluster", "myid"]);
        let id = id.trim();
        cli(master, &["cluster", "nodes"])
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == id)
            .map(|f| node_port(f[1]))
            .unwrap_or_else(|| panic!("master {master} has no replica"))
    }

    fn live_port(&self) -> u16 {
        self.ports
            .iter()
            .zip(&self.nodes)
            .find(|(_, n)| n.is_some())
            .map(|(&p, _)| p)
            .expect("a live node")
    }

    /// `kill -9` of the node on `port`: no goodbye to the cluster.
    pub fn kill_9(&mut self, port: u16) {
        let i = self.index(port);
        if let Some(mut node) = self.nodes[i].take() {
            let _ = node.kill();
            let _ = node.wait();
        }
    }

    /// Starts the node on `port` again with its `nodes.conf` (a restarted pod): a master that
    /// was failed over meanwhile rejoins as a replica of the one that replaced it.
    pub fn restart(&mut self, port: u16) {
        let i = self.index(port);
        assert!(self.nodes[i].is_none(), "node {port} still runs");
        self.nodes[i] = Some(spawn_node(self.dir.path(), port));
        assert!(
            wait_until(Duration::from_secs(10), || okta_adapter::dev::ping(port)),
            "node {port} did not come back"
        );
    }

    /// `INFO replication` of the node on `port` contains `needle` within `limit`.
    pub fn wait_for_role(&self, port: u16, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || {
            cli(port, &["info", "replication"]).contains(needle)
        })
    }

    fn index(&self, port: u16) -> usize {
        self.ports
            .iter()
            .position(|&p| p == port)
            .expect("a node of this cluster")
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
        for node in self.nodes.iter_mut().flatten() {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

/// The port of a `CLUSTER NODES` address (`ip:port@cport[,hostname]`).
fn node_port(addr: &str) -> u16 {
    addr.split(['@', ','])
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a node address: {addr}"))
}

/// `redis-cli -p <port> <args>`'s output ("" when it fails).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
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
