//! Seeds the firehose stream directly (used by `bench/lookup.sh`), bypassing the HTTP ingest
//! path so that a million-user projection can be built in seconds.
//!
//! For each user `N` (`0..--users`) it appends three entries to `<prefix>:{events}:firehose`,
//! with exactly the fields `src/fanout/ingest.lua` writes (`v`, `uuid`, `type`, `published`,
//! `received`, `tenant`, `user`, `actor`, `outcome`, `event`; no `sig`, as with an empty
//! `hooks.signing_key`):
//!
//! 1. `user.lifecycle.create`,
//! 2. `user.lifecycle.activate`,
//! 3. `group.user_membership.add` to group `tenant-t<N % tenants>`, which the default tenant
//!    rule (`^tenant-(?P<tenant>[a-z0-9-]+)$`) maps to tenant `t<N % tenants>`.
//!
//! The user's id is `00u` + 17 digits (Okta ids are 20 characters), its login
//! `user<N>@example.com`. Each event is a compact but realistic Okta LogEvent (actor, client,
//! outcome, targets, transaction, ~600 bytes). `published` times increase along the stream; the
//! entry's `tenant` is what ingest would have written: empty for the first two events (no tenant
//! known yet for that user) and the group's tenant for the membership event.
//!
//! Entries are written with pipelined `XADD`s (`--pipeline` per round trip, `--connections`
//! pipelines in flight) and no MAXLEN, so every event stays in the stream. Prints one JSON line:
//! `{"users":…,"events":…,"seconds":…,"events_per_sec":…,"avg_event_bytes":…}`.

use std::time::Instant;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Seed okta-adapter's firehose with create/activate/group-add events per user")]
struct Args {
    /// Redis URL.
    #[arg(long)]
    url: String,
    /// `redis.prefix` of the adapter.
    #[arg(long, default_value = "okta-adapter")]
    prefix: String,
    /// Number of users (3 events each).
    #[arg(long, default_value_t = 1_000_000)]
    users: u64,
    /// Number of tenants (groups `tenant-t0` … `tenant-t<n-1>`).
    #[arg(long, default_value_t = 200)]
    tenants: u64,
    /// XADDs per pipeline (one round trip).
    #[arg(long, default_value_t = 1000)]
    pipeline: usize,
    /// Connections, each with one pipeline in flight.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

/// The admin who performs every change.
const ADMIN_ID: &str = "00uadm1nB3nch0000001";
/// Events of one user are this far apart; users start `USER_STEP_MS` apart.
const EVENT_STEP_MS: i64 = 1_000;
const USER_STEP_MS: i64 = 10;

struct Event {
    uuid: String,
    event_type: &'static str,
    published: String,
    received: String,
    tenant: String,
    user: String,
    json: String,
}

fn user_id(n: u64) -> String {
    format!("00u{n:017}")
}

fn group_id(tenant: u64) -> String {
    format!("00g{tenant:017}")
}

/// A v4-shaped uuid, unique per (run, user, event kind).
fn uuid(run: u32, n: u64, kind: u64) -> String {
    let x = n * 4 + kind;
    format!(
        "{run:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (x >> 48) & 0xffff,
        (x >> 36) & 0xfff,
        (x >> 24) & 0xfff,
        x & 0xffff_ffff_ffff
    )
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The three events of user `n`.
fn user_events(run: u32, base: DateTime<Utc>, n: u64, tenants: u64) -> [Event; 3] {
    let id = user_id(n);
    let login = format!("user{n}@example.com");
    let tenant = n % tenants;
    let start = base + Duration::milliseconds(n as i64 * USER_STEP_MS);
    let kinds: [(&str, &str, &str); 3] = [
        (
            "user.lifecycle.create",
            "Create Okta user",
            "core.user.config.user_creation.success",
        ),
        (
            "user.lifecycle.activate",
            "Activate Okta user",
            "core.user.config.user_activated",
        ),
        (
            "group.user_membership.add",
            "Add user to group membership",
            "core.user_group_member.user_add",
        ),
    ];
    std::array::from_fn(|k| {
        let (event_type, message, legacy) = kinds[k];
        let published = start + Duration::milliseconds(k as i64 * EVENT_STEP_MS);
        let uuid = uuid(run, n, k as u64);
        let group = if k == 2 {
            format!(
                r#",{{"id":"{}","type":"UserGroup","alternateId":"unknown","displayName":"tenant-t{tenant}","detailEntry":null}}"#,
                group_id(tenant)
            )
        } else {
            String::new()
        };
        let json = format!(
            concat!(
                r#"{{"uuid":"{uuid}","published":"{published}","eventType":"{event_type}","version":"0","#,
                r#""displayMessage":"{message}","severity":"INFO","#,
                r#""actor":{{"id":"{admin}","type":"User","alternateId":"admin@example.com","displayName":"Bench Admin","detailEntry":null}},"#,
                r#""client":{{"userAgent":{{"browser":"CHROME","os":"Mac OS X"}},"zone":"null","device":"Computer","ipAddress":"203.0.113.9"}},"#,
                r#""outcome":{{"result":"SUCCESS","reason":null}},"#,
                r#""target":[{{"id":"{id}","type":"User","alternateId":"{login}","displayName":"User {n}","detailEntry":null}}{group}],"#,
                r#""transaction":{{"type":"WEB","id":"Yb{tx:014x}","detail":{{}}}},"legacyEventType":"{legacy}"}}"#
            ),
            uuid = uuid,
            published = rfc3339(published),
            event_type = event_type,
            message = message,
            admin = ADMIN_ID,
            id = id,
            login = login,
            n = n,
            group = group,
            tx = n * 4 + k as u64,
            legacy = legacy,
        );
        Event {
            uuid,
            event_type,
            published: rfc3339(published),
            received: rfc3339(published + Duration::milliseconds(1_500)),
            tenant: if k == 2 {
                format!("t{tenant}")
            } else {
                String::new()
            },
            user: id.clone(),
            json,
        }
    })
}

fn xadd(pipe: &mut redis::Pipeline, stream: &str, e: &Event) {
    pipe.cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg(&[
            ("v", "1"),
            ("uuid", e.uuid.as_str()),
            ("type", e.event_type),
            ("published", e.published.as_str()),
            ("received", e.received.as_str()),
            ("tenant", e.tenant.as_str()),
            ("user", e.user.as_str()),
            ("actor", ADMIN_ID),
            ("outcome", "SUCCESS"),
            ("event", e.json.as_str()),
        ])
        .ignore();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.tenants > 0, "--tenants must be positive");
    let stream = format!("{}:{{events}}:firehose", args.prefix);
    let run: u32 = rand::random();
    let base: DateTime<Utc> = "2026-10-01T09:00:00Z".parse()?;

    // The events must be LogEvents the adapter can parse.
    for e in user_events(run, base, 0, args.tenants) {
        let v: serde_json::Value = serde_json::from_str(&e.json)?;
        anyhow::ensure!(v["uuid"] == e.uuid.as_str(), "bad event JSON: {}", e.json);
    }

    let client = redis::Client::open(args.url.as_str())?;
    let users_per_pipe = (args.pipeline / 3).max(1) as u64;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(60)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let (next, bytes, stream) = (next.clone(), bytes.clone(), stream.clone());
        let (users, tenants) = (args.users, args.tenants);
        tasks.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            loop {
                let first = next.fetch_add(users_per_pipe, Relaxed);
                if first >= users {
                    return Ok::<(), redis::RedisError>(());
                }
                let mut pipe = redis::pipe();
                let mut size = 0;
                for n in first..(first + users_per_pipe).min(users) {
                    for e in user_events(run, base, n, tenants) {
                        size += e.json.len() as u64;
                        xadd(&mut pipe, &stream, &e);
                    }
                }
                pipe.query_async::<()>(&mut conn).await?;
                bytes.fetch_add(size, Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let events = args.users * 3;
    println!(
        "{}",
        serde_json::json!({
            "users": args.users,
            "events": events,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "events_per_sec": (events as f64 / secs).round(),
            "avg_event_bytes": bytes.load(std::sync::atomic::Ordering::Relaxed) / events.max(1),
        })
    );
    Ok(())
}
