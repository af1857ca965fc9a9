//! TEMPORARY STAND-IN — replace with `crate::projection::find_user` when `main` is merged.
//!
//! The projection module (issue 3) is being written on `main` and will provide exactly this
//! function and struct. Until then this stand-in finds nobody, so the token, SAML and user import
//! hooks take their "unknown user" paths; their decision logic is pure and unit-tested with
//! hand-made [`UserView`]s.

use redis::aio::ConnectionManager;

use crate::store::Keys;

/// What the projection knows about one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserView {
    pub id: String,
    pub login: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub tenant: Option<String>,
    pub status: Option<String>,
    /// Group display names.
    pub groups: Vec<String>,
    pub apps: Vec<String>,
    pub factors: Vec<String>,
    pub freshness: Option<String>,
}

/// TEMPORARY: always `Ok(None)`. Same signature as `crate::projection::find_user`.
pub async fn find_user(
    _conn: &mut ConnectionManager,
    _keys: &Keys,
    _id_login_or_email: &str,
) -> redis::RedisResult<Option<UserView>> {
    Ok(None)
}
