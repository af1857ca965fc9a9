//! Load generator for the console's User page (`GET <console.path>/users/{login}`), used by
//! `bench/console.sh`.
//!
//! Signs in with the `dev` one-click sign-in as `support` (the bench adapter runs with
//! `console.dev_sign_in = true`), then `--concurrency` workers ask for the page of a random
//! `user<N>@example.com` (`N < --users`, the users `seed_firehose` created) in a closed loop.
//! Every answer must be 200 and show the user's login; requests of the first `--warmup`
//! seconds are not recorded. Latency is send → end of body; at low concurrency on loopback it is
//! the server's time plus well under a millisecond, so it is an upper bound of the server time.
//!
//! Prints one JSON line: `{"requests":…,"seconds":…,"requests_per_sec":…,"p50_ms":…,
//! "p90_ms":…,"p99_ms":…,"max_ms":…,"avg_page_bytes":…,"errors":…}`; exits non-zero on any
//! error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};

#[derive(Parser, Debug)]
struct Args {
    /// Adapter base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    /// Users seeded (`user0@example.com` …).
    #[arg(long)]
    users: u64,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = format!("{}/console", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let signed_in = client
        .post(format!("{base}/dev-sign-in"))
        .form(&[("role", "support")])
        .send()
        .await?;
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("dev sign-in gave no cookie ({})", signed_in.status()))?
        .to_owned();
    let start = Instant::now();
    let warm_until = start + Duration::from_secs_f64(args.warmup);
    let end = warm_until + Duration::from_secs_f64(args.duration);
    let shared = Arc::new((client, cookie, base));
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let shared = shared.clone();
        let users = args.users;
        tasks.push(tokio::spawn(async move {
            let (client, cookie, base) = &*shared;
            let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
            let (mut lat, mut bytes, mut errors) = (Vec::new(), 0usize, 0u64);
            while Instant::now() < end {
                let n = rng.random_range(0..users);
                let login = format!("user{n}@example.com");
                let t0 = Instant::now();
                let resp = client
                    .get(format!("{base}/users/{login}"))
                    .header("cookie", cookie)
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) if r.status() == 200 => match r.text().await {
                        Ok(body) => {
                            bytes += body.len();
                            body.contains(&login)
                        }
                        Err(_) => false,
                    },
                    _ => false,
                };
                let took = t0.elapsed();
                if t0 >= warm_until && Instant::now() < end {
                    if ok {
                        lat.push(took.as_secs_f64() * 1000.0);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, bytes, errors)
        }));
    }
    let (mut lat, mut bytes, mut errors) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, b, e) = t.await?;
        lat.extend(l);
        bytes += b;
        errors += e;
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let n = lat.len();
    println!(
        "{}",
        serde_json::json!({
            "requests": n,
            "seconds": args.duration,
            "requests_per_sec": (n as f64 / args.duration).round(),
            "p50_ms": (q(0.50) * 100.0).round() / 100.0,
            "p90_ms": (q(0.90) * 100.0).round() / 100.0,
            "p99_ms": (q(0.99) * 100.0).round() / 100.0,
            "max_ms": (lat.last().copied().unwrap_or(0.0) * 100.0).round() / 100.0,
            "avg_page_bytes": bytes / n.max(1),
            "errors": errors,
        })
    );
    if errors > 0 || n == 0 {
        std::process::exit(1);
    }
    Ok(())
}
