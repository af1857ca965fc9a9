//! Queued bulk imports, updates and deletions against the Okta API.
//!
//! - [`groups`]: which groups a client admin's group jobs may touch (checked at creation and
//!   again per row);
//! - [`records`]: splits an upload into records of bounded length (CSV or JSON lines);
//! - [`request`]: the one parser of a job request (kind or phase, options, format), used by
//!   the API and the CLI;
//! - [`rows`]: job kinds, options, migration phases, job states, row outcomes and row
//!   validation (pure);
//! - [`tenant_fields`]: profile values that decide a tenant, which client admins may not set;
//! - [`store`]: job metadata and counters, the file upload (streamed row by row into the shared
//!   queue, never held whole), exactly-once per-row results, export pages;
//! - [`service`]: the rules of jobs for a caller (who may run and see which job, submit,
//!   cancel, results), shared by the JSON API and the console;
//! - [`worker`]: the consumer group that runs rows under the shared rate scheduler's bulk lane.

pub mod groups;
pub mod records;
pub mod request;
pub mod rows;
pub mod service;
pub mod store;
pub mod tenant_fields;
pub mod worker;
