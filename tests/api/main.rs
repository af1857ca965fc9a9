//! One integration-test binary: a real adapter over real HTTP against a real `redis-server`
//! started by the helpers (one per test, on a free port, killed when the test ends).

mod cli;
mod console_pages;
mod consumer;
mod event_hook;
mod helpers;
mod inline_hooks;
mod jobs;
mod okta;
mod ops;
mod projection;
mod reports;
mod users;
// The web console over HTTP (browser tests: tests/browser/).
mod console;
