//! Property tests for every parser of outside input (issue 16): arbitrary bytes never panic and
//! are never written; Okta's own samples, mutated, still parse and keep their bytes. Case counts
//! are modest so they run in seconds.

use okta_adapter::config::Settings;
use okta_adapter::fanout::Ingestor;
use okta_adapter::jobs::records::{RecordReader, Split};
use okta_adapter::jobs::rows::{validate_row, JobKind, JobOptions};
use okta_adapter::okta::inline_hook::{
    InlineRequest, PasswordImportData, RegistrationData, SamlData, TelephonyData, TokenData,
    UserImportData,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::helpers::*;

fn ingestor() -> Ingestor {
    Ingestor::new(&Settings::from_toml_overrides("[hooks]\nsecrets=[\"s\"]\n").unwrap())
}

/// A JSON value mutated by `ops`: each op picks a path and replaces, removes or retypes it.
fn mutate(mut v: Value, ops: &[(u8, u16, i64)]) -> Value {
    fn pick(v: &mut Value, n: u16) -> &mut Value {
        let mut cur = v;
        for _ in 0..(n % 4) {
            let len = match &*cur {
                Value::Object(m) => m.len(),
                Value::Array(a) => a.len(),
                _ => 0,
            };
            if len == 0 {
                break;
            }
            let i = usize::from(n) % len;
            cur = match cur {
                Value::Object(m) => m.values_mut().nth(i).unwrap(),
                Value::Array(a) => &mut a[i],
                _ => unreachable!(),
            };
        }
        cur
    }
    for &(kind, at, x) in ops {
        let target = pick(&mut v, at);
        *target = match kind % 6 {
            0 => Value::Null,
            1 => json!(x),
            2 => json!(x.to_string()),
            3 => json!([]),
            4 => json!({}),
            _ => json!(format!("é\u{0}\"{x}")),
        };
    }
    v
}

const INLINE_SAMPLES: &[&str] = &[
    "inline-password-import-request.json",
    "inline-registration-ssr-request.json",
    "inline-user-import-request.json",
    "inline-token-request.json",
    "inline-saml-request.json",
    "inline-telephony-request.json",
];

/// Parses `body` as each of the six inline hook requests; returns how many gave `data`.
fn parse_inline(body: &[u8]) -> usize {
    let ok = |r: bool| usize::from(r);
    ok(
        serde_json::from_slice::<InlineRequest<PasswordImportData>>(body)
            .is_ok_and(|r| r.data.is_some()),
    ) + ok(
        serde_json::from_slice::<InlineRequest<RegistrationData>>(body)
            .is_ok_and(|r| r.data.is_some()),
    ) + ok(
        serde_json::from_slice::<InlineRequest<UserImportData>>(body)
            .is_ok_and(|r| r.data.is_some()),
    ) + ok(serde_json::from_slice::<InlineRequest<TokenData>>(body).is_ok_and(|r| r.data.is_some()))
        + ok(serde_json::from_slice::<InlineRequest<SamlData>>(body).is_ok_and(|r| r.data.is_some()))
        + ok(serde_json::from_slice::<InlineRequest<TelephonyData>>(body)
            .is_ok_and(|r| r.data.is_some()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary bytes: the event hook parser answers (usually an error), never panics.
    #[test]
    fn event_hook_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ingestor().prepare(&bytes);
    }

    /// Okta's sample, mutated: either a clear error, or events whose raw JSON is the original
    /// bytes of that event (nothing re-serialised).
    #[test]
    fn mutated_event_hook_samples_parse_to_their_own_bytes(
        ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<i64>()), 0..4)
    ) {
        let sample: Value = serde_json::from_str(&fixture("event-hook-user-session-start.json")).unwrap();
        let body = serde_json::to_vec(&mutate(sample, &ops)).unwrap();
        let ing = ingestor();
        match ing.prepare(&body) {
            Ok(events) => {
                let text = std::str::from_utf8(&body).unwrap();
                for e in &events {
                    prop_assert!(text.contains(e.raw));
                    prop_assert!(!e.uuid.is_empty());
                }
            }
            Err(e) => prop_assert!(!e.0.is_empty()),
        }
    }

    /// Arbitrary bytes into the six inline hook request types: never a panic.
    #[test]
    fn inline_hook_parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_inline(&bytes);
    }

    /// Okta's six inline samples, mutated: parsing never panics, and unmutated they all parse.
    #[test]
    fn mutated_inline_samples_never_panic(
        which in 0..INLINE_SAMPLES.len(),
        ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<i64>()), 0..4)
    ) {
        let sample: Value = serde_json::from_str(&fixture(INLINE_SAMPLES[which])).unwrap();
        let original = serde_json::to_vec(&sample).unwrap();
        prop_assert!(parse_inline(&original) >= 1, "{} parses", INLINE_SAMPLES[which]);
        let _ = parse_inline(&serde_json::to_vec(&mutate(sample, &ops)).unwrap());
    }

    /// CSV / JSON-lines records: arbitrary bytes never panic, lines only grow, and the records
    /// never hold more than the cap.
    #[test]
    fn job_file_records_never_panic_and_respect_the_cap(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        csv in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let split = if csv { Split::Csv } else { Split::Lines };
            let mut reader = RecordReader::new(&bytes[..], split, 64);
            let mut buf = Vec::new();
            let mut last = 0;
            while let Some(rec) = reader.next_record(&mut buf).await.unwrap() {
                assert!(rec.line > last, "lines grow");
                last = rec.line;
                assert!(buf.len() <= 64 + 2, "a record over the cap is discarded");
            }
        });
    }

    /// Row validation on arbitrary fields: a row or a reason, never a panic.
    #[test]
    fn job_row_validation_never_panics(
        kind in 0u8..9,
        fields in proptest::collection::btree_map("[a-z_]{1,12}", "\\PC{0,24}", 0..6),
    ) {
        let kind = [JobKind::Create, JobKind::Update, JobKind::Activate, JobKind::Deactivate,
            JobKind::Suspend, JobKind::Unsuspend, JobKind::Delete, JobKind::AddToGroup,
            JobKind::RemoveFromGroup][usize::from(kind)];
        let map: Map<String, Value> = fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let options = JobOptions { activate: false, password_hook: false, send_email: false, group_id: None };
        match validate_row(kind, &options, 1, map, None) {
            Ok(row) => prop_assert_eq!(row.line, 1),
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }
}

/// Arbitrary bytes over real HTTP: a 4xx, and nothing in Redis changes.
#[tokio::test]
async fn arbitrary_bodies_posted_to_the_event_hook_write_nothing() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[projection]\nenabled = false\n").await;
    let before = app.key_count().await;
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    let bodies = proptest::collection::vec(any::<u8>(), 0..256);
    let cases: Vec<Vec<u8>> = (0..24)
        .map(|_| bodies.new_tree(&mut runner).unwrap().current())
        .collect();
    for body in cases {
        let status = app
            .post_events_raw(body, Some(SECRET))
            .await
            .status()
            .as_u16();
        assert!((400..500).contains(&status), "{status}");
    }
    assert_eq!(app.key_count().await, before, "nothing written");
    assert!(app.entries(&app.firehose()).await.is_empty());
}
