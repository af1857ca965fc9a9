//! Load generator for `GET /api/v1/users/{idOrLogin}` (used by `bench/lookup.sh`).
//!
//! Closed loop: `--concurrency` workers share one pooled HTTP/1.1 client (keep-alive, one
//! connection per worker) and each sends its next request as soon as the previous one is
//! answered. Every request asks for a random login `user<N>@example.com` with `N < --users`
//! (the users `seed_firehose` created), or, for `--miss-pct` percent of requests, a login that
//! does not exist (`nobody<N>@example.com`, expected 404). Requests of the first `--warmup`
//! seconds are sent but not recorded. Latency is send → end of body, per request.
//!
//! With `--tenant-index i` only users of tenant `t<i>` are asked for (for a `client-admin` key of
//! that tenant, whose reads are not audited: the difference to a `support` key is the audit
//! write).
//!
//! Every 100th answered hit is also checked: the body must be the requested user, `ACTIVE`, in
//! tenant `t<N % --tenants>` (a wrong body counts in `wrong_body`).
//!
//! Prints one JSON line:
//!
//! ```text
//! {"requests":…,"seconds":…,"requests_per_sec":…,"p50_ms":…,"p90_ms":…,"p99_ms":…,
//!  "p999_ms":…,"max_ms":…,"hits":…,"hits_non_200":0,"misses":…,"misses_non_404":0,
//!  "transport_errors":0,"wrong_body":0,"cpu_cores":{"loadgen":…,"adapter":…,"redis":…}}
//! ```
//!
//! and exits non-zero when a hit was not answered 200, a miss not 404, a body was wrong, or a
//! request failed. `--cpu-pid name=PID` (repeatable) reports the CPU other processes used during
//! the timed window (from /proc, in cores), to show which side is saturated; `machine` is the
//! busy CPU of the whole machine in the same window (so others' load is visible).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

/// Linux's USER_HZ: the unit of utime/stime in /proc/PID/stat.
const CLK_TCK: f64 = 100.0;
/// One hit in this many has its body checked.
const CHECK_EVERY: u64 = 100;

#[derive(Parser, Debug)]
#[command(about = "Load generator for okta-adapter's GET /api/v1/users/{idOrLogin}")]
struct Args {
    /// Adapter base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    /// API key (`okta-adapter keys create --role support`).
    #[arg(long, env = "LOOKUP_TOKEN", hide_env_values = true)]
    token: String,
    /// Users seeded (`user0@example.com` … `user<users-1>@example.com`).
    #[arg(long)]
    users: u64,
    /// Tenants seeded (user N is in tenant `t<N % tenants>`).
    #[arg(long, default_value_t = 200)]
    tenants: u64,
    /// Only ask for users of tenant `t<i>` (N % tenants == i), e.g. with a client-admin key of
    /// that tenant, whose reads are not audited.
    #[arg(long)]
    tenant_index: Option<u64>,
    /// Workers (requests in flight).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Length of the timed window, in seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds of load before the timed window (not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Percent of requests for logins that do not exist (answered 404).
    #[arg(long, default_value_t = 0.0)]
    miss_pct: f64,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Report CPU use of another process during the timed window: `name=PID` (repeatable).
    #[arg(long = "cpu-pid", value_parser = parse_named_pid)]
    cpu_pids: Vec<(String, u32)>,
}

fn parse_named_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=PID")?;
    Ok((name.to_owned(), pid.parse().map_err(|e| format!("{e}"))?))
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    hits: u64,
    hits_non_200: u64,
    misses: u64,
    misses_non_404: u64,
    transport_errors: u64,
    wrong_body: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.latencies_us.extend(o.latencies_us);
        self.hits += o.hits;
        self.hits_non_200 += o.hits_non_200;
        self.misses += o.misses;
        self.misses_non_404 += o.misses_non_404;
        self.transport_errors += o.transport_errors;
        self.wrong_body += o.wrong_body;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Busy time of the whole machine (user, nice, system, irq, softirq, steal), in clock ticks.
fn machine_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    Some([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum())
}

fn body_ok(body: &[u8], n: u64, tenants: u64) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let u = &v["user"];
    u["login"] == format!("user{n}@example.com").as_str()
        && u["tenant"] == format!("t{}", n % tenants).as_str()
        && u["status"] == "ACTIVE"
        && u["can_sign_in"] == true
}

async fn worker(
    client: reqwest::Client,
    args: Arc<Args>,
    record_from: Instant,
    stop_at: Instant,
) -> Tally {
    let mut t = Tally {
        latencies_us: Vec::with_capacity(65_536),
        ..Tally::default()
    };
    let base = format!("{}/api/v1/users/", args.url.trim_end_matches('/'));
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    loop {
        let now = Instant::now();
        if now >= stop_at {
            return t;
        }
        let record = now >= record_from;
        let miss = rng.random::<f64>() * 100.0 < args.miss_pct;
        let n = match args.tenant_index {
            // Users of one tenant: i, i + tenants, i + 2 * tenants, … below `users`.
            Some(i) => {
                i + args.tenants * rng.random_range(0..(args.users - i).div_ceil(args.tenants))
            }
            None => rng.random_range(0..args.users),
        };
        // `@` is legal in a path segment; no escaping needed.
        let url = if miss {
            format!("{base}nobody{n}@example.com")
        } else {
            format!("{base}user{n}@example.com")
        };
        let started = Instant::now();
        let result = match client.get(&url).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                resp.bytes().await.map(|b| (status, b))
            }
            Err(e) => Err(e),
        };
        let elapsed = started.elapsed();
        match result {
            Err(e) => {
                t.transport_errors += 1;
                t.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
            Ok((status, body)) => {
                if !record {
                    continue;
                }
                t.latencies_us
                    .push(elapsed.as_micros().min(u32::MAX as u128) as u32);
                if miss {
                    t.misses += 1;
                    if status != 404 {
                        t.misses_non_404 += 1;
                        t.first_error
                            .get_or_insert_with(|| format!("miss {url}: HTTP {status}"));
                    }
                } else {
                    t.hits += 1;
                    if status != 200 {
                        t.hits_non_200 += 1;
                        t.first_error.get_or_insert_with(|| {
                            format!(
                                "hit {url}: HTTP {status} {}",
                                String::from_utf8_lossy(&body)
                            )
                        });
                    } else if t.hits % CHECK_EVERY == 1 && !body_ok(&body, n, args.tenants) {
                        t.wrong_body += 1;
                        t.first_error.get_or_insert_with(|| {
                            format!(
                                "hit {url}: unexpected body {}",
                                String::from_utf8_lossy(&body)
                            )
                        });
                    }
                }
            }
        }
    }
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let us = sorted_us[i.clamp(1, sorted_us.len()) - 1];
    (us as f64 / 10.0).round() / 100.0
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.users == 0 || args.concurrency == 0 || args.tenants == 0 {
        eprintln!("--users, --tenants and --concurrency must be positive");
        return std::process::ExitCode::FAILURE;
    }
    if args
        .tenant_index
        .is_some_and(|i| i >= args.tenants.min(args.users))
    {
        eprintln!("--tenant-index must be below --tenants and --users");
        return std::process::ExitCode::FAILURE;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(args))
}

async fn run(args: Args) -> std::process::ExitCode {
    let mut headers = HeaderMap::new();
    let mut auth = match HeaderValue::from_str(&format!("Bearer {}", args.token)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bad token: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");

    let args = Arc::new(args);
    let start = Instant::now();
    let record_from = start + Duration::from_secs_f64(args.warmup);
    let stop_at = record_from + Duration::from_secs_f64(args.duration);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(worker(client.clone(), args.clone(), record_from, stop_at)))
        .collect();

    // CPU of the generator and the named processes over the timed window.
    tokio::time::sleep_until(record_from.into()).await;
    let mut pids: Vec<(String, String)> = vec![("loadgen".into(), "self".into())];
    pids.extend(
        args.cpu_pids
            .iter()
            .map(|(name, pid)| (name.clone(), pid.to_string())),
    );
    let ticks = |pids: &[(String, String)]| -> Vec<Option<u64>> {
        pids.iter()
            .map(|(name, p)| match name.as_str() {
                "machine" => machine_ticks(),
                _ => cpu_ticks(p),
            })
            .collect()
    };
    pids.push(("machine".into(), String::new()));
    let cpu_start = ticks(&pids);
    let window_start = Instant::now();
    tokio::time::sleep_until(stop_at.into()).await;
    let cpu_end = ticks(&pids);
    let window = window_start.elapsed().as_secs_f64();

    let mut total = Tally::default();
    for w in workers {
        match w.await {
            Ok(t) => total.merge(t),
            Err(e) => {
                eprintln!("worker failed: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    total.latencies_us.sort_unstable();
    let requests = total.latencies_us.len() as u64;
    let cpu: serde_json::Map<String, serde_json::Value> = pids
        .iter()
        .zip(cpu_start.iter().zip(&cpu_end))
        .filter_map(|((name, _), (a, b))| {
            let cores = (*b)?.saturating_sub((*a)?) as f64 / CLK_TCK / window;
            Some((name.clone(), ((cores * 100.0).round() / 100.0).into()))
        })
        .collect();
    let l = &total.latencies_us;
    let report = serde_json::json!({
        "concurrency": args.concurrency,
        "miss_pct": args.miss_pct,
        "tenant_index": args.tenant_index,
        "requests": requests,
        "seconds": args.duration,
        "requests_per_sec": (requests as f64 / args.duration).round(),
        "p50_ms": percentile_ms(l, 50.0),
        "p90_ms": percentile_ms(l, 90.0),
        "p99_ms": percentile_ms(l, 99.0),
        "p999_ms": percentile_ms(l, 99.9),
        "max_ms": percentile_ms(l, 100.0),
        "hits": total.hits,
        "hits_non_200": total.hits_non_200,
        "misses": total.misses,
        "misses_non_404": total.misses_non_404,
        "transport_errors": total.transport_errors,
        "wrong_body": total.wrong_body,
        "cpu_cores": cpu,
    });
    println!("{report}");
    if let Some(e) = &total.first_error {
        eprintln!("first error: {e}");
    }
    let failed =
        total.hits_non_200 + total.misses_non_404 + total.transport_errors + total.wrong_body > 0;
    if failed || requests == 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
