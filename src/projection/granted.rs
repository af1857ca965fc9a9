//! How each of a user's groups, apps and factors came to them, read from the detail registers
//! (`d:<member register>`, see `update::member_detail`) next to the record's members.

use crate::store::RedisConn;
use redis::RedisResult;

use super::update::{field, STAMP_LEN};
use super::view::{Member, UserRecord};
use crate::store::Keys;

/// How a group or app was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Assigned to the user directly (an admin, the API, a job).
    Direct,
    /// A group rule put the user in the group (Okta's `SystemPrincipal` did it).
    Rule,
    /// Inherited from a group assigned to the app (`scope` `GROUP`), with that group's id.
    Group(String),
    /// The add event is older than the detail registers, or said nothing.
    Unknown,
}

impl Grant {
    fn parse(detail: Option<&str>) -> Self {
        match detail {
            Some("direct") => Grant::Direct,
            Some("rule") => Grant::Rule,
            Some(d) if d.starts_with("group:") => Grant::Group(d["group:".len()..].to_owned()),
            _ => Grant::Unknown,
        }
    }

    /// Whether a helpdesk may remove it from the user directly: an inherited entry changes
    /// only where it comes from (the rule, the group).
    pub fn read_only(&self) -> bool {
        matches!(self, Grant::Rule | Grant::Group(_))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Grant::Direct => "direct",
            Grant::Rule => "group_rule",
            Grant::Group(_) => "group",
            Grant::Unknown => "unknown",
        }
    }
}

/// A member with how it came.
#[derive(Debug, Clone)]
pub struct Granted {
    pub member: Member,
    pub grant: Grant,
    /// For factors: `<factorType> <provider>` when the enrolment said.
    pub detail: Option<String>,
}

/// The details of `members` (registers under `prefix`) of the user `record`, in one `HMGET`.
pub async fn granted(
    conn: &mut RedisConn,
    keys: &Keys,
    record: &UserRecord,
    prefix: &str,
    members: &[Member],
) -> RedisResult<Vec<Granted>> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = members
        .iter()
        .map(|m| format!("{}{prefix}{}", field::DETAIL_PREFIX, m.id))
        .collect();
    let raw: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(keys.user(&record.id))
        .arg(&names)
        .query_async(conn)
        .await?;
    Ok(members
        .iter()
        .zip(raw)
        .map(|(m, r)| {
            let detail = r.and_then(|r| r.get(STAMP_LEN..).map(str::to_owned));
            Granted {
                member: m.clone(),
                grant: Grant::parse(detail.as_deref()),
                detail,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_inherited_ones_are_read_only() {
        assert_eq!(Grant::parse(Some("direct")), Grant::Direct);
        assert_eq!(
            Grant::parse(Some("group:00g1")),
            Grant::Group("00g1".into())
        );
        assert_eq!(Grant::parse(None), Grant::Unknown);
        assert!(Grant::Rule.read_only());
        assert!(Grant::Group("g".into()).read_only());
        assert!(!Grant::Direct.read_only());
        assert!(!Grant::Unknown.read_only());
    }
}
