//! Inline hook wire types: the requests Okta sends and the responses it accepts.
//!
//! Spec: <https://developer.okta.com/docs/concepts/inline-hooks/> (HOOKS-SPEC §3).
//!
//! Requests are parsed leniently, like event hooks: Okta's own samples disagree on types
//! (`eventTypeVersion` is `"1.0"` or `1`, telephony's `phoneNumber` a string or a number) and the
//! shape of `data.action` differs per hook type (`{"credential": …}`, `{"result": …}`, the bare
//! string `"ALLOW"`), so only the fields a decision needs are read, each accepting a string, a
//! number or null, and everything else is ignored. A field of the wrong shape reads as absent
//! rather than failing the whole request: an inline hook that answers 400 blocks a sign-in.
//!
//! Responses are the documented `{commands, error, debugContext}` object (§3.3); the types
//! derive both serde (for tests and size checks) and poem-openapi (for the OpenAPI document).

use std::collections::BTreeMap;

use poem_openapi::Object;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::event_hook::lenient_string;

/// `eventType` of each inline hook type (HOOKS-SPEC §3.1).
pub mod event_types {
    pub const PASSWORD_IMPORT: &str = "com.okta.user.credential.password.import";
    pub const REGISTRATION: &str = "com.okta.user.pre-registration";
    pub const USER_IMPORT: &str = "com.okta.import.transform";
    pub const TOKEN: &str = "com.okta.oauth2.tokens.transform";
    pub const SAML: &str = "com.okta.saml.tokens.transform";
    pub const TELEPHONY: &str = "com.okta.telephony.provider";
}

/// The common envelope (CloudEvents 0.1, `cloudEventVersion` singular). `D` is the type's `data`.
#[derive(Debug, Deserialize)]
#[serde(bound = "D: serde::de::DeserializeOwned")]
pub struct InlineRequest<D> {
    #[serde(rename = "eventId", default, deserialize_with = "lenient_string")]
    pub event_id: Option<String>,
    #[serde(rename = "eventType", default, deserialize_with = "lenient_string")]
    pub event_type: Option<String>,
    /// Registration: `self.service.registration` | `progressive.profile`; telephony: the flow.
    #[serde(rename = "requestType", default, deserialize_with = "lenient_string")]
    pub request_type: Option<String>,
    #[serde(default = "Option::default", deserialize_with = "lenient_object")]
    pub data: Option<D>,
}

/// `data.context.user` in token, SAML and progressive-profile requests.
#[derive(Debug, Default, Deserialize)]
pub struct ContextUser {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_profile")]
    pub profile: Map<String, Value>,
}

impl ContextUser {
    pub fn profile_str(&self, key: &str) -> Option<&str> {
        profile_str(&self.profile, key)
    }
}

/// A profile attribute as a non-empty string.
pub fn profile_str<'a>(profile: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    profile
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

// ---- password import (§3.6.1) ----

#[derive(Debug, Default, Deserialize)]
pub struct PasswordImportData {
    #[serde(default, deserialize_with = "lenient_object")]
    pub context: Option<PasswordImportContext>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PasswordImportContext {
    #[serde(default, deserialize_with = "lenient_object")]
    pub credential: Option<ImportedCredential>,
}

/// The sign-in's username and the **plaintext** password. The password is a `SecretString` from
/// the moment it is parsed, so no `Debug`, log line or error can print it.
#[derive(Debug, Default, Deserialize)]
pub struct ImportedCredential {
    #[serde(default, deserialize_with = "lenient_string")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "lenient_secret")]
    pub password: Option<SecretString>,
}

// ---- registration (§3.6.3) ----

#[derive(Debug, Default, Deserialize)]
pub struct RegistrationData {
    #[serde(default, deserialize_with = "lenient_object")]
    pub context: Option<RegistrationContext>,
    /// SSR: the submitted form (never the password).
    #[serde(rename = "userProfile", default, deserialize_with = "lenient_profile")]
    pub user_profile: Map<String, Value>,
    /// Progressive profile: the attributes the user changed.
    #[serde(
        rename = "userProfileUpdate",
        default,
        deserialize_with = "lenient_profile"
    )]
    pub user_profile_update: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RegistrationContext {
    #[serde(default, deserialize_with = "lenient_object")]
    pub user: Option<ContextUser>,
}

// ---- user import (§3.6.4) ----

#[derive(Debug, Default, Deserialize)]
pub struct UserImportData {
    #[serde(default, deserialize_with = "lenient_object")]
    pub context: Option<UserImportContext>,
    #[serde(rename = "appUser", default, deserialize_with = "lenient_object")]
    pub app_user: Option<ProfileHolder>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub user: Option<ContextUser>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserImportContext {
    #[serde(default, deserialize_with = "lenient_object")]
    pub application: Option<Application>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Application {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProfileHolder {
    #[serde(default, deserialize_with = "lenient_profile")]
    pub profile: Map<String, Value>,
}

// ---- token (§3.6.2) and SAML (§3.6.5) ----

#[derive(Debug, Default, Deserialize)]
pub struct TokenData {
    #[serde(default, deserialize_with = "lenient_object")]
    pub context: Option<UserContext>,
    /// Present only when an ID token is being minted.
    #[serde(default, deserialize_with = "lenient_object")]
    pub identity: Option<TokenClaims>,
    /// Present only when an access token is being minted.
    #[serde(default, deserialize_with = "lenient_object")]
    pub access: Option<TokenClaims>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserContext {
    #[serde(default, deserialize_with = "lenient_object")]
    pub user: Option<ContextUser>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub session: Option<Session>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Session {
    #[serde(rename = "userId", default, deserialize_with = "lenient_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub login: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenClaims {
    #[serde(default, deserialize_with = "lenient_profile")]
    pub claims: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SamlData {
    #[serde(default, deserialize_with = "lenient_object")]
    pub context: Option<UserContext>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub assertion: Option<Assertion>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Assertion {
    #[serde(default, deserialize_with = "lenient_profile")]
    pub claims: Map<String, Value>,
}

impl UserContext {
    /// The Okta id of the user the token or assertion is for.
    pub fn user_id(&self) -> Option<&str> {
        self.user
            .as_ref()
            .and_then(|u| u.id.as_deref())
            .or_else(|| self.session.as_ref().and_then(|s| s.user_id.as_deref()))
            .filter(|s| !s.is_empty())
    }

    pub fn login(&self) -> Option<&str> {
        self.user
            .as_ref()
            .and_then(|u| u.profile_str("login"))
            .or_else(|| self.session.as_ref().and_then(|s| s.login.as_deref()))
    }
}

// ---- telephony (§3.6.6) ----

#[derive(Debug, Default, Deserialize)]
pub struct TelephonyData {
    #[serde(rename = "userProfile", default, deserialize_with = "lenient_profile")]
    pub user_profile: Map<String, Value>,
    /// Holds the OTP itself: read only by a provider, never logged or recorded.
    #[serde(
        rename = "messageProfile",
        default,
        deserialize_with = "lenient_profile"
    )]
    pub message_profile: Map<String, Value>,
}

// ---- responses (§3.3) ----

/// The body of every inline hook answer: `commands` applied in order, or an `error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Object)]
#[oai(rename = "InlineHookResponse")]
pub struct InlineResponse {
    /// `{type, value}` pairs, applied by Okta in array order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[oai(skip_serializing_if_is_empty)]
    pub commands: Vec<Command>,
    /// A business-level refusal (registration denied, telephony not delivered, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<InlineError>,
    /// Free-form; Okta copies it into the System Log (`inline_hook.response.processed`).
    #[serde(rename = "debugContext", skip_serializing_if = "Option::is_none")]
    #[oai(rename = "debugContext", skip_serializing_if_is_none)]
    pub debug_context: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
#[oai(rename = "InlineHookCommand")]
pub struct Command {
    /// e.g. `com.okta.action.update`, `com.okta.access.patch`.
    #[serde(rename = "type")]
    #[oai(rename = "type")]
    pub kind: String,
    /// An object or an array of patch operations, depending on `type`.
    pub value: Value,
}

impl Command {
    pub fn new(kind: &str, value: Value) -> Self {
        Self {
            kind: kind.to_string(),
            value,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
#[oai(rename = "InlineHookError")]
pub struct InlineError {
    #[serde(rename = "errorSummary")]
    #[oai(rename = "errorSummary")]
    pub error_summary: String,
    #[serde(rename = "errorCauses", skip_serializing_if = "Vec::is_empty")]
    #[oai(rename = "errorCauses", skip_serializing_if_is_empty)]
    pub error_causes: Vec<ErrorCause>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Object)]
#[oai(rename = "InlineHookErrorCause")]
pub struct ErrorCause {
    #[serde(rename = "errorSummary")]
    #[oai(rename = "errorSummary")]
    pub error_summary: String,
    pub reason: String,
    #[serde(rename = "locationType", skip_serializing_if = "Option::is_none")]
    #[oai(rename = "locationType", skip_serializing_if_is_none)]
    pub location_type: Option<String>,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub domain: Option<String>,
}

// ---- lenient helpers ----

/// An object of the expected shape, or `None` for null, a wrong type or a wrong shape.
fn lenient_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    // Scans the raw text again instead of building a `Value` tree and converting it (which,
    // nested three deep, rebuilt a token request's claims three times). Only serde_json's own
    // text deserializers can hand out raw values, which is all the adapter uses.
    let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
    Ok(if raw.get().starts_with('{') {
        serde_json::from_str(raw.get()).ok()
    } else {
        None
    })
}

/// A JSON object (profile, claims); anything else reads as empty.
fn lenient_profile<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

fn lenient_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(lenient_string(d)?.map(SecretString::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn sample(name: &str) -> String {
        std::fs::read_to_string(format!("{}/hooks/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn okta_s_password_import_sample_yields_username_and_a_hidden_password() {
        let r: InlineRequest<PasswordImportData> =
            serde_json::from_str(&sample("inline-password-import-request.json")).unwrap();
        assert_eq!(r.event_type.as_deref(), Some(event_types::PASSWORD_IMPORT));
        let c = r.data.unwrap().context.unwrap().credential.unwrap();
        assert_eq!(c.username.as_deref(), Some("isaac.brock@example.com"));
        assert_eq!(c.password.as_ref().unwrap().expose_secret(), "Okta");
        assert!(
            !format!("{c:?}").contains("Okta\""),
            "Debug hides the password"
        );
    }

    #[test]
    fn numbers_where_strings_are_expected_and_odd_shapes_are_tolerated() {
        let body = r#"{"eventTypeVersion":1,"cloudEventVersion":0.1,"eventId":42,
            "data":{"action":"ALLOW","context":"not-an-object","userProfile":{"email":"a@b.c"},
            "userProfileUpdate":null}}"#;
        let r: InlineRequest<RegistrationData> = serde_json::from_str(body).unwrap();
        assert_eq!(r.event_id.as_deref(), Some("42"));
        let d = r.data.unwrap();
        assert!(d.context.is_none());
        assert_eq!(profile_str(&d.user_profile, "email"), Some("a@b.c"));
        assert!(d.user_profile_update.is_empty());
    }

    #[test]
    fn token_sample_knows_which_tokens_are_minted_and_for_whom() {
        let r: InlineRequest<TokenData> =
            serde_json::from_str(&sample("inline-token-request.json")).unwrap();
        let d = r.data.unwrap();
        assert!(d.identity.is_some() && d.access.is_some());
        let ctx = d.context.unwrap();
        assert_eq!(ctx.user_id(), Some("00uq8tMo3zV0OfJON0g3"));
        assert_eq!(ctx.login(), Some("administrator1@clouditude.net"));
    }

    #[test]
    fn a_response_serialises_without_empty_parts() {
        let r = InlineResponse {
            commands: vec![Command::new(
                "com.okta.action.update",
                serde_json::json!({"credential": "VERIFIED"}),
            )],
            ..Default::default()
        };
        let expected: Value =
            serde_json::from_str(&sample("inline-password-import-response-verified.json")).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), expected);
    }
}
