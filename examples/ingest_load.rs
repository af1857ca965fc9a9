//! Load generator for `POST /hooks/okta/events` (used by `bench/ingest.sh`).
//!
//! Sends Okta event hook deliveries of `--batch` events each, either closed-loop (`--concurrency`
//! workers, each sending its next delivery as soon as the previous one is answered: maximum
//! throughput) or open-loop (`--rate` deliveries per second on a fixed schedule, with up to
//! `--concurrency` in flight: latency at a given load). Prints one JSON line:
//!
//! ```text
//! {"batch":50,"concurrency":8,"rate":null,"deliveries":…,"events":…,"seconds":…,
//!  "events_per_sec":…,"deliveries_per_sec":…,"p50_ms":…,"p99_ms":…,"max_ms":…,"errors":0,…}
//! ```
//!
//! and exits non-zero when any delivery was not answered `204` (or nothing was sent).
//!
//! Each event is the LogEvent of `hooks/events/user.lifecycle.suspend.json` (compact, ~1.7 KB,
//! a `user.lifecycle.*` type, so it also goes to the default `lifecycle` route) with a unique
//! uuid (`<run id>-0000-4000-8000-<counter>`) and one of 10 000 user ids, so nothing is
//! de-duplicated. Bodies are built before the timed window (up to `--prebuild-mb`; beyond that
//! they are assembled from pre-serialised fragments, a few memcpys, and counted in
//! `live_built`).
//!
//! Latency is measured per request, send to end of response. In open-loop mode it is measured
//! from the request's scheduled time when the generator is behind (so queueing is not hidden,
//! i.e. no coordinated omission) and `late` counts requests started more than 1 ms after their
//! slot; when on time it starts at the actual send (tokio's timer has 1 ms granularity).
//! Requests of the first `--warmup` seconds are sent but not timed (their errors still count);
//! `events_stored_total` counts every event answered 204, warm-up included.
//!
//! `--cpu-pid name=PID` (repeatable) reports the CPU used by other processes during the timed
//! window (from /proc, in cores), next to the generator's own and the whole machine's
//! (`machine`, and `other` = machine minus the watched processes), to show which side is
//! saturated and whether something else competed for the CPUs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FIXTURE: &str = include_str!("../hooks/events/user.lifecycle.suspend.json");
/// Users the events are spread over (the ingest script keeps a user → tenant hash).
const USERS: u64 = 10_000;
/// Linux's USER_HZ: the unit of utime/stime in /proc/PID/stat.
const CLK_TCK: f64 = 100.0;

#[derive(Parser, Debug)]
#[command(about = "Load generator for okta-adapter's POST /hooks/okta/events")]
struct Args {
    /// Adapter base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    /// Value of the hook auth header (hooks.secrets).
    #[arg(long)]
    secret: String,
    /// Name of the hook auth header (hooks.auth_header).
    #[arg(long, default_value = "authorization")]
    auth_header: String,
    /// Events per delivery.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Closed loop: number of workers. Open loop: most deliveries in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Length of the timed window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Deliveries per second (open loop). Without it: closed loop, as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load before the timed window (not recorded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Most memory spent on pre-built bodies, in MiB.
    #[arg(long, default_value_t = 1024)]
    prebuild_mb: usize,
    /// Prefix of every event uuid (random when absent).
    #[arg(long)]
    run_id: Option<u32>,
    /// Report CPU use of another process during the timed window: `name=PID` (repeatable).
    #[arg(long = "cpu-pid", value_parser = parse_named_pid)]
    cpu_pids: Vec<(String, u32)>,
    /// Print the first delivery body and exit (to inspect what is sent).
    #[arg(long)]
    dump: bool,
}

fn parse_named_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected name=PID")?;
    let pid = pid.parse().map_err(|e| format!("bad PID `{pid}`: {e}"))?;
    Ok((name.to_string(), pid))
}

/// A compact JSON document cut at its placeholders, so a copy with other values is a
/// concatenation.
struct Template {
    parts: Vec<String>,
    /// For each cut, the index (into the constructor's placeholder list) of what goes there.
    slots: Vec<usize>,
}

impl Template {
    /// Serialises `doc` and cuts it at every occurrence of each placeholder.
    fn new(doc: &Value, placeholders: &[&str]) -> Self {
        let mut rest = serde_json::to_string(doc).expect("a Value serialises");
        let (mut parts, mut slots) = (Vec::new(), Vec::new());
        while let Some((at, slot)) = placeholders
            .iter()
            .enumerate()
            .filter_map(|(i, p)| rest.find(p).map(|at| (at, i)))
            .min()
        {
            parts.push(rest[..at].to_string());
            slots.push(slot);
            rest = rest[at + placeholders[slot].len()..].to_string();
        }
        parts.push(rest);
        for (i, p) in placeholders.iter().enumerate() {
            assert!(slots.contains(&i), "placeholder {p} in template");
        }
        Self { parts, slots }
    }

    fn render_into(&self, out: &mut Vec<u8>, values: &[&[u8]]) {
        for (part, &slot) in self.parts.iter().zip(&self.slots) {
            out.extend_from_slice(part.as_bytes());
            out.extend_from_slice(values[slot]);
        }
        out.extend_from_slice(self.parts.last().expect("a part").as_bytes());
    }
}

/// Builds delivery number `seq`: events `seq * batch ..`, each with a unique uuid.
struct BodyFactory {
    run_id: u32,
    batch: usize,
    envelope: Template,
    event: Template,
}

impl BodyFactory {
    fn new(run_id: u32, batch: usize) -> Self {
        let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
        let mut event = fixture["data"]["events"][0].clone();
        event["uuid"] = json!("@@UUID@@");
        event["target"][0]["id"] = json!("@@USER@@");
        event["target"][0]["alternateId"] = json!("@@USER@@@acme.com");
        assert!(
            event["eventType"]
                .as_str()
                .is_some_and(|t| t.starts_with("user.lifecycle.")),
            "the event must match the default lifecycle route"
        );
        let mut envelope = fixture;
        envelope["eventId"] = json!("@@EVENTID@@");
        envelope["data"]["events"] = json!(["@@EVENTS@@"]);
        Self {
            run_id,
            batch,
            envelope: Template::new(&envelope, &["@@EVENTID@@", "\"@@EVENTS@@\""]),
            event: Template::new(&event, &["@@UUID@@", "@@USER@@"]),
        }
    }

    fn uuid(&self, kind: u16, n: u64) -> String {
        format!("{:08x}-{kind:04x}-4000-8000-{n:012x}", self.run_id)
    }

    fn event_bytes(&self) -> usize {
        let mut out = Vec::new();
        self.push_event(&mut out, 0);
        out.len()
    }

    fn push_event(&self, out: &mut Vec<u8>, n: u64) {
        let uuid = self.uuid(0, n);
        let user = format!("00ubench{:011}", n % USERS);
        self.event
            .render_into(out, &[uuid.as_bytes(), user.as_bytes()]);
    }

    fn delivery(&self, seq: u64) -> Bytes {
        let first = seq * self.batch as u64;
        let mut events = Vec::with_capacity(self.batch * 1800);
        for i in 0..self.batch as u64 {
            if i > 0 {
                events.push(b',');
            }
            self.push_event(&mut events, first + i);
        }
        let id = self.uuid(1, seq);
        let mut out = Vec::with_capacity(events.len() + 512);
        self.envelope
            .render_into(&mut out, &[id.as_bytes(), &events]);
        Bytes::from(out)
    }
}

/// Most time one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One keep-alive HTTP/1.1 connection, written by hand: the generator shares the two cores with
/// the adapter and Redis, so every microsecond it spends per request is taken from what is
/// measured. With reqwest it used ~14 µs of CPU per delivery; this costs about a third of that
/// (a write, a read, and httparse on a ~100-byte response).
struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_string(),
            stream: None,
            out: Vec::with_capacity(64 * 1024),
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `head` + Content-Length + `body`; `Err` describes anything but a 204. Any failure
    /// drops the connection, so the next request starts on a fresh one.
    async fn send(&mut self, head: &[u8], body: &[u8]) -> Result<(), String> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(head, body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, head: &[u8], body: &[u8]) -> Result<(), String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", self.addr))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        self.out.clear();
        self.out.extend_from_slice(head);
        self.out
            .extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        self.out.extend_from_slice(body);
        stream
            .write_all(&self.out)
            .await
            .map_err(|e| format!("sending: {e}"))?;

        self.buf.clear();
        loop {
            read_more(stream, &mut self.buf, "before a complete response").await?;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let head_len = match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => continue,
                Err(e) => return Err(format!("bad response: {e}")),
            };
            let status = resp.code.unwrap_or(0);
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
            };
            let length: usize = header("content-length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let close = header("connection").is_some_and(|v| v.contains("close"));
            while self.buf.len() < head_len + length {
                read_more(stream, &mut self.buf, "inside the response body").await?;
            }
            if close {
                self.stream = None;
            }
            return if status == 204 {
                Ok(())
            } else {
                let body = &self.buf[head_len..head_len + length];
                let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]);
                Err(format!("HTTP {status}: {snippet}"))
            };
        }
    }
}

/// Appends what the socket has to `buf`; `Err` when it fails or is closed (`where_` says at
/// which point of the response).
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, where_: &str) -> Result<(), String> {
    match stream.read_buf(buf).await {
        Ok(0) => Err(format!("connection closed {where_}")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading {where_}: {e}")),
    }
}

/// Everything the workers share.
struct Ctx {
    /// host:port of the adapter.
    addr: String,
    /// Request line and headers up to the value of Content-Length.
    head: Vec<u8>,
    factory: BodyFactory,
    prebuilt: Vec<Bytes>,
    next: AtomicU64,
    live_built: AtomicU64,
    start: Instant,
    record_from: Instant,
    deadline: Instant,
    rate: Option<f64>,
}

impl Ctx {
    fn body(&self, seq: u64) -> Bytes {
        match self.prebuilt.get(seq as usize) {
            Some(b) => b.clone(),
            None => {
                self.live_built.fetch_add(1, Ordering::Relaxed);
                self.factory.delivery(seq)
            }
        }
    }
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u32>,
    /// Deliveries answered 204, warm-up included (what Redis should now hold).
    ok_total: u64,
    /// Anything but a 204, warm-up included.
    errors: u64,
    error_samples: Vec<String>,
    late: u64,
    last_end: Option<Instant>,
}

impl WorkerStats {
    fn record(&mut self, started: Instant, result: Result<(), String>, ctx: &Ctx) {
        let ended = Instant::now();
        match result {
            Ok(()) => self.ok_total += 1,
            Err(e) => {
                self.errors += 1;
                if self.error_samples.len() < 5 {
                    self.error_samples.push(e);
                }
            }
        }
        if started >= ctx.record_from {
            let us = ended.duration_since(started).as_micros();
            self.latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
            self.last_end = Some(ended);
        }
    }
}

/// Closed loop: next delivery as soon as the previous one is answered.
async fn closed_worker(ctx: Arc<Ctx>) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut conn = Conn::new(&ctx.addr);
    while Instant::now() < ctx.deadline {
        let seq = ctx.next.fetch_add(1, Ordering::Relaxed);
        let body = ctx.body(seq);
        let started = Instant::now();
        let result = conn.send(&ctx.head, &body).await;
        stats.record(started, result, &ctx);
    }
    stats
}

/// Open loop: delivery `i` is due at `start + i / rate`, whatever happened to the others.
async fn open_worker(ctx: Arc<Ctx>) -> WorkerStats {
    let rate = ctx.rate.expect("open loop has a rate");
    let mut stats = WorkerStats::default();
    let mut conn = Conn::new(&ctx.addr);
    loop {
        let seq = ctx.next.fetch_add(1, Ordering::Relaxed);
        let due = ctx.start + Duration::from_secs_f64(seq as f64 / rate);
        if due >= ctx.deadline {
            break;
        }
        let body = ctx.body(seq);
        let now = Instant::now();
        let started = if now < due {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            if due >= ctx.record_from && now.duration_since(due) > Duration::from_millis(1) {
                stats.late += 1;
            }
            due
        };
        let result = conn.send(&ctx.head, &body).await;
        stats.record(started, result, &ctx);
    }
    stats
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Busy time of the whole machine (every CPU: all but idle and iowait), in clock ticks.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    Some(v.get(..8)?.iter().sum::<u64>() - v[3] - v[4])
}

/// Ticks of each watched process, then of the whole machine.
fn cpu_snapshot(pids: &[(String, String)]) -> Vec<Option<u64>> {
    pids.iter()
        .map(|(_, pid)| cpu_ticks(pid))
        .chain(std::iter::once(machine_busy_ticks()))
        .collect()
}

/// Nearest-rank percentile of sorted microseconds, in ms.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.batch == 0 || args.concurrency == 0 || args.duration <= 0.0 {
        eprintln!("error: --batch, --concurrency and --duration must be positive");
        return std::process::ExitCode::FAILURE;
    }
    if args.rate.is_some_and(|r| r <= 0.0) {
        eprintln!("error: --rate must be positive");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> std::process::ExitCode {
    let run_id = args.run_id.unwrap_or_else(rand::random);
    let factory = BodyFactory::new(run_id, args.batch);
    let event_bytes = factory.event_bytes();
    if args.dump {
        println!("{}", String::from_utf8_lossy(&factory.delivery(0)));
        return std::process::ExitCode::SUCCESS;
    }

    // Pre-build bodies: all of them for an open loop, as many as fit the budget otherwise.
    let body_bytes = factory.delivery(0).len();
    let budget = (args.prebuild_mb << 20) / body_bytes;
    let wanted = match args.rate {
        Some(rate) => ((args.warmup + args.duration) * rate).ceil() as usize + args.concurrency,
        None => usize::MAX,
    };
    let count = wanted.min(budget).max(args.concurrency);
    let build_started = Instant::now();
    let prebuilt: Vec<Bytes> = (0..count as u64).map(|s| factory.delivery(s)).collect();
    eprintln!(
        "ingest_load: run {run_id:08x}: {count} deliveries of {} events ({body_bytes} B, \
         {event_bytes} B per event) pre-built in {:.2} s",
        args.batch,
        build_started.elapsed().as_secs_f64()
    );

    let Some(addr) = args
        .url
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/').to_string())
        .filter(|a| !a.is_empty() && !a.contains('/'))
    else {
        eprintln!("error: --url must be http://HOST:PORT (no path, no TLS)");
        return std::process::ExitCode::FAILURE;
    };
    if args.secret.contains(['\r', '\n']) || !args.auth_header.bytes().all(|b| b.is_ascii_graphic())
    {
        eprintln!("error: --secret and --auth-header must be single-line header text");
        return std::process::ExitCode::FAILURE;
    }
    let head = format!(
        "POST /hooks/okta/events HTTP/1.1\r\nHost: {addr}\r\n{}: {}\r\n\
         Content-Type: application/json\r\nContent-Length: ",
        args.auth_header, args.secret
    )
    .into_bytes();
    let start = Instant::now();
    let record_from = start + Duration::from_secs_f64(args.warmup);
    let ctx = Arc::new(Ctx {
        addr,
        head,
        factory,
        prebuilt,
        next: AtomicU64::new(0),
        live_built: AtomicU64::new(0),
        start,
        record_from,
        deadline: record_from + Duration::from_secs_f64(args.duration),
        rate: args.rate,
    });

    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let ctx = ctx.clone();
            if args.rate.is_some() {
                tokio::spawn(open_worker(ctx))
            } else {
                tokio::spawn(closed_worker(ctx))
            }
        })
        .collect();

    let mut pids: Vec<(String, String)> = vec![("loadgen".into(), "self".into())];
    pids.extend(
        args.cpu_pids
            .iter()
            .map(|(n, p)| (n.clone(), p.to_string())),
    );
    tokio::time::sleep_until(record_from.into()).await;
    let cpu_before = cpu_snapshot(&pids);
    let cpu_from = Instant::now();

    let mut latencies = Vec::new();
    let (mut errors, mut late, mut ok_total) = (0u64, 0u64, 0u64);
    let mut samples = Vec::new();
    let mut last_end = record_from;
    for w in workers {
        let s = w.await.expect("worker task");
        latencies.extend(s.latencies_us);
        errors += s.errors;
        ok_total += s.ok_total;
        late += s.late;
        samples.extend(s.error_samples);
        if let Some(t) = s.last_end {
            last_end = last_end.max(t);
        }
    }
    let cpu_after = cpu_snapshot(&pids);
    let cpu_secs = cpu_from.elapsed().as_secs_f64();

    latencies.sort_unstable();
    let deliveries = latencies.len() as u64;
    let events = deliveries * args.batch as u64;
    let seconds = last_end.duration_since(record_from).as_secs_f64().max(1e-9);
    let mean_ms = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().map(|&l| f64::from(l)).sum::<f64>() / latencies.len() as f64 / 1000.0
    };
    // CPU used during the timed window, in cores; `other` is everything on the machine that is
    // not a watched process (kernel work on their behalf is mostly charged to them already): a
    // large value means something else competed for the CPUs and the run is not representative.
    let cores: Vec<Option<f64>> = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?) as f64 / CLK_TCK / cpu_secs))
        .collect();
    let mut cpu = serde_json::Map::new();
    for ((name, _), c) in pids.iter().zip(&cores) {
        cpu.insert(name.clone(), json!(c.map(round3)));
    }
    let machine = cores.last().copied().flatten();
    cpu.insert("machine".into(), json!(machine.map(round3)));
    let watched: Option<f64> = cores[..pids.len()].iter().copied().sum();
    let other = machine.zip(watched).map(|(m, w)| round3((m - w).max(0.0)));
    cpu.insert("other".into(), json!(other));

    let report = json!({
        "batch": args.batch,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "deliveries": deliveries,
        "events": events,
        "seconds": round3(seconds),
        "events_per_sec": round3(events as f64 / seconds),
        "deliveries_per_sec": round3(deliveries as f64 / seconds),
        "p50_ms": round3(percentile_ms(&latencies, 0.50)),
        "p90_ms": round3(percentile_ms(&latencies, 0.90)),
        "p99_ms": round3(percentile_ms(&latencies, 0.99)),
        "p999_ms": round3(percentile_ms(&latencies, 0.999)),
        "max_ms": round3(percentile_ms(&latencies, 1.0)),
        "mean_ms": round3(mean_ms),
        "errors": errors,
        "late": late,
        "events_stored_total": ok_total * args.batch as u64,
        "event_bytes": event_bytes,
        "body_bytes": body_bytes,
        "live_built": ctx.live_built.load(Ordering::Relaxed),
        "cpu_cores": cpu,
        "run_id": format!("{run_id:08x}"),
    });
    println!("{report}");

    for s in &samples {
        eprintln!("ingest_load: error: {s}");
    }
    if errors > 0 || deliveries == 0 {
        eprintln!("ingest_load: FAILED: {errors} error(s), {deliveries} deliveries recorded");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
