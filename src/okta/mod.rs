//! Okta: wire types (serde), the Management API client and its shared rate scheduler.

pub mod client;
pub mod event_hook;
pub mod helpdesk;
pub mod inline_hook;
pub mod rate;
