//! Okta wire types (serde). No business logic lives here.

pub mod event_hook;
pub mod inline_hook;
