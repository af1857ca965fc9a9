//! Redis access: key names, connections, and consumer-group upkeep; [`insight`] reads stream
//! lengths, consumer lag, dead letters and the audit log for operators.

pub mod conn;
pub mod consumer;
pub mod insight;
pub mod keys;
pub mod redis_conn;
pub mod scan;

pub use conn::RedisConn;
pub use keys::Keys;
pub use redis_conn::{
    connect, connect_lazy, connect_or_explain, ensure_group, redacted_url, GroupStatus,
    RedisUnreachable,
};
pub use scan::scan_match;
