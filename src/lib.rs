//! okta-adapter: stands between an Okta org and a company's products.
//!
//! - [`http`] — the HTTP surface (poem + poem-openapi): Okta hook endpoints, operations
//!   endpoints, OpenAPI and Swagger UI; one JSON error shape.
//! - [`fanout`] — event hook ingest: a delivery becomes stream entries in one atomic, de-duplicating
//!   Redis script per slice; Okta's 2xx only follows a successful write.
//! - [`domain`] — pure rules, unit-tested without Redis: route matching, tenant resolution.
//! - [`inline`] — inline hook decisions (password import, registration, user import, token,
//!   SAML, telephony) under a hard deadline with per-type safe answers; the legacy credential
//!   store and its clean-up consumer.
//! - [`okta`] — Okta wire types, parsed leniently.
//! - [`store`] — every Redis key (one module), connections, consumer-group upkeep.
//! - [`config`] — layered settings (embedded defaults → file → env) with one-line errors.
//! - [`startup`] / [`shutdown`] / [`telemetry`] — wiring, signals, logs and metrics.
//! - [`dev`] — `okta-adapter dev`: a private Redis and a demo secret for a first run.
#![forbid(unsafe_code)]

pub mod config;
pub mod dev;
pub mod domain;
pub mod fanout;
pub mod http;
pub mod inline;
pub mod okta;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
