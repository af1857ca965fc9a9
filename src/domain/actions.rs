//! Lifecycle actions support staff and client admins may run, and whether the user's projected
//! status allows them (Okta's own preconditions, HOOKS-SPEC §4.1), with a message that says
//! what to do instead.

use super::user_status::UserStatus::{self, *};

/// A lifecycle action, as the API's path names it (`snake_case`; the schema lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum Action {
    Activate,
    Reactivate,
    Deactivate,
    Suspend,
    Unsuspend,
    Unlock,
    ResetFactors,
    ResetPassword,
    ExpirePassword,
    ClearSessions,
    Delete,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Activate,
        Action::Reactivate,
        Action::Deactivate,
        Action::Suspend,
        Action::Unsuspend,
        Action::Unlock,
        Action::ResetFactors,
        Action::ResetPassword,
        Action::ExpirePassword,
        Action::ClearSessions,
        Action::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Activate => "activate",
            Action::Reactivate => "reactivate",
            Action::Deactivate => "deactivate",
            Action::Suspend => "suspend",
            Action::Unsuspend => "unsuspend",
            Action::Unlock => "unlock",
            Action::ResetFactors => "reset_factors",
            Action::ResetPassword => "reset_password",
            Action::ExpirePassword => "expire_password",
            Action::ClearSessions => "clear_sessions",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.replace('-', "_");
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// `Ok` when Okta would accept `action` for a user in `status` (unknown status: let Okta decide).
pub fn check_action(action: Action, status: Option<UserStatus>) -> Result<(), String> {
    let Some(status) = status else { return Ok(()) };
    let refuse = |advice: &str| Err(format!("user is {status}; {advice}"));
    if status == Deleted {
        return refuse("deleted users cannot be changed");
    }
    match (action, status) {
        (Action::Activate, Staged | Deprovisioned) => Ok(()),
        (Action::Activate, Suspended) => refuse("unsuspend instead of activate"),
        (Action::Activate, LockedOut) => refuse("unlock instead of activate"),
        (Action::Activate, Provisioned) => {
            refuse("activation is pending; reactivate to send the activation again")
        }
        (Action::Activate, _) => refuse("the user is already activated"),
        (Action::Reactivate, Provisioned | Recovery) => Ok(()),
        (Action::Reactivate, Staged | Deprovisioned) => refuse("activate instead of reactivate"),
        (Action::Reactivate, _) => refuse("only PROVISIONED or RECOVERY users can be reactivated"),
        (Action::Deactivate, Deprovisioned) => refuse("the user is already deactivated"),
        (Action::Deactivate, _) => Ok(()),
        (Action::Suspend, Active) => Ok(()),
        (Action::Suspend, Suspended) => refuse("the user is already suspended"),
        (Action::Suspend, _) => refuse("only ACTIVE users can be suspended"),
        (Action::Unsuspend, Suspended) => Ok(()),
        (Action::Unsuspend, _) => refuse("only SUSPENDED users can be unsuspended"),
        (Action::Unlock, LockedOut | Active) => Ok(()),
        (Action::Unlock, Suspended) => refuse("unsuspend instead of unlock"),
        (Action::Unlock, _) => refuse("only LOCKED_OUT users can be unlocked"),
        (Action::ResetFactors | Action::ClearSessions, Deprovisioned) => {
            refuse("a deactivated user has no factors or sessions to reset")
        }
        (Action::ResetFactors | Action::ClearSessions, _) => Ok(()),
        (Action::ResetPassword, Active | Recovery | PasswordExpired | LockedOut | Provisioned) => {
            Ok(())
        }
        (Action::ResetPassword, Suspended) => refuse("unsuspend before resetting the password"),
        (Action::ResetPassword, _) => refuse("activate the user before resetting the password"),
        (Action::ExpirePassword, Active) => Ok(()),
        (Action::ExpirePassword, _) => refuse("only an ACTIVE user's password can be expired"),
        (Action::Delete, Deprovisioned) => Ok(()),
        (Action::Delete, _) => refuse("deactivate first: Okta deletes only DEPROVISIONED users"),
    }
}

/// The actions a person is offered for a user in `status` (the console's action bar): those
/// [`check_action`] allows, narrowed to what makes sense to offer — unlock only when locked
/// out, reset MFA only with factors enrolled (`has_factors`). An unknown status offers nothing:
/// Okta would decide, but a button for every action would mislead.
pub fn offered_actions(status: Option<UserStatus>, has_factors: bool) -> Vec<Action> {
    let Some(s) = status else { return vec![] };
    Action::ALL
        .into_iter()
        .filter(|a| check_action(*a, Some(s)).is_ok())
        .filter(|a| match a {
            Action::Unlock => s == LockedOut,
            Action::ResetFactors => has_factors,
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_actions_follow_the_status() {
        use Action::*;
        let active = offered_actions(Some(Active), false);
        assert!(active.contains(&Suspend) && active.contains(&Deactivate));
        assert!(!active.contains(&Unsuspend) && !active.contains(&Activate));
        assert!(!active.contains(&Unlock), "unlock only when locked out");
        assert!(!active.contains(&ResetFactors), "no factors, no reset");
        assert!(offered_actions(Some(Active), true).contains(&ResetFactors));
        let suspended = offered_actions(Some(Suspended), false);
        assert!(suspended.contains(&Unsuspend) && !suspended.contains(&Suspend));
        assert!(offered_actions(Some(LockedOut), false).contains(&Unlock));
        assert!(offered_actions(Some(Deleted), true).is_empty());
        assert!(offered_actions(None, true).is_empty());
    }

    #[test]
    fn the_issue_example_reads_as_advice() {
        assert_eq!(
            check_action(Action::Activate, Some(Suspended)).unwrap_err(),
            "user is SUSPENDED; unsuspend instead of activate"
        );
    }

    #[test]
    fn okta_preconditions() {
        let ok = [
            (Action::Activate, Staged),
            (Action::Activate, Deprovisioned),
            (Action::Reactivate, Provisioned),
            (Action::Deactivate, Active),
            (Action::Suspend, Active),
            (Action::Unsuspend, Suspended),
            (Action::Unlock, LockedOut),
            (Action::ResetPassword, Active),
            (Action::ExpirePassword, Active),
            (Action::Delete, Deprovisioned),
        ];
        for (a, s) in ok {
            assert!(check_action(a, Some(s)).is_ok(), "{a:?} {s}");
        }
        let refused = [
            (Action::Activate, Active),
            (Action::Suspend, Suspended),
            (Action::Unsuspend, Active),
            (Action::Delete, Active),
            (Action::Deactivate, Deprovisioned),
            (Action::ClearSessions, Deleted),
        ];
        for (a, s) in refused {
            assert!(check_action(a, Some(s)).is_err(), "{a:?} {s}");
        }
        assert!(
            check_action(Action::Suspend, None).is_ok(),
            "unknown status: Okta decides"
        );
    }

    #[test]
    fn action_names_parse_with_dashes_or_underscores() {
        assert_eq!(Action::parse("reset-factors"), Some(Action::ResetFactors));
        assert_eq!(Action::parse("clear_sessions"), Some(Action::ClearSessions));
        assert_eq!(Action::parse("explode"), None);
    }
}
