//! User status projections: one record per Okta user, kept from the firehose.
//!
//! - [`update`] turns a firehose entry into field updates (pure);
//! - `apply.lua` applies them to the user's hash as last-writer-wins registers stamped with the
//!   event's `published` time, so delivery order and duplicates do not matter;
//! - [`write`] pipelines those scripts and keeps the indexes (login, email, tenant); its
//!   `rebuild` replays the firehose into fresh projections;
//! - [`read`] reads records back (status derived by `domain::user_status`), timelines and
//!   tenant-scoped lists;
//! - [`census`] counts each tenant's users by status (bounded reads) for the console;
//! - [`consumer`] is the firehose consumer on the shared runner: ack after apply, dead-letter
//!   poison entries.

pub mod census;
pub mod codec;
pub mod consumer;
pub mod granted;
pub mod read;
pub mod update;
pub mod view;
pub mod write;

use crate::store::RedisConn;
use redis::RedisResult;

pub use view::{UserRecord, UserView};

use crate::store::Keys;

/// Finds a user's projection by Okta id, login or email (for inline hooks).
pub async fn find_user(
    conn: &mut RedisConn,
    keys: &Keys,
    id_login_or_email: &str,
) -> RedisResult<Option<UserView>> {
    let reader = read::Reader::new(keys.clone());
    Ok(reader
        .find(conn, id_login_or_email, 1)
        .await?
        .map(|(record, _)| record.into()))
}
