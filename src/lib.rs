//! okta-adapter: stands between an Okta org and a company's products.
//!
//! - [`http`] — the HTTP surface (poem + poem-openapi): the shared state (`state`), every
//!   authentication type and the audit write (`auth`), Okta hook endpoints, the management API,
//!   operations endpoints, OpenAPI and Swagger UI; one JSON error shape; slow-client limits.
//! - [`fanout`] — event hook ingest: a delivery becomes stream entries in one atomic, de-duplicating
//!   Redis script per slice; Okta's 2xx only follows a successful write.
//! - [`projection`] — one record per Okta user from the firehose (consumer group): stamped
//!   last-writer-wins registers, so order and duplicates do not matter; indexes and reads.
//! - [`jobs`] — bulk jobs: streamed uploads into a shared queue, workers under the rate
//!   scheduler, exactly-once row results, crash-safe.
//! - [`reporting`] — monthly IAM metrics: a consumer group counts events into per-tenant, per-month
//!   aggregates (HyperLogLog + counters, idempotent per entry); the report is compiled from them,
//!   rendered (HTML, text, PNG chart) and mailed exactly once per month by a cron job.
//! - [`domain`] — pure rules, unit-tested without Redis: user status, lifecycle preconditions,
//!   route matching, tenant resolution and the tenant id rule, the legacy hash cost model.
//! - [`inline`] — inline hook decisions (password import, registration, user import, token,
//!   SAML, telephony) under a hard deadline with per-type safe answers; the legacy credential
//!   store and its clean-up consumer.
//! - [`okta`] — Okta wire types (parsed leniently), the Management API client and the rate
//!   scheduler shared by all replicas through Redis.
//! - [`store`] — every Redis key (one module), connections, and the one consumer-group runner
//!   every stream consumer uses (connect, reclaim, `NOGROUP`, back-off, lag).
//! - [`access`] — API keys (hash-only storage), roles, tenant visibility, the audit stream.
//! - [`config`] — layered settings (embedded defaults → file → env), parsed into typed values at
//!   load, every problem reported at once in one line each; it imports only `domain`.
//! - [`startup`] / [`shutdown`] / [`telemetry`] — wiring and shutdown order, signals, logs and
//!   metrics; [`consumers`] — the low-priority runtime of the background consumers;
//!   [`maintenance`] — the periodic upkeep (dedup trim, stale uploads, lost groups, gauges).
//! - [`cli`] — every `okta-adapter` command but `serve` (keys, import, report, credentials,
//!   projections, check-config, openapi, dev), as library code behind a thin `main.rs`.
//! - [`console`] — the web console (`/console`): server-rendered pages (minijinja + htmx) for
//!   support staff, client admins and operators; Okta OIDC sign-in, one-time links, Redis
//!   sessions with CSRF; the API's principal, scoping and status rules.
//! - [`selfservice`] — public pages where an end user resets their own MFA by a single-use
//!   emailed link (per-tenant switch, limits per login and IP, same answer for every login).
//! - [`backfill`] — System Log polling (following Okta's `next` link) through the same ingest
//!   step: fills the holes Okta's one retry left; continuous, or on demand from a time.
//! - [`replay`] — replay firehose entries into a route stream or a new consumer group; list,
//!   delete and redrive dead letters.
//! - [`spool`] — the local disk spool: deliveries Redis cannot take are fsync'd to a file and
//!   answered 204, then drained into Redis in order through the same ingest step.
//! - [`tenants`] — tenant provisioning: a tenant document (groups, group rule, one OIDC app per
//!   installation) applied as a resumable saga of find-or-create steps under the rate scheduler;
//!   the same steps dry-run as plan and drift; installation configs and the `config` stream.
//! - [`dev`] — `okta-adapter dev`: a private Redis, the Okta simulator (crate `okta-sim`, behind
//!   the default `demo` feature) with demo users, and printed keys: the whole product in one command.
#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc: under 75 concurrent inline hooks glibc's allocator (arena
/// locks, `malloc_consolidate`) took ~22 % of the CPU in a profile of the token hook benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod access;
pub mod backfill;
pub mod cli;
pub mod config;
pub mod console;
pub mod consumers;
pub mod dev;
pub mod domain;
pub mod fanout;
pub mod http;
pub mod inline;
pub mod jobs;
pub mod maintenance;
pub mod okta;
pub mod projection;
pub mod replay;
pub mod reporting;
pub mod selfservice;
pub mod shutdown;
pub mod spool;
pub mod startup;
pub mod store;
pub mod telemetry;
// Tenant provisioning (issue 18): tenants as declared resources, installation configs.
pub mod tenants;
