//! User status projections: one record per Okta user, kept from the firehose.
//!
//! - [`update`] turns a firehose entry into field updates (pure);
//! - `apply.lua` applies them to the user's hash as last-writer-wins registers stamped with the
//!   event's `published` time, so delivery order and duplicates do not matter;
//! - [`store`] pipelines those scripts, keeps the indexes (login, email, tenant) and reads
//!   records back, deriving status with `domain::user_status`;
//! - [`consumer`] is the consumer-group loop: ack after apply, reclaim from dead consumers,
//!   dead-letter poison entries, lag metrics; and `rebuild` replays the firehose.

pub mod codec;
pub mod consumer;
pub mod store;
pub mod update;
pub mod view;

use redis::aio::ConnectionManager;
use redis::RedisResult;

pub use view::{UserRecord, UserView};

use crate::store::Keys;

/// Finds a user's projection by Okta id, login or email (for inline hooks).
pub async fn find_user(
    conn: &mut ConnectionManager,
    keys: &Keys,
    id_login_or_email: &str,
) -> RedisResult<Option<UserView>> {
    let reader = store::Reader::new(keys.clone());
    Ok(reader
        .find(conn, id_login_or_email, 1)
        .await?
        .map(|(record, _)| record.into()))
}
