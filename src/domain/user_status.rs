//! A user's Okta status, derived from lifecycle, lock, password and delete events.
//!
//! Events arrive out of order and more than once, so the status is not kept as a running
//! state machine (whose result would depend on arrival order). The projection keeps, per
//! status-affecting event type, only the newest event of that type (a max-register: order- and
//! duplicate-independent), and [`status_from_evidence`] folds those newest events in `published`
//! order through Okta's status rules. Same evidence → same status, whatever the delivery order.

use std::fmt;

/// Okta's user statuses, plus `DELETED` once deletion was initiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, poem_openapi::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    Staged,
    Provisioned,
    Active,
    Recovery,
    PasswordExpired,
    LockedOut,
    Suspended,
    Deprovisioned,
    Deleted,
}

impl UserStatus {
    pub const ALL: [UserStatus; 9] = [
        UserStatus::Staged,
        UserStatus::Provisioned,
        UserStatus::Active,
        UserStatus::Recovery,
        UserStatus::PasswordExpired,
        UserStatus::LockedOut,
        UserStatus::Suspended,
        UserStatus::Deprovisioned,
        UserStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Staged => "STAGED",
            UserStatus::Provisioned => "PROVISIONED",
            UserStatus::Active => "ACTIVE",
            UserStatus::Recovery => "RECOVERY",
            UserStatus::PasswordExpired => "PASSWORD_EXPIRED",
            UserStatus::LockedOut => "LOCKED_OUT",
            UserStatus::Suspended => "SUSPENDED",
            UserStatus::Deprovisioned => "DEPROVISIONED",
            UserStatus::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether the user can sign in in this status.
    pub fn can_sign_in(self) -> bool {
        matches!(self, UserStatus::Active | UserStatus::PasswordExpired)
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every event type that can change a user's status (HOOKS-SPEC §2.8).
pub const STATUS_EVENT_TYPES: &[&str] = &[
    "user.lifecycle.create",
    "user.lifecycle.activate",
    "user.lifecycle.reactivate",
    "user.lifecycle.deactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.delete.initiated",
    "user.account.lock",
    "user.account.unlock",
    "user.account.unlock_by_admin",
    "user.account.reset_password",
    "user.account.expire_password",
    "user.account.update_password",
    "user.import.password",
];

pub fn is_status_event(event_type: &str) -> bool {
    STATUS_EVENT_TYPES.contains(&event_type)
}

/// The status after `event_type` happened to a user in status `current` (`None` = unknown,
/// e.g. the user's creation was before our history). Events with a non-success outcome change
/// nothing. Returns `current` unchanged when the event does not apply in that status.
pub fn apply_event_to_user_status(
    current: Option<UserStatus>,
    event_type: &str,
    outcome: &str,
) -> Option<UserStatus> {
    use UserStatus::*;
    if !(outcome.is_empty() || outcome.eq_ignore_ascii_case("SUCCESS")) {
        return current;
    }
    let next = match event_type {
        // Okta emits `activate` after a create with activate=true; alone, create means STAGED.
        "user.lifecycle.create" => Staged,
        "user.lifecycle.activate" => Active,
        // Reactivation re-sends the activation: the user is PROVISIONED until it is completed.
        "user.lifecycle.reactivate" => Provisioned,
        "user.lifecycle.deactivate" => Deprovisioned,
        "user.lifecycle.suspend" => Suspended,
        "user.lifecycle.unsuspend" => Active,
        "user.lifecycle.delete.initiated" => Deleted,
        "user.account.lock" => LockedOut,
        "user.account.unlock" | "user.account.unlock_by_admin" => match current {
            Some(LockedOut) | None => Active,
            other => return other,
        },
        "user.account.reset_password" => Recovery,
        "user.account.expire_password" => PasswordExpired,
        // A new password (or an imported one) ends RECOVERY / PASSWORD_EXPIRED, nothing else:
        // an admin may set the password of a SUSPENDED user, who stays suspended.
        "user.account.update_password" | "user.import.password" => match current {
            Some(Recovery | PasswordExpired) => Active,
            other => return other,
        },
        _ => return current,
    };
    // Nothing brings a deleted user back.
    if current == Some(Deleted) {
        return current;
    }
    Some(next)
}

/// Stamps start with this many fixed-width characters of time (hex epoch millis), so events of
/// the same millisecond can be told apart from later ones.
pub const STAMP_TIME_LEN: usize = 11;

/// One piece of status evidence: the newest event of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvidence<'a> {
    /// Sortable stamp: [`STAMP_TIME_LEN`] characters of `published`, then a uuid tie-break.
    pub stamp: &'a str,
    pub event_type: &'a str,
    pub outcome: &'a str,
}

/// The status implied by the evidence, and the index of the event that set it (its "why").
pub fn status_from_evidence(evidence: &[StatusEvidence<'_>]) -> Option<(UserStatus, usize)> {
    // By time; events of the same millisecond (one Okta API call emits `create` and `activate`
    // together) in lifecycle order, which the type's position in STATUS_EVENT_TYPES gives.
    let rank = |t: &str| {
        STATUS_EVENT_TYPES
            .iter()
            .position(|s| *s == t)
            .unwrap_or(usize::MAX)
    };
    let millis = |s: &str| s.get(..STAMP_TIME_LEN).unwrap_or(s).to_owned();
    let mut order: Vec<usize> = (0..evidence.len()).collect();
    order.sort_by(|&a, &b| {
        let (ea, eb) = (&evidence[a], &evidence[b]);
        millis(ea.stamp)
            .cmp(&millis(eb.stamp))
            .then(rank(ea.event_type).cmp(&rank(eb.event_type)))
            .then(ea.stamp.cmp(eb.stamp))
    });
    let mut status = None;
    let mut why = None;
    for i in order {
        let e = &evidence[i];
        let next = apply_event_to_user_status(status, e.event_type, e.outcome);
        if next != status || (next.is_some() && why.is_none()) {
            why = Some(i);
        }
        status = next;
    }
    status.zip(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use UserStatus::*;

    fn fold(events: &[&str]) -> Option<UserStatus> {
        events
            .iter()
            .fold(None, |s, e| apply_event_to_user_status(s, e, "SUCCESS"))
    }

    #[test]
    fn okta_lifecycle_transitions() {
        let cases: &[(&[&str], Option<UserStatus>)] = &[
            (&["user.lifecycle.create"], Some(Staged)),
            (
                &["user.lifecycle.create", "user.lifecycle.activate"],
                Some(Active),
            ),
            (
                &["user.lifecycle.activate", "user.lifecycle.suspend"],
                Some(Suspended),
            ),
            (
                &["user.lifecycle.suspend", "user.lifecycle.unsuspend"],
                Some(Active),
            ),
            (
                &["user.lifecycle.activate", "user.lifecycle.deactivate"],
                Some(Deprovisioned),
            ),
            (
                &["user.lifecycle.deactivate", "user.lifecycle.reactivate"],
                Some(Provisioned),
            ),
            (
                &[
                    "user.lifecycle.deactivate",
                    "user.lifecycle.delete.initiated",
                ],
                Some(Deleted),
            ),
            (
                &["user.lifecycle.activate", "user.account.lock"],
                Some(LockedOut),
            ),
            (&["user.account.lock", "user.account.unlock"], Some(Active)),
            (
                &["user.account.lock", "user.account.unlock_by_admin"],
                Some(Active),
            ),
            (
                &["user.lifecycle.activate", "user.account.reset_password"],
                Some(Recovery),
            ),
            (
                &[
                    "user.account.reset_password",
                    "user.account.update_password",
                ],
                Some(Active),
            ),
            (&["user.account.expire_password"], Some(PasswordExpired)),
            (
                &["user.account.expire_password", "user.import.password"],
                Some(Active),
            ),
            (&["user.session.start"], None),
        ];
        for (events, expected) in cases {
            assert_eq!(fold(events), *expected, "{events:?}");
        }
    }

    #[test]
    fn events_that_do_not_apply_leave_the_status_alone() {
        // Setting a suspended user's password does not unsuspend them.
        assert_eq!(
            fold(&["user.lifecycle.suspend", "user.account.update_password"]),
            Some(Suspended)
        );
        // Unlock of a deprovisioned user does not reactivate them.
        assert_eq!(
            fold(&["user.lifecycle.deactivate", "user.account.unlock"]),
            Some(Deprovisioned)
        );
        // Nothing resurrects a deleted user.
        assert_eq!(
            fold(&["user.lifecycle.delete.initiated", "user.lifecycle.activate"]),
            Some(Deleted)
        );
        // A failed event changes nothing.
        assert_eq!(
            apply_event_to_user_status(Some(Active), "user.lifecycle.suspend", "FAILURE"),
            Some(Active)
        );
    }

    #[test]
    fn events_of_the_same_millisecond_fold_in_lifecycle_order() {
        let ev = [
            StatusEvidence {
                stamp: "0000000001000ffff",
                event_type: "user.lifecycle.activate",
                outcome: "SUCCESS",
            },
            StatusEvidence {
                stamp: "00000000010000000",
                event_type: "user.lifecycle.create",
                outcome: "SUCCESS",
            },
        ];
        assert_eq!(status_from_evidence(&ev), Some((Active, 0)));
    }

    #[test]
    fn evidence_is_folded_in_published_order_and_names_its_why() {
        let ev = [
            StatusEvidence {
                stamp: "0000000000300b",
                event_type: "user.lifecycle.unsuspend",
                outcome: "SUCCESS",
            },
            StatusEvidence {
                stamp: "0000000000100a",
                event_type: "user.lifecycle.activate",
                outcome: "SUCCESS",
            },
            StatusEvidence {
                stamp: "0000000000200c",
                event_type: "user.lifecycle.suspend",
                outcome: "SUCCESS",
            },
        ];
        assert_eq!(status_from_evidence(&ev), Some((Active, 0)));
        assert_eq!(status_from_evidence(&ev[1..]), Some((Suspended, 1)));
        assert_eq!(status_from_evidence(&[]), None);
    }

    fn any_event() -> impl Strategy<Value = (u16, &'static str)> {
        (
            0u16..500,
            proptest::sample::select(STATUS_EVENT_TYPES.to_vec()),
        )
    }

    proptest! {
        /// The projection's guarantee: the same evidence in any order gives the same status.
        #[test]
        fn status_does_not_depend_on_evidence_order(
            events in proptest::collection::vec(any_event(), 0..12),
            seed in any::<u64>(),
        ) {
            let stamps: Vec<String> = events.iter().enumerate()
                .map(|(i, (t, _))| format!("{t:011x}{i:05x}")).collect();
            let ev: Vec<StatusEvidence> = events.iter().zip(&stamps)
                .map(|((_, ty), s)| StatusEvidence { stamp: s, event_type: ty, outcome: "SUCCESS" })
                .collect();
            let mut shuffled = ev.clone();
            let mut rng = seed;
            for i in (1..shuffled.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (rng >> 33) as usize % (i + 1));
            }
            let a = status_from_evidence(&ev).map(|(s, i)| (s, ev[i].stamp));
            let b = status_from_evidence(&shuffled).map(|(s, i)| (s, shuffled[i].stamp));
            prop_assert_eq!(a, b);
        }
    }
}
