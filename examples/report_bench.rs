//! Report benchmark (`bash bench/report.sh`): a synthetic month fed straight into the
//! aggregation, then the report compiled from it.
//!
//! Generates `--events` firehose-like events for `--users` users in `--tenants` tenants (tenant
//! sizes follow a Zipf law, so a few tenants are big and most are small; weekends are quieter),
//! turns each into ops with the same pure function the consumer uses (`event_ops`) and sends
//! them with the same script (`count.lua`, ungated: there is no consumer group to acknowledge)
//! in pipelines of `--pipeline` script calls of `--batch` events. It then
//! - measures the Redis memory of the month's aggregates (`MEMORY USAGE` of every key),
//! - writes a realistic projection hash for every sampled active user (what the MFA share
//!   reads), and
//! - times `compile_monthly_report` + rendering (HTML, text, PNG), with the process's peak RSS
//!   growth during it (VmHWM reset through /proc/self/clear_refs).
//!
//! Prints one JSON line. With `--redis` it uses that server; otherwise it starts a private
//! `redis-server` (no persistence) in a temporary folder.

use std::time::Instant;

use clap::Parser;
use okta_adapter::projection::update::{field, stamp, ProjectionUpdate};
use okta_adapter::projection::write::fields_for_new_user;
use okta_adapter::reporting::aggregate::{event_ops, Counter, Op};
use okta_adapter::reporting::compile::compile_monthly_report;
use okta_adapter::reporting::render::{render_report, ChartRef};
use okta_adapter::reporting::ReportMonth;
use okta_adapter::store::Keys;
use rand::{Rng, SeedableRng};
use redis::AsyncCommands;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    users: u64,
    #[arg(long, default_value_t = 30_000_000)]
    events: u64,
    #[arg(long, default_value_t = 200)]
    tenants: u64,
    /// Month to fill (default: the previous UTC month).
    #[arg(long)]
    month: Option<String>,
    /// Events per script call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Script calls per pipeline.
    #[arg(long, default_value_t = 4)]
    pipeline: usize,
    /// Use this Redis instead of a private one.
    #[arg(long)]
    redis: Option<String>,
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Write the preview (HTML, text, chart) into this folder.
    #[arg(long)]
    preview: Option<String>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Event types with their share (per mille) of the synthetic traffic, and the share that fails.
const MIX: &[(&str, u32, f64)] = &[
    ("user.session.start", 700, 0.10),
    ("user.lifecycle.create", 30, 0.0),
    ("user.lifecycle.activate", 30, 0.0),
    ("user.lifecycle.deactivate", 10, 0.0),
    ("user.lifecycle.suspend", 5, 0.0),
    ("user.lifecycle.delete.initiated", 3, 0.0),
    ("user.account.lock", 7, 0.0),
    ("user.account.reset_password", 10, 0.0),
    ("user.mfa.factor.activate", 20, 0.0),
    ("user.mfa.factor.reset_all", 5, 0.0),
    ("user.import.password", 30, 0.1),
    ("user.account.update_profile", 150, 0.0),
];

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tz = chrono_tz::UTC;
    let month = match &args.month {
        Some(m) => ReportMonth::parse(m)?,
        None => ReportMonth::of(chrono::Utc::now(), tz).previous(),
    };
    let dir = tempfile::tempdir()?;
    let mut _private = None;
    let url = match &args.redis {
        Some(u) => u.clone(),
        None => {
            let s = okta_adapter::dev::RedisServer::start(dir.path(), false)?;
            let u = s.url();
            _private = Some(s);
            u
        }
    };
    let client = redis::Client::open(url.as_str())?;
    // A pipeline of several thousand events can take longer than the default 500 ms timeout on
    // a busy machine; the benchmark waits instead of failing.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(60)));
    let mut conn = okta_adapter::store::RedisConn::from(
        redis::aio::ConnectionManager::new_with_config(client, config).await?,
    );
    let keys = Keys::new(args.prefix.clone());

    // Zipf(1) tenant sizes: user u belongs to the tenant whose cumulative share covers it.
    let weights: Vec<f64> = (1..=args.tenants).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut bounds = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        bounds.push((acc * args.users as f64) as u64);
    }
    let tenant_of = |u: u64| bounds.partition_point(|b| *b <= u).min(bounds.len() - 1);
    let tenant_names: Vec<String> = (0..args.tenants)
        .map(|t| format!("tenant-{t:03}"))
        .collect();
    let days = month.days();
    let start = month.start(tz);
    let cumulative: Vec<(u32, &str, f64)> = MIX
        .iter()
        .scan(0u32, |acc, (t, share, fail)| {
            *acc += share;
            Some((*acc, *t, *fail))
        })
        .collect();
    let mix_total = cumulative.last().unwrap().0;

    let counter = Counter::new();
    // Pipelined EVALSHA needs the script loaded: one call without ops loads it.
    counter
        .apply(&mut conn, None, &[("load".to_string(), Vec::new())])
        .await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut next_report = 1_000_000u64;
    while sent < args.events {
        let mut pipe = redis::pipe();
        for _ in 0..args.pipeline {
            let n = (args.events - sent).min(args.batch as u64);
            if n == 0 {
                break;
            }
            let mut batch: Vec<(String, Vec<Op>)> = Vec::with_capacity(n as usize);
            for i in 0..n {
                let user = rng.random_range(0..args.users);
                // Weekdays twice as busy as weekends.
                let day = loop {
                    let d = rng.random_range(0..days);
                    let weekday = (start + chrono::Duration::days(d as i64))
                        .format("%u")
                        .to_string();
                    if weekday.as_str() < "6" || rng.random_bool(0.5) {
                        break d;
                    }
                };
                let at = start
                    + chrono::Duration::days(day as i64)
                    + chrono::Duration::seconds(rng.random_range(0..86_400));
                let pick = rng.random_range(0..mix_total);
                let (_, ty, fail) = cumulative.iter().find(|(c, _, _)| pick < *c).unwrap();
                let outcome = if rng.random_bool(*fail) {
                    "FAILURE"
                } else {
                    "SUCCESS"
                };
                let ops = event_ops(
                    &keys,
                    tz,
                    ty,
                    &at.to_rfc3339(),
                    &tenant_names[tenant_of(user)],
                    &format!("00u{user:010}"),
                    outcome,
                );
                batch.push((format!("{}-{i}", sent + i), ops));
            }
            pipe.invoke_script(&counter.invocation(None, &batch));
            sent += n;
        }
        let _: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        if sent >= next_report {
            eprintln!(
                "\r{sent} events, {:.0}/s",
                sent as f64 / started.elapsed().as_secs_f64()
            );
            next_report += 1_000_000;
        }
    }
    let feed_secs = started.elapsed().as_secs_f64();

    // Memory of the month's aggregates.
    let pattern = format!("{}:{{events}}:report:{month}:*", args.prefix);
    let mut found: Vec<String> = Vec::new();
    {
        let mut iter: redis::AsyncIter<String> = conn.scan_match(&pattern).await?;
        while let Some(k) = iter.next_item().await {
            found.push(k?);
        }
    }
    let mut bytes = 0u64;
    for chunk in found.chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
        bytes += sizes.into_iter().flatten().sum::<u64>();
    }

    // Realistic projections for the sampled users, 3 in 4 with a factor.
    let mut sampled = 0;
    for t in &tenant_names {
        let members: Vec<String> = conn
            .zrange(keys.report_active_sample(&month.to_string(), t), 0, -1)
            .await?;
        let mut pipe = redis::pipe();
        for (i, u) in members.iter().enumerate() {
            let ms = start.timestamp_millis() + i as i64;
            // One event per register (what the projection consumer would have stored).
            let event = |n: usize, ty: &str, actor: &str, fields: &[(&str, String)]| {
                let uuid = format!("{u}-{n}");
                fields_for_new_user(&ProjectionUpdate {
                    user: u.clone(),
                    stamp: stamp(ms + n as i64, &uuid),
                    event_type: ty.into(),
                    actor: actor.into(),
                    outcome: "SUCCESS".into(),
                    uuid,
                    fields: fields
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), v.clone()))
                        .collect(),
                })
            };
            let status = field::status("user.lifecycle.activate");
            let mut fields = event(
                0,
                "user.lifecycle.create",
                "00uadmin",
                &[(field::LOGIN, format!("{u}@example.com"))],
            );
            fields.extend(event(
                1,
                "group.user_membership.add",
                "00uadmin",
                &[(field::TENANT, t.clone()), ("g:00g1", format!("+{t}"))],
            ));
            fields.extend(event(
                2,
                "user.session.start",
                u,
                &[(field::SIGN_IN_OK, String::new())],
            ));
            fields.extend(event(
                3,
                "user.lifecycle.activate",
                "00uadmin",
                &[(&status, String::new())],
            ));
            if i % 4 != 0 {
                fields.extend(event(
                    4,
                    "user.mfa.factor.activate",
                    u,
                    &[("f:mbl1", "+Okta Verify".to_string())],
                ));
            }
            pipe.hset_multiple(keys.user(u), &fields).ignore();
            sampled += 1;
        }
        if !members.is_empty() {
            pipe.query_async::<()>(&mut conn).await?;
        }
    }

    let _ = std::fs::write("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
    let rss_before = rss_kb("VmRSS:");
    let compile_started = Instant::now();
    let report =
        compile_monthly_report(&mut conn, &keys, tz, month, chrono::Utc::now(), &[]).await?;
    let compile_secs = compile_started.elapsed().as_secs_f64();
    let render_started = Instant::now();
    let rendered = render_report(&report, ChartRef::ContentId);
    let render_secs = render_started.elapsed().as_secs_f64();
    let peak_growth_kb = rss_kb("VmHWM:").saturating_sub(rss_before);
    if let Some(dir) = &args.preview {
        std::fs::create_dir_all(dir)?;
        let preview = render_report(&report, ChartRef::File("chart.png"));
        std::fs::write(format!("{dir}/report.html"), &preview.html)?;
        std::fs::write(format!("{dir}/report.txt"), &preview.text)?;
        std::fs::write(format!("{dir}/chart.png"), &preview.chart_png)?;
    }
    println!(
        "{}",
        serde_json::json!({
            "month": month.to_string(),
            "users": args.users,
            "events": args.events,
            "tenants": args.tenants,
            "feed_seconds": (feed_secs * 10.0).round() / 10.0,
            "events_per_sec": (args.events as f64 / feed_secs).round(),
            "aggregate_keys": found.len(),
            "aggregate_bytes": bytes,
            "aggregate_mb": (bytes as f64 / 1e5).round() / 10.0,
            "sampled_projections": sampled,
            "active_users": report.overview.active_users,
            "sign_ins_ok": report.overview.sign_ins_ok,
            "compile_ms": (compile_secs * 1e4).round() / 10.0,
            "render_ms": (render_secs * 1e4).round() / 10.0,
            "compile_and_render_ms": ((compile_secs + render_secs) * 1e4).round() / 10.0,
            "compile_peak_rss_growth_mb": (peak_growth_kb as f64 / 102.4).round() / 10.0,
            "process_peak_rss_mb": (rss_kb("VmHWM:") as f64 / 102.4).round() / 10.0,
            "html_bytes": rendered.html.len(),
            "png_bytes": rendered.chart_png.len(),
        })
    );
    Ok(())
}
