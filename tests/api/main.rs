//! One integration-test binary: a real adapter over real HTTP against a real `redis-server`
//! started by the helpers (one per test, on a free port, killed when the test ends).

mod backfill;
mod cli;
mod console_pages;
mod consumer;
mod durability;
mod event_hook;
mod helpdesk;
mod helpers;
mod inline_hooks;
mod jobs;
mod okta;
mod ops;
mod projection;
mod properties;
mod replay;
mod reports;
mod spool;
mod tenants;
mod users;
// The web console over HTTP (browser tests: tests/browser/).
mod console;
// deploy (issue 17): real serve processes, process roles
mod cluster;
mod failover;
mod processes;
mod replicas;
mod roles;
