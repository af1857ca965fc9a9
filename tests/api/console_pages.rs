//! The console's Jobs, Tenants, Reports and Operations pages over real HTTP, real Redis and the
//! Okta simulator: each page applies the JSON API's rules (roles, tenant scoping, job states),
//! every state-changing form needs the session's CSRF token, and refusals change nothing.
//! (The same flows in a real Chromium are in `tests/browser/`.)

use std::time::{Duration, Instant};

use okta_adapter::access::Role;
use okta_adapter::console::session::{SessionStore, COOKIE};
use okta_adapter::store::Keys;
use okta_sim::SimConfig;

use crate::helpers::*;

/// A signed-in console session, as the sign-in flow would leave it.
struct Browser {
    cookie: String,
    csrf: String,
    client: reqwest::Client,
    base: String,
}

async fn sign_in(app: &TestApp, role: Role, tenant: Option<&str>) -> Browser {
    let s = &app.state.settings.console;
    let store = SessionStore::new(
        Keys::new(app.prefix.clone()),
        s.idle_timeout_secs,
        s.absolute_timeout_secs,
    );
    let mut conn = app.state.redis.clone();
    let (token, session) = store
        .create(
            &mut conn,
            role,
            tenant.map(str::to_owned),
            &format!("{role}@example.com"),
        )
        .await
        .unwrap();
    Browser {
        cookie: format!("{COOKIE}={token}"),
        csrf: session.csrf,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: app.url("/console"),
    }
}

impl Browser {
    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn get_response(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// Posts a form; `csrf` false leaves the token out. Returns status, Location, body.
    async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        csrf: bool,
    ) -> (u16, String, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if csrf {
            form.push(("csrf", &self.csrf));
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, resp.text().await.unwrap())
    }

    /// Uploads a job file as the Jobs page's form does (multipart, CSRF first, file last).
    async fn upload(
        &self,
        fields: &[(&str, &str)],
        file_name: &str,
        file: &str,
        csrf: bool,
    ) -> (u16, String, String) {
        let boundary = "----console-b-test-boundary";
        let mut body = String::new();
        let mut part = |name: &str, value: &str| {
            body.push_str(&format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        };
        if csrf {
            part("csrf", &self.csrf);
        }
        for (k, v) in fields {
            part(k, v);
        }
        body.push_str(&format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\ncontent-type: application/octet-stream\r\n\r\n{file}\r\n--{boundary}--\r\n"
        ));
        let resp = self
            .client
            .post(format!("{}/jobs", self.base))
            .header("cookie", &self.cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, resp.text().await.unwrap())
    }
}

/// Five users to create; lines 3 and 5 are broken (not an email, a missing email).
const TWO_BROKEN: &str = "login,email,firstName,lastName\n\
                          ok1@example.com,ok1@example.com,A,One\n\
                          broken,ok2@example.com,B,Two\n\
                          ok3@example.com,ok3@example.com,C,Three\n\
                          ok4@example.com,,D,Four\n\
                          ok5@example.com,ok5@example.com,E,Five\n";

async fn wait_until_done(b: &Browser, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, html) = b.get(&format!("/jobs/{id}")).await;
        assert_eq!(status, 200, "{html}");
        if html.contains("job-done\">done") {
            return html;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_uploaded_csv_runs_and_its_two_broken_rows_fail_by_line_number_listed_first() {
    let redis = TestRedis::start();
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let op = sign_in(&app, Role::Operator, None).await;

    let (status, location, body) = op
        .upload(
            &[("kind", "create"), ("format", "auto")],
            "users.csv",
            TWO_BROKEN,
            true,
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert!(
        location.ends_with(&format!("/console/jobs/{id}")),
        "{location}"
    );

    let html = wait_until_done(&op, &id).await;
    // The failed rows come first, by line number, then the others.
    let line3 = html.find("<td>3</td>").expect("line 3 listed");
    let line5 = html.find("<td>5</td>").expect("line 5 listed");
    let line2 = html.find("<td>2</td>").expect("line 2 listed");
    assert!(line3 < line5 && line5 < line2, "failed rows first: {html}");
    assert!(html.contains("2 failed rows first"), "{html}");
    assert!(
        html.contains("line 3 login `broken` is not an email address"),
        "{html}"
    );
    assert!(html.contains("line 5 missing email"), "{html}");
    assert_eq!(
        sim.user_status("ok5@example.com").as_deref(),
        Some("STAGED")
    );

    // The list shows the job finished, and the download has every row in line order.
    let (_, list) = op.get("/jobs").await;
    // (minijinja escapes the `/` of the base as `&#x2f;`; browsers read it as `/`.)
    assert!(list.contains(&format!("/jobs/{id}\"")), "{list}");
    let resp = op.get_response(&format!("/jobs/{id}/results.csv")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "line,login,okta_id,outcome,error");
    assert!(lines[2].starts_with("3,broken,,failed,"), "{csv}");
    assert!(lines[4].starts_with("5,ok4@example.com,,failed,"), "{csv}");
    assert_eq!(lines.len(), 6, "{csv}");
}

#[tokio::test]
async fn an_upload_or_cancel_without_the_csrf_token_is_refused_and_changes_nothing() {
    let redis = TestRedis::start();
    let (app, _sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let op = sign_in(&app, Role::Operator, None).await;
    let (status, _, body) = op
        .upload(&[("kind", "create")], "users.csv", TWO_BROKEN, false)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let operator = api_key(&app, Role::Operator, None).await;
    let (_, jobs) = app.get_json("/api/v1/jobs", Some(&operator)).await;
    assert_eq!(jobs.as_array().unwrap().len(), 0, "nothing queued: {jobs}");

    // A job queued through the API cannot be cancelled by a form without the token.
    let (s, job) = app
        .upload_job(&operator, "kind=create", "text/csv", users_csv("c", 200))
        .await;
    assert_eq!(s, 202);
    let id = job["id"].as_str().unwrap();
    let (status, _, _) = op
        .post_form(&format!("/jobs/{id}/cancel"), &[], false)
        .await;
    assert_eq!(status, 403);
    let (_, after) = app
        .get_json(&format!("/api/v1/jobs/{id}"), Some(&operator))
        .await;
    assert_ne!(after["state"], "cancelled", "{after}");
}

#[tokio::test]
async fn a_client_admin_sees_only_its_tenants_jobs_and_is_refused_reports_and_operations() {
    let redis = TestRedis::start();
    let (app, _sim) = spawn_app_with_okta(
        &redis.url(),
        &random_prefix(),
        SimConfig::default(),
        "[jobs]\ntenant_profile_attribute = \"tenant\"\n",
    )
    .await;
    let globex_key = api_key(&app, Role::ClientAdmin, Some("globex")).await;
    let (s, job) = app
        .upload_job(
            &globex_key,
            "kind=suspend",
            "text/csv",
            "login\nx@globex.com\n".into(),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let globex_job = job["id"].as_str().unwrap().to_owned();

    let acme = sign_in(&app, Role::ClientAdmin, Some("acme")).await;
    let (_, list) = acme.get("/jobs").await;
    assert!(
        !list.contains(&globex_job),
        "another tenant's job is not listed"
    );
    // By URL, and by a forged cancel: answered exactly like a job that does not exist.
    let (status, page) = acme.get(&format!("/jobs/{globex_job}")).await;
    let (missing_status, missing) = acme.get("/jobs/0000000000000000").await;
    assert_eq!((status, missing_status), (404, 404));
    assert_eq!(
        page.replace(&globex_job, "ID"),
        missing.replace("0000000000000000", "ID")
    );
    let (status, _, _) = acme
        .post_form(&format!("/jobs/{globex_job}/cancel"), &[], true)
        .await;
    assert_eq!(status, 404);
    let (status, _) = acme.get(&format!("/jobs/{globex_job}/results.csv")).await;
    assert_eq!(status, 404);
    let (_, still) = app
        .get_json(&format!("/api/v1/jobs/{globex_job}"), Some(&globex_key))
        .await;
    assert_ne!(still["reason"], "cancelled by request", "{still}");

    for path in ["/operations", "/reports", "/reports/2026-01/preview"] {
        let (status, body) = acme.get(path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _, _) = acme
        .post_form("/operations/keys", &[("role", "operator")], true)
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = acme.post_form("/reports/2026-01/send", &[], true).await;
    assert_eq!(status, 403);
    // Support runs no jobs, as with the API.
    let support = sign_in(&app, Role::Support, None).await;
    assert_eq!(support.get("/jobs").await.0, 403);
}

#[tokio::test]
async fn the_tenants_page_counts_users_by_status_and_a_client_admin_sees_only_its_own() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let support_key = api_key(&app, Role::Support, None).await;
    let mut events = vec![];
    for (i, (id, login, group, ty)) in [
        (
            "00uA1",
            "alice@acme.com",
            "tenant-acme",
            "user.lifecycle.activate",
        ),
        (
            "00uA2",
            "adam@acme.com",
            "tenant-acme",
            "user.lifecycle.suspend",
        ),
        (
            "00uA3",
            "ann@acme.com",
            "tenant-acme",
            "user.lifecycle.activate",
        ),
        (
            "00uG1",
            "gina@globex.com",
            "tenant-globex",
            "user.lifecycle.activate",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(group_add_event(&format!("g{i}"), (id, login), group));
        events.push(log_event(&format!("a{i}"), ty, (id, login)));
    }
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    for id in ["00uA1", "00uA2", "00uA3", "00uG1"] {
        app.wait_for_user(&support_key, id, |u| {
            u["tenant"].is_string() && u["status"] != ""
        })
        .await;
    }
    app.wait_for_user(&support_key, "00uA2", |u| u["status"] == "SUSPENDED")
        .await;
    app.wait_for_listed(&support_key, "tenant=acme", 3).await;
    app.wait_for_listed(&support_key, "tenant=globex", 1).await;

    let support = sign_in(&app, Role::Support, None).await;
    let (status, html) = support.get("/tenants").await;
    assert_eq!(status, 200, "{html}");
    let row = |html: &str, tenant: &str| -> String {
        let start = html
            .find(&format!("<tr id=\"tenant-{tenant}\">"))
            .unwrap_or_else(|| panic!("{tenant} row: {html}"));
        html[start..start + html[start..].find("</tr>").unwrap()].to_owned()
    };
    let acme_row = row(&html, "acme");
    // Columns: name, state, installations (none: not declared), users, ACTIVE, SUSPENDED.
    let cells: Vec<&str> = acme_row
        .split("<td>")
        .skip(1)
        .map(|c| c.split("</td>").next().unwrap().trim())
        .collect();
    assert_eq!(cells, ["", "", "", "3", "2", "1"], "{acme_row}");
    assert!(acme_row.contains("(not declared)"), "{acme_row}");
    assert!(html.contains("<tr id=\"tenant-globex\">"));

    let acme = sign_in(&app, Role::ClientAdmin, Some("acme")).await;
    let (status, html) = acme.get("/tenants").await;
    assert_eq!(status, 200);
    assert!(html.contains("<tr id=\"tenant-acme\">"), "{html}");
    assert!(!html.contains("globex"), "only its own tenant: {html}");
}

#[tokio::test]
async fn an_operator_creates_a_key_shown_once_and_revokes_it_from_the_operations_page() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let op = sign_in(&app, Role::Operator, None).await;
    let (status, html) = op.get("/operations").await;
    assert_eq!(status, 200, "{html}");
    for part in [
        "Streams and consumer lag",
        "Dead letters: <span id=\"dead-count\">0</span>",
        "API keys",
        "Audit log",
    ] {
        assert!(html.contains(part), "{part}: {html}");
    }
    assert!(html.contains(":firehose"), "the firehose is listed: {html}");

    // A bad request changes nothing and says why.
    let (status, _, body) = op
        .post_form(
            "/operations/keys",
            &[("role", "client-admin"), ("tenant", "")],
            true,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("needs --tenant") || body.contains("tenant"),
        "{body}"
    );

    let (status, _, body) = op
        .post_form(
            "/operations/keys",
            &[("role", "client-admin"), ("tenant", "acme")],
            true,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body
        .split("id=\"new-token\" class=\"token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("token shown")
        .to_owned();
    assert!(token.starts_with("oka_"), "{token}");
    assert_eq!(
        app.get_json("/api/v1/users?limit=1", Some(&token)).await.0,
        200
    );
    let id = token[4..16].to_owned();

    // The token is never shown again.
    let (_, html) = op.get("/operations").await;
    assert!(html.contains(&format!("key-{id}")), "{html}");
    assert!(!html.contains(&token[17..]), "secret not shown again");

    // A revoke form over the size limit is answered as one (413), not as a forged request,
    // and revokes nothing.
    let big = "x".repeat(70 * 1024);
    let (status, _, html) = op
        .post_form(
            &format!("/operations/keys/{id}/revoke"),
            &[("padding", &big)],
            true,
        )
        .await;
    assert_eq!(status, 413, "{html}");
    assert!(html.contains("too large"), "{html}");
    assert_eq!(
        app.get_json("/api/v1/users?limit=1", Some(&token)).await.0,
        200
    );

    // Revoke without the token: refused; with it: the key stops working.
    let (status, _, _) = op
        .post_form(&format!("/operations/keys/{id}/revoke"), &[], false)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        app.get_json("/api/v1/users?limit=1", Some(&token)).await.0,
        200
    );
    let (status, location, _) = op
        .post_form(&format!("/operations/keys/{id}/revoke"), &[], true)
        .await;
    assert_eq!(status, 303);
    assert!(location.contains(&format!("revoked={id}")), "{location}");
    assert_eq!(
        app.get_json("/api/v1/users?limit=1", Some(&token)).await.0,
        401
    );
    let (status, _, _) = op
        .post_form("/operations/keys/ffffffffffff/revoke", &[], true)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_audit_log_filters_by_action_and_user() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    // Records as the users API writes them for support reads (`access::audit`).
    let support = okta_adapter::access::Principal {
        key_id: "k1".into(),
        role: Role::Support,
        tenant: None,
    };
    let mut conn = app.state.redis.clone();
    for id in ["00uAUD1", "00uAUD2"] {
        okta_adapter::access::audit(
            &mut conn,
            &app.state.keys,
            okta_adapter::access::AuditEntry {
                who: &support,
                action: "read-user",
                subject: id,
                reason: Some("ticket SUP-77"),
                detail: "200",
            },
        )
        .await
        .unwrap();
    }
    let op = sign_in(&app, Role::Operator, None).await;
    let (_, all) = op.get("/operations").await;
    assert!(all.contains("00uAUD1") && all.contains("00uAUD2"), "{all}");
    let (_, one) = op.get("/operations?subject=00uAUD2&action=read").await;
    assert!(one.contains("00uAUD2") && !one.contains("00uAUD1"), "{one}");
    assert!(one.contains("ticket SUP-77"), "{one}");
    let (_, none) = op.get("/operations?action=action:").await;
    assert!(none.contains("No audit record matches"), "{none}");
}

#[tokio::test]
async fn the_report_preview_is_the_rendered_email_under_its_own_policy() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let op = sign_in(&app, Role::Operator, None).await;
    let (status, page) = op.get("/reports?month=2026-01").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<iframe id=\"report-preview\""), "{page}");
    assert!(
        page.contains("sandbox src=") && page.contains("reports/2026-01/preview\"></iframe>"),
        "{page}"
    );

    let resp = op.get_response("/reports/2026-01/preview").await;
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("sandbox") && csp.contains("frame-ancestors 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no script at all: {csp}");
    assert_eq!(resp.headers()["x-frame-options"], "SAMEORIGIN");
    let html = resp.text().await.unwrap();
    assert!(html.contains("2026"), "{html}");
    assert!(
        html.contains("data:image/png;base64,"),
        "the chart is inline"
    );

    // The console page itself may frame only its own origin.
    let resp = op.get_response("/reports").await;
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    // A month that has not started: a clear message, nothing compiled.
    let (status, body) = op.get("/reports?month=2999-01").await;
    assert_eq!(status, 400);
    assert!(body.contains("has not started yet"), "{body}");
    // Sending needs the CSRF token.
    let (status, _, _) = op.post_form("/reports/2026-01/send", &[], false).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_operator_sends_a_months_report_once_from_the_reports_page() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let extra = format!(
        "[report]\nenabled = true\nschedule = \"0 0 0 29 2 *\"\n\
         recipients = [\"owner@example.com\"]\nfrom = \"IAM reports <reports@example.com>\"\n\
         output_dir = \"{}\"\n[smtp]\nurl = \"{}\"\ntimeout_secs = 2\n",
        out.path().display(),
        smtp.url()
    );
    let app = spawn_app_with(&redis, &extra).await;
    let op = sign_in(&app, Role::Operator, None).await;
    let (status, _, body) = op.post_form("/reports/2026-01/send", &[], true).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("The 2026-01 report was sent"), "{body}");
    assert!(body.contains("owner@example.com"), "{body}");
    assert_eq!(smtp.received().len(), 1);
    // Once per month: the second send says so and mails nothing.
    let (status, _, body) = op.post_form("/reports/2026-01/send", &[], true).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("had already been sent"), "{body}");
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn an_operator_cancels_an_open_job_from_its_page_and_an_ended_job_cannot_be_cancelled() {
    let redis = TestRedis::start();
    // One worker and a 30 ms Okta: 200 rows take longer than the cancel after the upload.
    let sim = SimConfig {
        latency: Duration::from_millis(30),
        ..SimConfig::default()
    };
    let (app, _sim) = spawn_app_with_okta(
        &redis.url(),
        &random_prefix(),
        sim,
        "[jobs]\nconcurrency = 1\n",
    )
    .await;
    let op = sign_in(&app, Role::Operator, None).await;
    let operator = api_key(&app, Role::Operator, None).await;
    let (s, job) = app
        .upload_job(
            &operator,
            "kind=suspend",
            "text/csv",
            users_csv("nobody", 200),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let (_, page) = op.get(&format!("/jobs/{id}")).await;
    assert!(
        page.contains("Cancel this job"),
        "an open job offers cancel"
    );
    let (_, list) = op.get("/jobs").await;
    assert!(
        list.contains("jobs/list\" hx-trigger=\"every 2s\""),
        "the list polls while a job runs: {list}"
    );
    let (status, location, body) = op.post_form(&format!("/jobs/{id}/cancel"), &[], true).await;
    assert_eq!(status, 303, "{body}");
    assert!(location.ends_with(&format!("/jobs/{id}")), "{location}");
    let (_, page) = op.get(&format!("/jobs/{id}")).await;
    assert!(page.contains("cancelled by request"), "{page}");
    assert!(
        !page.contains("Cancel this job"),
        "an ended job offers no cancel"
    );
    let (_, list) = op.get("/jobs").await;
    assert!(
        !list.contains("hx-trigger"),
        "nothing runs, nothing polls: {list}"
    );
    let (status, _, body) = op.post_form(&format!("/jobs/{id}/cancel"), &[], true).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is already cancelled"), "{body}");
}

/// The value of the first hidden input `name` in a page, unescaped (the planned document).
fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}: {html}"))
        + marker.len();
    let raw = &html[start..start + html[start..].find('"').unwrap()];
    raw.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the `<input id="…">` on a page (as the browser would show it).
fn input_value(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}: {html}"));
    let rest = &html[at..];
    let start = rest.find("value=\"").expect("a value") + "value=\"".len();
    rest[start..start + rest[start..].find('"').unwrap()].replace("&amp;", "&")
}

/// The id of the apply an Apply answer shows.
fn applied_id(html: &str) -> String {
    let marker = "<code id=\"apply-id\">";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no apply id: {html}"))
        + marker.len();
    html[start..start + html[start..].find('<').unwrap()].to_owned()
}

/// The tenant form of `tenant` with two installations, as the browser posts it.
fn tenant_form<'a>(tenant: &'a str, op: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("op", op),
        ("tenant", tenant),
        ("display_name", "Acme Corp"),
        ("count", "2"),
        ("i0_name", "efs"),
        ("i0_kind", "efs"),
        ("i0_redirect_uris", "https://efs.acme.example/cb"),
        ("i0_grant_authorization_code", "on"),
        ("i0_pkce", "on"),
        ("i1_name", "portal"),
        ("i1_kind", "portals"),
        ("i1_redirect_uris", "https://portal.acme.example/cb"),
        ("i1_grant_authorization_code", "on"),
        ("i1_grant_refresh_token", "on"),
        ("i1_pkce", "on"),
    ]
}

async fn wait_for_apply_state(app: &TestApp, key: &str, tenant: &str, apply: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, a) = app
            .get_json(
                &format!("/api/v1/tenants/{tenant}/applies/{apply}"),
                Some(key),
            )
            .await;
        if a["state"] == "succeeded" || a["state"] == "failed" {
            return a["state"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "apply never ended: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_tenant_form_plans_with_the_apis_engine_applies_like_put_and_deletes_only_by_name() {
    let redis = TestRedis::start();
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let support_key = api_key(&app, Role::Support, None).await;
    let operator = sign_in(&app, Role::Operator, None).await;

    // Bad input: every problem in words, nothing stored.
    let mut bad = tenant_form("Acme!", "plan");
    bad.push(("i1_settings", "[1]"));
    let (status, _, html) = operator.post_form("/tenants/_new", &bad, true).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("is not a tenant id"), "{html}");
    assert!(html.contains("settings must be a JSON object"), "{html}");
    let (_, list) = app.get_json("/api/v1/tenants", Some(&support_key)).await;
    assert_eq!(list["tenants"], serde_json::json!([]));

    // "Add an installation" re-renders the form with one more fieldset, values kept.
    let (status, _, html) = operator
        .post_form("/tenants/_new", &tenant_form("acme", "add"), true)
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"installation-2\"") && !html.contains("id=\"installation-3\""));
    assert!(
        html.contains("https:&#x2f;&#x2f;portal.acme.example&#x2f;cb"),
        "{html}"
    );
    assert!(html.contains("name=\"count\" value=\"3\""), "{html}");

    // The plan is the API's dry run, step for step.
    let (status, _, plan) = operator
        .post_form("/tenants/_new", &tenant_form("acme", "plan"), true)
        .await;
    assert_eq!(status, 200, "{plan}");
    let doc: serde_json::Value = serde_json::from_str(&hidden_value(&plan, "doc")).unwrap();
    let dry = app
        .client
        .put(app.url("/api/v1/tenants/acme?dry_run=true"))
        .bearer_auth(&support_key)
        .json(&doc)
        .send()
        .await
        .unwrap();
    let dry: serde_json::Value = dry.json().await.unwrap();
    let api_steps = dry["steps"].as_array().unwrap();
    assert_eq!(api_steps.len(), 8);
    assert_eq!(plan.matches("<tr class=\"step-").count(), api_steps.len());
    for s in api_steps {
        assert!(
            plan.contains(&format!(
                "<tr class=\"step-{}",
                s["action"].as_str().unwrap()
            )),
            "{s}"
        );
    }
    assert!(plan.contains("8 changes in Okta"), "{plan}");
    // "Change the form" brings the planned values back into the form.
    let doc_text = doc.to_string();
    let (status, _, back) = operator
        .post_form(
            "/tenants/_new",
            &[("op", "edit"), ("tenant", "acme"), ("doc", &doc_text)],
            true,
        )
        .await;
    assert_eq!(status, 200, "{back}");
    for value in ["value=\"acme\"", "value=\"portal\"", "Acme Corp"] {
        assert!(back.contains(value), "{value}: {back}");
    }

    // Apply: without the CSRF token refused and nothing queued; with it, queued like PUT.
    let (status, _, _) = operator
        .post_form("/tenants/acme/apply", &[("doc", &doc_text)], false)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        app.get_json("/api/v1/tenants/acme", Some(&support_key))
            .await
            .0,
        404,
        "nothing queued"
    );
    let (status, _, applied) = operator
        .post_form(
            "/tenants/acme/apply",
            &[("doc", &doc_text), ("base", &hidden_value(&plan, "base"))],
            true,
        )
        .await;
    assert_eq!(status, 200, "{applied}");
    let apply = applied_id(&applied);
    assert_eq!(
        wait_for_apply_state(&app, &support_key, "acme", &apply).await,
        "succeeded"
    );
    // The new apps' client secrets are on the Apply answer — Okta's own — and on no later page.
    assert!(applied.contains("shown only this once"), "{applied}");
    for installation in ["efs", "portal"] {
        let secret = input_value(&applied, &format!("secret-{installation}"));
        let (_, config) = app
            .get_json(
                &format!("/api/v1/tenants/acme/installations/{installation}/config"),
                Some(&support_key),
            )
            .await;
        let client_id = config["client_id"].as_str().unwrap();
        assert!(sim.app_has_secret(client_id, &secret), "{installation}");
        let (_, later) = operator
            .get(&format!("/tenants/acme/applies/{apply}"))
            .await;
        assert!(!later.contains(&secret), "shown again: {later}");
        assert!(
            !later.contains("Nobody has the new apps' client secrets"),
            "{later}"
        );
    }
    let (_, tenant) = app
        .get_json("/api/v1/tenants/acme", Some(&support_key))
        .await;
    assert_eq!(tenant["desired"], doc);
    assert_eq!(tenant["in_sync"], true, "{tenant}");
    assert_eq!(sim.apps_labelled("tenant-acme-portal").len(), 1);
    // The tenant page comes without waiting for Okta; its drift section is read on load.
    let (status, html) = operator.get("/tenants/acme").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("/tenants/acme/drift\" hx-trigger=\"load\""),
        "{html}"
    );
    let (status, drift) = operator.get("/tenants/acme/drift").await;
    assert_eq!(status, 200);
    assert!(drift.contains("id=\"in-sync\""), "{drift}");
    assert!(
        drift.contains("<dd id=\"rule-status\" hx-swap-oob=\"true\">ACTIVE</dd>"),
        "{drift}"
    );
    // The progress fragment of an ended apply stops polling.
    let (status, fragment) = operator
        .get(&format!("/tenants/acme/applies/{apply}/progress"))
        .await;
    assert_eq!(status, 200);
    assert!(fragment.contains("Finished: succeeded") && !fragment.contains("hx-trigger"));
    let audit = app.entries(&format!("{}:audit", app.prefix)).await;
    assert!(
        audit.iter().any(|e| {
            let f = |k: &str| e.get(k).map(String::as_str);
            f("action") == Some("tenant:apply")
                && f("key") == Some("console:operator@example.com")
                && f("detail") == Some(apply.as_str())
        }),
        "{audit:?}"
    );

    // "New tenant" with a declared tenant's name would replace it unseen: refused.
    let (status, _, html) = operator
        .post_form("/tenants/_new", &tenant_form("acme", "plan"), true)
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("Tenant acme already exists"), "{html}");

    // Delete: a wrong name, and no CSRF token, change nothing; the name deletes.
    let (status, _, html) = operator
        .post_form("/tenants/acme/delete", &[("confirm", "acm")], true)
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("Nothing was deleted"), "{html}");
    let (status, _, _) = operator
        .post_form("/tenants/acme/delete", &[("confirm", "acme")], false)
        .await;
    assert_eq!(status, 403);
    assert_eq!(sim.groups_named("tenant-acme"), 1, "nothing deleted");
    let (status, location, _) = operator
        .post_form("/tenants/acme/delete", &[("confirm", "acme")], true)
        .await;
    assert_eq!(status, 303, "{location}");
    let teardown = location.rsplit_once("/applies/").unwrap().1.to_owned();
    assert_eq!(
        wait_for_apply_state(&app, &support_key, "acme", &teardown).await,
        "succeeded"
    );
    assert_eq!(sim.groups_named("tenant-acme"), 0);
    assert!(sim.apps_labelled("tenant-acme-efs").is_empty());
    let (status, html) = operator
        .get(&format!("/tenants/acme/applies/{teardown}"))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Deleting tenant acme"), "{html}");
}

#[tokio::test]
async fn a_client_admin_reads_only_its_own_tenant_pages_and_writes_none() {
    let redis = TestRedis::start();
    let (app, _sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let support_key = api_key(&app, Role::Support, None).await;
    for tenant in ["acme", "globex"] {
        let doc = serde_json::json!({"installations": {"efs": {"kind": "efs",
            "redirect_uris": [format!("https://efs.{tenant}.example/cb")]}}});
        let resp = app
            .client
            .put(app.url(&format!("/api/v1/tenants/{tenant}?wait=30")))
            .bearer_auth(&support_key)
            .json(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let acme = sign_in(&app, Role::ClientAdmin, Some("acme")).await;
    let (status, html) = acme.get("/tenants/acme").await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("edit-tenant") && !html.contains("delete-tenant"));
    let (status, html) = acme.get("/tenants/acme/installations/efs").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"config-json\""), "{html}");

    // Another tenant: every page and form answers exactly like a tenant that does not exist.
    let missing = acme.get("/tenants/nosuchtenant").await;
    assert_eq!(missing.0, 404);
    for path in [
        "/tenants/globex",
        "/tenants/globex/installations/efs",
        "/tenants/globex/drift",
        "/tenants/globex/applies/20260101T000000-00000000",
    ] {
        assert_eq!(acme.get(path).await, missing, "{path}");
    }
    let (status, _, forged) = acme
        .post_form("/tenants/globex/installations/efs/rotate-secret", &[], true)
        .await;
    let (_, _, for_missing) = acme
        .post_form(
            "/tenants/nosuchtenant/installations/efs/rotate-secret",
            &[],
            true,
        )
        .await;
    assert_eq!((status, &forged), (404, &for_missing));
    // Writes are refused by role, as the API refuses a client admin's PUT and DELETE.
    for (path, fields) in [
        ("/tenants/acme/apply", vec![("doc", "{}")]),
        ("/tenants/acme/delete", vec![("confirm", "acme")]),
        ("/tenants/_new", tenant_form("acme", "plan")),
    ] {
        let (status, _, _) = acme.post_form(path, &fields, true).await;
        assert_eq!(status, 403, "{path}");
    }
    assert_eq!(acme.get("/tenants/_new").await.0, 403);
    assert_eq!(acme.get("/tenants/acme/edit").await.0, 403);
    let audit = app.entries(&format!("{}:audit", app.prefix)).await;
    assert!(
        !audit.iter().any(|e| {
            let f = |k: &str| e.get(k).cloned().unwrap_or_default();
            f("key").starts_with("console:") && f("action").starts_with("tenant:")
        }),
        "{audit:?}"
    );
}

/// The form fields of `n` installations `i0`…, as the edit page renders them for a tenant
/// declared with that many (the browser posts every fieldset back).
fn many_installations(n: usize, base: &str) -> Vec<(String, String)> {
    let mut f = vec![
        ("op".to_owned(), "plan".to_owned()),
        ("editing".to_owned(), "1".to_owned()),
        ("base".to_owned(), base.to_owned()),
        ("tenant".to_owned(), "big".to_owned()),
        ("count".to_owned(), n.to_string()),
    ];
    for i in 0..n {
        f.push((format!("i{i}_name"), format!("i{i}")));
        f.push((format!("i{i}_kind"), "efs".to_owned()));
        f.push((
            format!("i{i}_redirect_uris"),
            format!("https://i{i}.big.example/cb"),
        ));
        f.push((format!("i{i}_grant_authorization_code"), "on".to_owned()));
        f.push((format!("i{i}_pkce"), "on".to_owned()));
    }
    f
}

#[tokio::test]
async fn editing_a_tenant_with_more_installations_than_the_add_limit_keeps_every_one() {
    let redis = TestRedis::start();
    // An apps bucket that holds the apply and the plan in one window (the default 100 a
    // minute would make the plan wait for the next window, and time out, as on a real org).
    let sim_config = SimConfig {
        apps_limit: 1_000,
        ..SimConfig::default()
    };
    let (app, sim) = spawn_app_with_okta(&redis.url(), &random_prefix(), sim_config, "").await;
    let support_key = api_key(&app, Role::Support, None).await;
    // Declared through the API, which has no limit of 20: 21 installations, all applied.
    let installations: serde_json::Map<String, serde_json::Value> = (0..21)
        .map(|i| {
            (
                format!("i{i}"),
                serde_json::json!({"kind": "efs", "redirect_uris": [format!("https://i{i}.big.example/cb")],
                    "grant_types": ["authorization_code"]}),
            )
        })
        .collect();
    let resp = app
        .client
        .put(app.url("/api/v1/tenants/big?wait=60"))
        .bearer_auth(&support_key)
        .json(&serde_json::json!({ "installations": installations }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sim.apps_labelled("tenant-big-i20").len(), 1);
    let operator = sign_in(&app, Role::Operator, None).await;
    let (status, html) = operator.get("/tenants/big/edit").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("name=\"count\" value=\"21\""), "{html}");
    assert!(html.contains("value=\"i20\""), "{html}");

    // The edit form posted back unchanged plans nothing: no installation silently dropped
    // (which would plan, and on Apply carry out, the deletion of its app).
    let fields = many_installations(21, &hidden_value(&html, "base"));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, _, plan) = operator.post_form("/tenants/_new", &fields, true).await;
    assert_eq!(status, 200, "{plan}");
    let doc: serde_json::Value = serde_json::from_str(&hidden_value(&plan, "doc")).unwrap();
    assert_eq!(doc["installations"].as_object().unwrap().len(), 21, "{doc}");
    assert!(!plan.contains("step-delete"), "{plan}");
    assert!(
        plan.contains("Nothing to change: Okta already has this state"),
        "{plan}"
    );

    // A form claiming more fieldsets than any form holds is refused in words, not cut short.
    let fields = many_installations(201, &hidden_value(&html, "base"));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, _, html) = operator.post_form("/tenants/_new", &fields, true).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("Nothing was planned"), "{html}");
    assert!(
        html.contains("more installations than this form holds"),
        "{html}"
    );
    assert_eq!(
        sim.apps_labelled("tenant-big-i20").len(),
        1,
        "nothing changed"
    );
}

/// Whether any key under `prefix` holds `needle` anywhere (strings, hashes, lists, sets,
/// sorted sets, streams): to show that a secret is stored nowhere in clear.
async fn redis_holds(app: &TestApp, prefix: &str, needle: &str) -> bool {
    use redis::AsyncCommands;
    let mut conn = app.conn().await;
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "string" => vec![conn.get(&key).await.unwrap()],
            "hash" => {
                let h: std::collections::HashMap<String, String> =
                    conn.hgetall(&key).await.unwrap();
                h.into_iter().flat_map(|(k, v)| [k, v]).collect()
            }
            "list" => conn.lrange(&key, 0, -1).await.unwrap(),
            "set" => conn.smembers(&key).await.unwrap(),
            "zset" => conn.zrange(&key, 0, -1).await.unwrap(),
            "stream" => app
                .entries(&key)
                .await
                .into_iter()
                .flat_map(|e| e.into_values())
                .collect(),
            _ => vec![],
        };
        if values.iter().any(|v| v.contains(needle)) {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_client_admin_rotates_its_own_secret_once_uncached_and_no_other_tenants_apply_or_secret()
{
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let (app, _sim) = spawn_app_with_okta(&redis.url(), &prefix, SimConfig::default(), "").await;
    let support_key = api_key(&app, Role::Support, None).await;
    let mut applies = std::collections::HashMap::new();
    for tenant in ["acme", "globex"] {
        let doc = serde_json::json!({"installations": {"efs": {"kind": "efs",
            "redirect_uris": [format!("https://efs.{tenant}.example/cb")]}}});
        let resp = app
            .client
            .put(app.url(&format!("/api/v1/tenants/{tenant}?wait=30")))
            .bearer_auth(&support_key)
            .json(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let a: serde_json::Value = resp.json().await.unwrap();
        applies.insert(tenant, a["id"].as_str().unwrap().to_owned());
    }
    let acme = sign_in(&app, Role::ClientAdmin, Some("acme")).await;

    // Another tenant's real apply id, under its own tenant or under ours, page or poll:
    // exactly the answer for a tenant that does not exist.
    let missing = acme.get("/tenants/nosuchtenant").await;
    assert_eq!(missing.0, 404);
    let globex_apply = &applies["globex"];
    for path in [
        format!("/tenants/globex/applies/{globex_apply}"),
        format!("/tenants/globex/applies/{globex_apply}/progress"),
        format!("/tenants/acme/applies/{globex_apply}"),
        format!("/tenants/acme/applies/{globex_apply}/progress"),
        format!("/tenants/acme/applies/..%2F..%2Fglobex%7D%3Aapply%3A{globex_apply}"),
        "/tenants/globex/edit".to_owned(),
    ] {
        let got = acme.get(&path).await;
        if path.ends_with("/edit") {
            assert_eq!(
                got.0, 403,
                "{path}: role refusal, the same for every tenant"
            );
            assert_eq!(got, acme.get("/tenants/nosuchtenant/edit").await, "{path}");
        } else {
            assert_eq!(got, missing, "{path}");
        }
    }
    let own = acme
        .get(&format!(
            "/tenants/acme/applies/{}/progress",
            applies["acme"]
        ))
        .await;
    assert_eq!(own.0, 200, "{}", own.1);

    // Rotation: CSRF needed; the new secret is on this answer only, never cached, never in
    // a URL, stored nowhere in Redis, and audited without it.
    let (status, page) = acme.get("/tenants/acme/installations/efs").await;
    assert_eq!(status, 200, "{page}");
    let once = hidden_value(&page, "once");
    let (status, _, _) = acme
        .post_form(
            "/tenants/acme/installations/efs/rotate-secret",
            &[("once", &once)],
            false,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, html) = acme
        .post_form("/tenants/acme/installations/efs/rotate-secret", &[], true)
        .await;
    assert_eq!(status, 400, "a form without its one-time field: {html}");
    let send = || {
        acme.client
            .post(format!(
                "{}/tenants/acme/installations/efs/rotate-secret",
                acme.base
            ))
            .header("cookie", &acme.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}&once={once}", acme.csrf))
            .send()
    };
    let resp = send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let html = resp.text().await.unwrap();
    let secret = hidden_value(
        &html.replace("id=\"new-secret\" class=\"token\"", "name=\"secret\""),
        "secret",
    );
    assert!(secret.len() >= 20, "{html}");
    assert_eq!(html.matches(&secret).count(), 1, "{html}");
    assert!(
        !redis_holds(&app, &prefix, &secret).await,
        "secret stored in Redis"
    );
    let audit = app.entries(&format!("{prefix}:audit")).await;
    let rotated: Vec<_> = audit
        .iter()
        .filter(|e| e.get("action").map(String::as_str) == Some("tenant:rotate-secret"))
        .collect();
    assert_eq!(rotated.len(), 1, "{audit:?}");
    assert_eq!(rotated[0]["key"], "console:client-admin@example.com");
    assert_eq!(rotated[0]["subject"], "acme/efs");
    // The same form sent again (a reload, Back): not rotated again, no secret shown.
    let again = send().await.unwrap();
    assert_eq!(again.status(), 409);
    let again = again.text().await.unwrap();
    assert!(again.contains("already sent"), "{again}");
    assert!(!again.contains("new-secret"), "{again}");
    // Another tenant's installation, by path: nothing rotated, nothing audited.
    let (status, _, _) = acme
        .post_form("/tenants/globex/installations/efs/rotate-secret", &[], true)
        .await;
    assert_eq!(status, 404);
    let audit = app.entries(&format!("{prefix}:audit")).await;
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.get("action").map(String::as_str) == Some("tenant:rotate-secret"))
            .count(),
        1
    );
}

#[tokio::test]
async fn form_input_is_checked_by_the_apis_rules_escaped_and_an_oversized_form_is_said() {
    let redis = TestRedis::start();
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let support_key = api_key(&app, Role::Support, None).await;
    let operator = sign_in(&app, Role::Operator, None).await;

    // Plain http is for the local machine only: a host that merely starts with "localhost"
    // is refused, by the form and by the API alike (one rule).
    for uri in [
        "http://localhost.evil.example/cb",
        "http://localhost@evil.example/cb",
        "http://localhost:80@evil.example/cb",
        "https://",
        "https://evil example/cb",
        "https://a.example/cb#fragment",
    ] {
        let mut form = tenant_form("acme", "plan");
        form.retain(|(k, _)| *k != "i0_redirect_uris");
        form.push(("i0_redirect_uris", uri));
        let (status, _, html) = operator.post_form("/tenants/_new", &form, true).await;
        assert_eq!(status, 400, "{uri}: {html}");
        assert!(html.contains("Nothing was planned"), "{uri}: {html}");
        let doc =
            serde_json::json!({"installations": {"efs": {"kind": "efs", "redirect_uris": [uri]}}});
        let resp = app
            .client
            .put(app.url("/api/v1/tenants/acme?dry_run=true"))
            .bearer_auth(&support_key)
            .json(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{uri}");
    }
    for uri in [
        "http://localhost/cb",
        "http://localhost:3000/cb",
        "https://efs.acme.example/cb?x=1",
    ] {
        let mut form = tenant_form("acme", "plan");
        form.retain(|(k, _)| *k != "i0_redirect_uris");
        form.push(("i0_redirect_uris", uri));
        let (status, _, html) = operator.post_form("/tenants/_new", &form, true).await;
        assert_eq!(status, 200, "{uri}: {html}");
    }

    // A display name of 200 characters is allowed, whatever their bytes (the form's
    // maxlength counts characters).
    let long_name = "é".repeat(200);
    let mut form = tenant_form("acme", "plan");
    form.retain(|(k, _)| *k != "display_name");
    form.push(("display_name", &long_name));
    let (status, _, html) = operator.post_form("/tenants/_new", &form, true).await;
    assert_eq!(status, 200, "{html}");
    let mut form = tenant_form("acme", "plan");
    let too_long = "é".repeat(201);
    form.retain(|(k, _)| *k != "display_name");
    form.push(("display_name", &too_long));
    let (status, _, html) = operator.post_form("/tenants/_new", &form, true).await;
    assert_eq!(status, 400, "{html}");

    // A form over the size limit is said to be one, not taken for a forged request.
    let big = "x".repeat(70 * 1024);
    let mut form = tenant_form("acme", "plan");
    form.push(("i0_settings", &big));
    let (status, _, html) = operator.post_form("/tenants/_new", &form, true).await;
    assert_eq!(status, 413, "{html}");
    assert!(html.contains("too large"), "{html}");
    assert!(!html.contains("(CSRF check)"), "{html}");
    let (status, _, html) = operator
        .post_form("/tenants/acme/apply", &[("doc", &big)], true)
        .await;
    assert_eq!(status, 413, "{html}");
    assert_eq!(
        app.get_json("/api/v1/tenants/acme", Some(&support_key))
            .await
            .0,
        404,
        "nothing queued"
    );

    // Names and settings are text on every page, never markup.
    let evil = "<script>alert(1)</script>";
    let doc = serde_json::json!({"display_name": evil, "installations": {"efs": {"kind": "efs",
        "redirect_uris": ["https://efs.acme.example/cb?a=\"><script>alert(2)</script>"],
        "settings": {"x": "</pre><script>alert(3)</script>"}}}});
    let resp = app
        .client
        .put(app.url("/api/v1/tenants/acme?wait=30"))
        .bearer_auth(&support_key)
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sim.apps_labelled("tenant-acme-efs").len(), 1);
    for path in [
        "/tenants",
        "/tenants/acme",
        "/tenants/acme/drift",
        "/tenants/acme/edit",
        "/tenants/acme/installations/efs",
    ] {
        let (status, html) = operator.get(path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(!html.contains("<script>alert"), "{path}: {html}");
    }
    let (_, html) = operator.get("/tenants/acme").await;
    assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
    // A path that is no tenant id (case, hash-tag braces, separators) reads like a missing
    // tenant on every page, and a post to it changes nothing.
    let missing = operator.get("/tenants/nosuchtenant").await;
    assert_eq!(missing.0, 404);
    for bad in ["ACME", "acme%7D", "acme%3Aapply", "%7Bacme%7D"] {
        for rest in [
            "",
            "/drift",
            "/edit",
            "/installations/efs",
            "/applies/x",
            "/applies/x/progress",
        ] {
            let path = format!("/tenants/{bad}{rest}");
            assert_eq!(operator.get(&path).await, missing, "{path}");
        }
        let (status, _, _) = operator
            .post_form(&format!("/tenants/{bad}/delete"), &[("confirm", bad)], true)
            .await;
        assert_eq!(status, 404, "{bad}");
    }
    assert_eq!(
        sim.apps_labelled("tenant-acme-efs").len(),
        1,
        "nothing deleted"
    );

    // No inline script, style or handler on these pages, and every one under the strict CSP.
    let (_, tenant) = app
        .get_json("/api/v1/tenants/acme?drift=false", Some(&support_key))
        .await;
    let apply = tenant["last_apply"]["id"].as_str().unwrap().to_owned();
    for path in [
        "/tenants".to_owned(),
        "/tenants/acme".to_owned(),
        "/tenants/acme/drift".to_owned(),
        "/tenants/acme/edit".to_owned(),
        "/tenants/acme/installations/efs".to_owned(),
        "/tenants/_new".to_owned(),
        format!("/tenants/acme/applies/{apply}"),
        format!("/tenants/acme/applies/{apply}/progress"),
    ] {
        let resp = operator.get_response(&path).await;
        let csp = resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self';") && csp.contains("style-src 'self';"),
            "{path}: {csp}"
        );
        let html = resp.text().await.unwrap();
        for inline in [
            "<script>",
            "<style",
            "style=",
            " onclick",
            " onload",
            "javascript:",
        ] {
            assert!(!html.contains(inline), "{path} has {inline}");
        }
    }
}

#[tokio::test]
async fn a_plan_or_drift_reapply_made_stale_by_another_change_is_refused_not_applied_over_it() {
    let redis = TestRedis::start();
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let support_key = api_key(&app, Role::Support, None).await;
    let operator = sign_in(&app, Role::Operator, None).await;
    let put = |uri: &'static str| {
        let doc =
            serde_json::json!({"installations": {"efs": {"kind": "efs", "redirect_uris": [uri]}}});
        let req = app
            .client
            .put(app.url("/api/v1/tenants/acme?wait=30"))
            .bearer_auth(&support_key)
            .json(&doc);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    };
    let stored_uri = || async {
        let (_, t) = app
            .get_json("/api/v1/tenants/acme?drift=false", Some(&support_key))
            .await;
        t["desired"]["installations"]["efs"]["redirect_uris"][0].clone()
    };
    put("https://v1.acme.example/cb").await;
    // A hand-made change in Okta, so the drift section offers "Apply the declared state again".
    let app_id = sim.apps_labelled("tenant-acme-efs")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sim.set_redirect_uris_by_hand(&app_id, &["https://hand.example/cb"]));

    // The operator opens the tenant page (its drift section offers a re-apply of v1) and the
    // edit form of v1, and plans a change of it.
    let (status, drift) = operator.get("/tenants/acme/drift").await;
    assert_eq!(status, 200, "{drift}");
    let (status, edit) = operator.get("/tenants/acme/edit").await;
    assert_eq!(status, 200, "{edit}");
    let base = hidden_value(&edit, "base");
    let mut form = tenant_form("acme", "plan");
    form.retain(|(k, _)| !k.starts_with("i1_") && *k != "count");
    form.push(("count", "1"));
    form.push(("editing", "1"));
    form.push(("base", &base));
    form.retain(|(k, _)| *k != "i0_redirect_uris");
    form.push(("i0_redirect_uris", "https://mine.acme.example/cb"));
    let (status, _, plan) = operator.post_form("/tenants/_new", &form, true).await;
    assert_eq!(status, 200, "{plan}");

    // Meanwhile a colleague changes the tenant (v2).
    put("https://v2.acme.example/cb").await;

    // Applying the plan made against v1 would silently undo v2: refused, v2 stays.
    let plan_fields = [
        ("doc", hidden_value(&plan, "doc")),
        ("base", hidden_value(&plan, "base")),
    ];
    let plan_fields: Vec<(&str, &str)> =
        plan_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, html) = operator
        .post_form("/tenants/acme/apply", &plan_fields, true)
        .await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("changed since"), "{html}");
    assert_eq!(stored_uri().await, "https://v2.acme.example/cb");
    // So is the drift section's "Apply the declared state again", which re-applies v1.
    assert!(drift.contains("id=\"reapply\""), "{drift}");
    let f = [
        ("doc", hidden_value(&drift, "doc")),
        ("base", hidden_value(&drift, "base")),
    ];
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, html) = operator.post_form("/tenants/acme/apply", &f, true).await;
    assert_eq!(status, 409, "{html}");
    let v1_doc = serde_json::json!({"installations": {"efs": {"kind": "efs",
        "redirect_uris": ["https://v1.acme.example/cb"]}}})
    .to_string();
    // An apply that names no base at all (a forged or outdated form) is refused too.
    let (status, _, _) = operator
        .post_form("/tenants/acme/apply", &[("doc", &v1_doc)], true)
        .await;
    assert_eq!(status, 409);
    assert_eq!(stored_uri().await, "https://v2.acme.example/cb");
    // Planning from the edit form opened on v1 is refused in words as well.
    let (status, _, html) = operator.post_form("/tenants/_new", &form, true).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("changed since"), "{html}");

    // Planned again on the current state, the apply goes through.
    let (_, edit) = operator.get("/tenants/acme/edit").await;
    let base = hidden_value(&edit, "base");
    form.retain(|(k, _)| *k != "base");
    form.push(("base", &base));
    let (status, _, plan) = operator.post_form("/tenants/_new", &form, true).await;
    assert_eq!(status, 200, "{plan}");
    let plan_fields = [
        ("doc", hidden_value(&plan, "doc")),
        ("base", hidden_value(&plan, "base")),
    ];
    let plan_fields: Vec<(&str, &str)> =
        plan_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, html) = operator
        .post_form("/tenants/acme/apply", &plan_fields, true)
        .await;
    assert_eq!(status, 200, "{html}");
    let apply = applied_id(&html);
    assert_eq!(
        wait_for_apply_state(&app, &support_key, "acme", &apply).await,
        "succeeded"
    );
    assert_eq!(stored_uri().await, "https://mine.acme.example/cb");

    // Two people creating the same new tenant: the second plan's apply is refused.
    let (_, _, plan_a) = operator
        .post_form("/tenants/_new", &tenant_form("initech", "plan"), true)
        .await;
    let (_, _, plan_b) = operator
        .post_form("/tenants/_new", &tenant_form("initech", "plan"), true)
        .await;
    let mut applied = vec![];
    for plan in [&plan_a, &plan_b] {
        let f = [
            ("doc", hidden_value(plan, "doc")),
            ("base", hidden_value(plan, "base")),
        ];
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, html) = operator.post_form("/tenants/initech/apply", &f, true).await;
        applied.push(status);
        if status == 200 {
            wait_for_apply_state(&app, &support_key, "initech", &applied_id(&html)).await;
        }
    }
    assert_eq!(applied, vec![200, 409]);
}

/// The form has a path no tenant id can take (`_` is not allowed in one), so a tenant called
/// `new` has its own page like any other.
#[tokio::test]
async fn a_tenant_called_new_opens_its_own_page_and_the_form_is_elsewhere() {
    let redis = TestRedis::start();
    let (app, _sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let support_key = api_key(&app, Role::Support, None).await;
    let doc = serde_json::json!({
        "installations": {"efs": {"kind": "efs", "redirect_uris": ["https://efs.new.example/cb"]}}
    });
    let resp = app
        .client
        .put(app.url("/api/v1/tenants/new?wait=30"))
        .bearer_auth(&support_key)
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    let operator = sign_in(&app, Role::Operator, None).await;
    let (status, page) = operator.get("/tenants/new").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"edit-tenant\""),
        "the tenant page: {page}"
    );
    assert!(!page.contains("id=\"tenant-form\""), "{page}");
    let (status, form) = operator.get("/tenants/_new").await;
    assert_eq!(status, 200, "{form}");
    assert!(form.contains("id=\"tenant-form\""), "{form}");
    let (_, list) = operator.get("/tenants").await;
    assert!(
        list.contains("/tenants/_new\""),
        "the New tenant link: {list}"
    );
}
