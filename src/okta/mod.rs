//! Okta wire types (serde). No business logic lives here.

pub mod event_hook;
