#!/usr/bin/env python3
"""Writes hooks/events/*.json: one realistic event hook delivery per user-lifecycle event type
of HOOKS-SPEC §2.8, shaped like Okta's published sample (event-hook-user-session-start.json).

Our own fixtures, not Okta's: uuids, ids and times are made up but well-formed. Re-run to
regenerate (the output is deterministic)."""
import json, os, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ADMIN = {"id": "00uadmin0000000001", "type": "User", "alternateId": "it-admin@example.com",
         "displayName": "IT Admin", "detailEntry": None}
USER = {"id": "00ujane000000000001", "type": "User", "alternateId": "jane.doe@acme.com",
        "displayName": "Jane Doe", "detailEntry": None}
GROUP = {"id": "00gacme0000000000001", "type": "UserGroup", "alternateId": "unknown",
         "displayName": "tenant-acme", "detailEntry": None}
APP = {"id": "0oasurvey00000000001", "type": "AppInstance", "alternateId": "Survey Platform",
       "displayName": "Survey Platform", "detailEntry": None}
FACTOR = {"id": "mbl1nz9JHJGHWRKMTLHP", "type": "AuthenticatorEnrollment", "alternateId": "unknown",
          "displayName": "Okta Verify", "detailEntry": {"methodTypeUsed": "Okta Verify Push"}}

# (eventType, legacyEventType, displayMessage, actor is the user?, targets, outcome)
EVENTS = [
    ("user.lifecycle.create", "core.user.config.user_creation.success", "Create Okta user", False, [USER], "SUCCESS"),
    ("user.lifecycle.activate", "core.user.config.user_activated", "Activate Okta user", False, [USER], "SUCCESS"),
    ("user.lifecycle.deactivate", "core.user.config.user_deactivated", "Deactivate Okta user", False, [USER], "SUCCESS"),
    ("user.lifecycle.suspend", "core.user.config.user_suspended", "Suspend Okta user", False, [USER], "SUCCESS"),
    ("user.lifecycle.unsuspend", "core.user.config.user_unsuspended", "Unsuspend Okta user", False, [USER], "SUCCESS"),
    ("user.lifecycle.reactivate", "core.user.config.user_reactivated", "Reactivate Okta user", False, [USER], "SUCCESS"),
    ("user.lifecycle.delete.initiated", "core.user.config.user_deleted", "Delete Okta user", False, [USER], "SUCCESS"),
    ("user.account.update_profile", "core.user.config.profile_update.success", "Update user profile for Okta", False, [USER], "SUCCESS"),
    ("user.account.update_password", "core.user.config.password_update.success", "Update password for user", True, [USER], "SUCCESS"),
    ("user.account.reset_password", "core.user.config.password_reset", "Reset password for user", False, [USER], "SUCCESS"),
    ("user.import.password", None, "Import user password from external system during login", True, [USER], "SUCCESS"),
    ("user.account.lock", "core.user.config.user_locked_out", "Max sign in attempts exceeded", True, [USER], "SUCCESS"),
    ("user.account.unlock", "core.user.config.user_unlocked", "Automatically unlock user", True, [USER], "SUCCESS"),
    ("user.account.unlock_by_admin", "core.user.config.user_unlocked_by_admin", "Unlock user by admin", False, [USER], "SUCCESS"),
    ("user.session.start", "core.user_auth.login_success", "User login to Okta", True, [APP], "SUCCESS"),
    ("user.session.end", "core.user_auth.logout_success", "User logout from Okta", True, [], "SUCCESS"),
    ("user.session.clear", None, "Clear user session", False, [USER], "SUCCESS"),
    ("user.authentication.sso", "app.auth.sso", "User single sign on to app", True, [APP], "SUCCESS"),
    ("user.mfa.factor.activate", "core.user.factor.activate", "Activate factor or authenticator", True, [FACTOR, USER], "SUCCESS"),
    ("user.mfa.factor.deactivate", "core.user.factor.deactivate", "Reset factor or authenticator", False, [FACTOR, USER], "SUCCESS"),
    ("user.mfa.factor.reset_all", "core.user.factor.reset_all", "Reset all factors for user", False, [USER], "SUCCESS"),
    ("group.user_membership.add", "core.user_group_member.user_add", "Add user to group membership", False, [USER, GROUP], "SUCCESS"),
    ("group.user_membership.remove", "core.user_group_member.user_remove", "Remove user from group membership", False, [USER, GROUP], "SUCCESS"),
    ("application.user_membership.add", "app.generic.provision.assign_user_to_app", "Add user to application membership", False, [USER, APP], "SUCCESS"),
    ("application.user_membership.remove", "app.generic.unauth_app_access_attempt", "Remove user from application membership", False, [USER, APP], "SUCCESS"),
]


def client():
    geo = {"city": "Toronto", "state": "Ontario", "country": "Canada", "postalCode": "M4M",
           "geolocation": {"lat": 43.6567, "lon": -79.34}}
    return {
        "userAgent": {"rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
                      "(KHTML, like Gecko) Chrome/111.0.0.0 Safari/537.36", "os": "Mac OS X", "browser": "CHROME"},
        "zone": "null", "device": "Computer", "id": None, "ipAddress": "142.126.158.61",
        "geographicalContext": geo,
        "ipChain": [{"ip": "142.126.158.61", "geographicalContext": geo, "version": "V4", "source": None}],
    }


def log_event(n, etype, legacy, message, actor_is_user, targets, outcome):
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, "okta-adapter-fixture/" + etype)),
        "published": "2026-10-%02dT09:%02d:00.000Z" % (1 + n % 28, n % 60),
        "eventType": etype, "version": "0", "displayMessage": message, "severity": "INFO",
        "client": client(), "device": None,
        "actor": USER if actor_is_user else ADMIN,
        "outcome": {"result": outcome, "reason": None},
        "target": targets,
        "transaction": {"type": "WEB", "id": "ZCCzm8j2wTvzwele2NwL%04d" % n, "detail": {}},
        "debugContext": {"debugData": {"requestId": "ZCCzm8j2wTvzwele2NwL%04d" % n,
                                        "requestUri": "/api/v1/users", "url": "/api/v1/users?",
                                        "threatSuspected": "false"}},
        "legacyEventType": legacy,
        "authenticationContext": {"authenticationProvider": None, "credentialProvider": None,
                                  "credentialType": None, "issuer": None, "authenticationStep": 0,
                                  "externalSessionId": "idxyNcxVX2ESsSL0u462548Qg", "interface": None},
        "securityContext": {"asNumber": None, "asOrg": None, "isp": None, "domain": None, "isProxy": None},
        "insertionTimestamp": None,
    }


for n, spec in enumerate(EVENTS):
    delivery = {
        "eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/who7hphp39JoHLni81d7",
        "eventId": str(uuid.uuid5(uuid.NAMESPACE_URL, "okta-adapter-delivery/" + spec[0])),
        "data": {"events": [log_event(n, *spec)]},
        "eventTime": "2026-10-01T10:00:00.000Z", "contentType": "application/json",
    }
    with open(os.path.join(HERE, "events", spec[0] + ".json"), "w") as f:
        json.dump(delivery, f, indent=2)
        f.write("\n")
