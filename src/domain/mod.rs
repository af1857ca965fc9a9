//! Pure logic, unit-tested without Redis.

pub mod actions;
pub mod hash_cost;
pub mod routing;
pub mod tenant;
pub mod tenant_id;
pub mod user_status;
