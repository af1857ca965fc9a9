//! Loading and checking, end to end from TOML: every problem named by its key.

use super::*;

fn with_secret(extra: &str) -> String {
    format!("[hooks]\nsecrets = [\"s1\"]\n{extra}")
}

#[test]
fn defaults_with_a_secret_are_valid() {
    let s = Settings::from_toml_overrides(&with_secret("")).unwrap();
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.redis.prefix, "okta-adapter");
    assert_eq!(s.hooks.auth_header.as_str(), "authorization");
    assert_eq!(s.routes.len(), 1);
    assert!(s.signing_key().is_none());
}

#[test]
fn defaults_alone_are_refused_because_no_secret_is_set() {
    let err = Settings::from_toml_overrides("").unwrap_err();
    assert!(err.to_string().contains("hooks.secrets"), "{err}");
}

#[test]
fn an_unknown_key_is_named() {
    let err = Settings::from_toml_overrides("[http]\nlistn = \"x\"\n").unwrap_err();
    assert!(err.to_string().contains("http.listn: unknown key"), "{err}");
}

#[test]
fn a_bad_redis_url_and_listen_address_are_both_reported() {
    let err = Settings::from_toml_overrides(&with_secret(
        "[redis]\nurl = \"http://nope\"\n[http]\nlisten = \"nowhere\"\n",
    ))
    .unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(err.to_string().contains("redis.url"));
    assert!(err.to_string().contains("http.listen"));
}

#[test]
fn a_single_secret_string_is_accepted_as_a_list() {
    let s = Settings::from_toml_overrides("[hooks]\nsecrets = \"only-one\"\n").unwrap();
    assert_eq!(s.hooks.secrets.len(), 1);
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let s = Settings::from_toml_overrides(
        "[hooks]\nsecrets = [\"hunter2-secret\"]\nsigning_key = \"sign-me-key\"\n[redis]\nurl = \"redis://:pw-in-url@localhost\"\n",
    )
    .unwrap();
    let dbg = format!("{s:?}");
    for secret in ["hunter2-secret", "sign-me-key", "pw-in-url"] {
        assert!(!dbg.contains(secret), "{secret} leaked in {dbg}");
    }
}

#[test]
fn reserved_token_claims_and_a_deadline_beyond_okta_s_budget_are_refused() {
    let err = Settings::from_toml_overrides(&with_secret(
        "[inline]\ndeadline_ms = 3000\n[inline.token]\ntenant_claim = \"groups\"\nroles_claim = \"scp\"\n",
    ))
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("inline.deadline_ms"), "{msg}");
    assert!(msg.contains("inline.token.tenant_claim: `groups`"), "{msg}");
    assert!(msg.contains("inline.token.roles_claim: `scp`"), "{msg}");
}

#[test]
fn oauth_needs_its_issuer_audience_client_and_keys() {
    let err = Settings::from_toml_overrides(&with_secret(
        "[inline.oauth]\nenabled = true\nissuer = \"https://x.okta.com/oauth2/default\"\n",
    ))
    .unwrap_err();
    let msg = err.to_string();
    for key in [
        "inline.oauth.audience",
        "inline.oauth.client_id",
        "inline.oauth.jwks_url",
    ] {
        assert!(msg.contains(key), "{key} missing in {msg}");
    }
    assert!(!msg.contains("inline.oauth.issuer"), "{msg}");
}

#[test]
fn an_email_domain_claimed_by_two_tenants_is_refused() {
    let err = Settings::from_toml_overrides(&with_secret(
        "[inline]\ntenants = [{ id = \"a\", email_domains = [\"x.com\"] }, { id = \"b\", email_domains = [\"X.com\"] }]\n",
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("also belongs to tenant `a`"),
        "{err}"
    );
}

#[test]
fn report_settings_are_checked_and_the_smtp_password_never_shows() {
    let err = Settings::from_toml_overrides(&with_secret(
        "[report]\nschedule = \"0 6 1 * *\"\ntimezone = \"Mars/Olympus\"\nrecipients = [\"not-an-address\"]\n[smtp]\nurl = \"ftp://u:smtp-pw-123@host\"\n",
    ))
    .unwrap_err();
    let msg = err.to_string();
    for key in [
        "report.schedule",
        "report.timezone",
        "report.recipients[0]",
        "smtp.url",
    ] {
        assert!(msg.contains(key), "{key} in {msg}");
    }
    assert!(!msg.contains("smtp-pw-123"), "{msg}");
    let s = Settings::from_toml_overrides(&with_secret(
        "[smtp]\nurl = \"smtp://u:smtp-pw-123@mail.example.com:587?tls=required\"\n",
    ))
    .unwrap();
    assert!(!format!("{s:?}").contains("smtp-pw-123"));
    assert_eq!(s.report.schedule.as_str(), "0 0 6 1 * *");
}

#[test]
fn duplicate_route_names_and_bad_group_regex_are_refused() {
    let err = Settings::from_toml_overrides(&with_secret(
        "[[routes]]\nname = \"a\"\nevent_types = [\"x\"]\n[[routes]]\nname = \"a\"\nevent_types = [\"y\"]\n[tenants]\nrules = [{ kind = \"group\", pattern = \"(\" }]\n",
    ))
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("used twice"), "{msg}");
    assert!(msg.contains("tenants.rules[0].pattern"), "{msg}");
}

#[test]
fn tenant_ids_in_rules_routes_and_inline_tenants_are_checked_at_load() {
    let err = Settings::from_toml_overrides(&with_secret(
        "[[routes]]\nname = \"a\"\nevent_types = [\"x\"]\ntenants = [\"ok\", \"a|b\"]\n\
         [tenants]\nrules = [{ kind = \"app\", map = { \"0oa1\" = \"\" } }, \
         { kind = \"email_domain\", map = { \"acme.com\" = \"Acme Corp\" } }]\n\
         groups = { \"Globex\" = [\"00g1\"], acme = [\" \"] }\n\
         [inline]\ntenants = [{ id = \" \" }]\n",
    ))
    .unwrap_err();
    let msg = err.to_string();
    for key in [
        "routes[0].tenants: `a|b` is not a tenant id",
        "tenants.rules[0].map.0oa1: a tenant id must not be empty",
        "tenants.rules[1].map.acme.com: `Acme Corp` is not a tenant id",
        "inline.tenants[0].id: a tenant id must not be empty",
        "tenants.groups.Globex: `Globex` is not a tenant id",
        "tenants.groups.acme: a group id is empty",
    ] {
        assert!(msg.contains(key), "{key} in {msg}");
    }
}

#[test]
fn the_built_in_route_name_and_huge_script_slices_are_refused() {
    let err = Settings::from_toml_overrides(&with_secret(
        "max_events_per_write = 10000\n[[routes]]\nname = \"credential-imports\"\nevent_types = [\"x\"]\n",
    ))
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("built-in route"), "{msg}");
    assert!(msg.contains("hooks.max_events_per_write"), "{msg}");
}

#[test]
fn every_unparsable_value_and_every_broken_rule_is_reported_at_once() {
    let err = Settings::from_toml_overrides(&with_secret(
        "auth_header = \"no spaces\"\n[http]\nlisten = \"nowhere\"\n\
         [report]\nfrom = \"nobody\"\nrecipients = [\"a@example.com\", \"b\"]\nretry_max_ms = 1\n\
         [tenants]\nrules = [{ kind = \"group\", pattern = \"(\" }]\n",
    ))
    .unwrap_err();
    let problems = &err.problems;
    for key in [
        "hooks.auth_header: `no spaces` is not a valid HTTP header name",
        "http.listen: `nowhere` is not an address",
        "report.from: `nobody` is not a mailbox",
        "report.recipients[1]: `b` is not an email address",
        "tenants.rules[0].pattern: invalid regex: unclosed group",
        "report.retry_max_ms: must be >= report.retry_initial_ms",
    ] {
        assert_eq!(
            problems.iter().filter(|p| p.starts_with(key)).count(),
            1,
            "{key} once, on its own line, in {err}"
        );
    }
    assert_eq!(problems.len(), 6, "{err}");
    assert!(problems.iter().all(|p| !p.contains('\n')), "{err}");
}

#[test]
fn a_section_of_the_wrong_type_is_reported_once() {
    let err =
        Settings::from_toml_overrides(&format!("report = 5\n{}", with_secret(""))).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert!(err.problems[0].starts_with("report: "), "{err}");
}

#[test]
fn typed_values_are_what_the_code_uses() {
    let s = Settings::from_toml_overrides(&with_secret(
        "auth_header = \"X-Okta-Secret\"\n[report]\ntimezone = \"Europe/Berlin\"\n\
         from = \"IAM <iam@example.com>\"\nrecipients = [\"ops@example.com\"]\n\
         [tenants]\nrules = [{ kind = \"group\", pattern = \"^tenant-(?P<tenant>[a-z]+)$\" }]\n",
    ))
    .unwrap();
    assert_eq!(s.hooks.auth_header.as_str(), "x-okta-secret");
    assert_eq!(s.report_timezone(), chrono_tz::Europe::Berlin);
    assert_eq!(s.report.from.email.to_string(), "iam@example.com");
    assert_eq!(s.report.recipients[0].to_string(), "ops@example.com");
    assert!(
        s.smtp.url.smtp().is_none(),
        "empty smtp.url = file transport"
    );
    let TenantRuleSettings::Group { pattern } = &s.tenants.rules[0] else {
        panic!("a group rule")
    };
    assert!(pattern.is_match("tenant-acme"));
}
