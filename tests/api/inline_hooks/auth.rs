//! Who may call the inline hooks: the shared secret, Okta's OAuth 2.0 bearer tokens, and
//! what a malformed or oversized body gets.

use super::*;

// ---- authentication and bad input ----

#[tokio::test]
async fn a_wrong_or_missing_secret_gets_401_on_every_inline_hook() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    for hook in HOOKS {
        let body = okta_request(hook).to_string();
        for secret in [
            None,
            Some("wrong"),
            Some("test-secret-1x"),
            Some("Bearer test-secret-1"),
        ] {
            let resp = post_inline_raw(&app, hook, body.clone(), secret).await;
            assert_eq!(resp.status(), 401, "{hook} with {secret:?}");
            assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized");
        }
        // Both rotation secrets work.
        for secret in [SECRET, SECOND_SECRET] {
            let resp = post_inline_raw(&app, hook, body.clone(), Some(secret)).await;
            assert!(resp.status().is_success(), "{hook}: {}", resp.status());
        }
    }
    let m = app.metrics().await;
    assert!(
        m.contains("okta_adapter_hook_auth_failures_total{hook=\"token\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_json_error_and_oversized_ones_413() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[inline]\nmax_body_bytes = 4096\n").await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("token", "{\"data\": {".into(), "not valid JSON"),
        ("token", "".into(), "not valid JSON"),
        ("saml", "[1, 2]".into(), "expected a JSON object"),
        (
            "registration",
            json!({"eventType": "com.okta.user.pre-registration"}).to_string(),
            "`data` is missing",
        ),
        (
            "registration",
            json!({"data": "ALLOW"}).to_string(),
            "`data` is missing",
        ),
        (
            "password-import",
            okta_request("token").to_string(),
            "this endpoint takes `com.okta.user.credential.password.import`",
        ),
        (
            "telephony",
            json!({"eventType": "com.okta.event_hook", "data": {"events": []}}).to_string(),
            "eventType is `com.okta.event_hook`",
        ),
    ];
    for (hook, body, expected) in cases {
        let resp = post_inline_raw(&app, hook, body.clone(), Some(SECRET)).await;
        assert_eq!(resp.status(), 400, "{hook}: {body:.60}");
        let err: Value = resp.json().await.expect("errors are JSON");
        assert_eq!(err["error"], "bad_request");
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "`{msg}` should mention `{expected}`"
        );
    }
    let mut big = okta_request("token");
    big["data"]["padding"] = json!("x".repeat(5000));
    let resp = post_inline_raw(&app, "token", big.to_string(), Some(SECRET)).await;
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn lenient_parsing_accepts_numbers_for_strings_and_unknown_fields() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, TENANTS).await;
    // The OpenAPI flavour of the samples: numbers where the markdown has strings.
    let mut req = okta_request("telephony");
    req["eventTypeVersion"] = json!(1);
    req["cloudEventVersion"] = json!(0.1);
    req["data"]["messageProfile"]["phoneNumber"] = json!(9876543210u64);
    req["data"]["messageProfile"]["otpCode"] = json!(11111);
    req["data"]["somethingNew"] = json!({"nested": [1, 2]});
    let (status, body) = post_inline(&app, "telephony", &req).await;
    assert_eq!(status, 200);
    assert!(body["error"].is_object());
    let mut reg = okta_request("registration");
    reg["eventTypeVersion"] = json!(1);
    reg["data"]["action"] = json!({"registration": "ALLOW"});
    assert_eq!(post_inline(&app, "registration", &reg).await.0, 200);
}

// ---- OAuth 2.0 bearer tokens ----

const ISSUER: &str = "https://test.okta.example/oauth2/default";
const AUDIENCE: &str = "api://okta-adapter-hooks";
const CLIENT_ID: &str = "0oahookclient";
const SCOPE: &str = "okta.inlinehooks.call";

/// A JWKS endpoint like the issuer's: serves whatever key set the test puts in, counts fetches.
struct Jwks {
    url: String,
    set: Arc<Mutex<Value>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
}

async fn serve_jwks(initial: Value) -> Jwks {
    use poem::{handler, web::Data, EndpointExt};
    #[handler]
    fn keys(
        Data(state): Data<&(Arc<Mutex<Value>>, Arc<std::sync::atomic::AtomicUsize>)>,
    ) -> poem::web::Json<Value> {
        state.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        poem::web::Json(state.0.lock().unwrap().clone())
    }
    let set = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = poem::Route::new()
        .at("/oauth2/default/v1/keys", poem::get(keys))
        .data((set.clone(), fetches.clone()));
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    Jwks {
        url: format!("http://{addr}/oauth2/default/v1/keys"),
        set,
        fetches,
    }
}

/// Test-only RSA keys (tests/fixtures/jwt/README.md).
fn signing_key(n: u8) -> jsonwebtoken::EncodingKey {
    let pem = std::fs::read(format!(
        "{}/tests/fixtures/jwt/okta-hook-key-{n}.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap()
}

fn public_jwk(n: u8, kid: &str) -> Value {
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&signing_key(n), jsonwebtoken::Algorithm::RS256)
            .unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "cid": CLIENT_ID, "scp": [SCOPE],
           "sub": CLIENT_ID, "iat": now(), "exp": now() + 3600, "ver": 1,
           "jti": "AT.test"})
}

fn jwt(key: u8, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &signing_key(key)).unwrap()
}

fn oauth_config(jwks_url: &str, refresh_min_secs: u64) -> String {
    format!(
        r#"
[inline.oauth]
enabled = true
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
client_id = "{CLIENT_ID}"
required_scope = "{SCOPE}"
jwks_url = "{jwks_url}"
jwks_refresh_min_secs = {refresh_min_secs}
leeway_secs = 5
"#
    )
}

#[tokio::test]
async fn a_valid_okta_bearer_token_is_accepted_and_every_invalid_one_gets_401() {
    let jwks = serve_jwks(json!({"keys": [public_jwk(1, "k1")]})).await;
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, &oauth_config(&jwks.url, 0)).await;
    let body = okta_request("token").to_string();
    let status = |token: String| {
        let app = &app;
        let body = body.clone();
        async move {
            post_inline_raw(app, "token", body, Some(&format!("Bearer {token}")))
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status(jwt(1, "k1", &good_claims())).await,
        204,
        "a valid token"
    );

    let with = |key: &str, value: Value| {
        let mut c = good_claims();
        c[key] = value;
        c
    };
    let cases = [
        (
            "wrong issuer",
            jwt(
                1,
                "k1",
                &with("iss", json!("https://evil.example/oauth2/default")),
            ),
        ),
        (
            "wrong audience",
            jwt(1, "k1", &with("aud", json!("api://default"))),
        ),
        ("expired", jwt(1, "k1", &with("exp", json!(now() - 600)))),
        (
            "not yet valid",
            jwt(1, "k1", &with("nbf", json!(now() + 600))),
        ),
        (
            "another client",
            jwt(1, "k1", &with("cid", json!("0oaother"))),
        ),
        (
            "missing scope",
            jwt(1, "k1", &with("scp", json!(["openid"]))),
        ),
        ("unknown kid", jwt(2, "k2", &good_claims())),
        ("right kid, wrong key", jwt(2, "k1", &good_claims())),
        ("no exp", {
            let mut c = good_claims();
            c.as_object_mut().unwrap().remove("exp");
            jwt(1, "k1", &c)
        }),
        ("HS256 signed with the public modulus", {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some("k1".into());
            let n = public_jwk(1, "k1")["n"].as_str().unwrap().to_string();
            jsonwebtoken::encode(
                &header,
                &good_claims(),
                &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()),
            )
            .unwrap()
        }),
        ("not a JWT", "abc.def".to_string()),
    ];
    for (what, token) in cases {
        assert_eq!(status(token).await, 401, "{what}");
    }
    // The static header secrets keep working next to OAuth.
    let resp = post_inline_raw(&app, "token", body.clone(), Some(SECRET)).await;
    assert_eq!(resp.status(), 204);

    // Key rotation: the issuer publishes k2; a token with the new kid triggers a re-fetch.
    jwks.set.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(public_jwk(2, "k2"));
    let before = jwks.fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        status(jwt(2, "k2", &good_claims())).await,
        204,
        "rotated key"
    );
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );
    // Known kids are served from the cache.
    assert_eq!(status(jwt(1, "k1", &good_claims())).await, 204);
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );
}

#[tokio::test]
async fn made_up_key_ids_do_not_make_the_adapter_refetch_the_key_set_each_time() {
    let jwks = serve_jwks(json!({"keys": [public_jwk(1, "k1")]})).await;
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, &oauth_config(&jwks.url, 3600)).await;
    let body = okta_request("saml").to_string();
    for i in 0..5 {
        let token = jwt(2, &format!("random-{i}"), &good_claims());
        let resp =
            post_inline_raw(&app, "saml", body.clone(), Some(&format!("Bearer {token}"))).await;
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one fetch, then the minimum refresh interval holds"
    );
    let ok = post_inline_raw(
        &app,
        "saml",
        body,
        Some(&format!("Bearer {}", jwt(1, "k1", &good_claims()))),
    )
    .await;
    assert_eq!(ok.status(), 204, "the cached key still verifies");
}
