//! Telephony hook (`com.okta.telephony.provider`). Spec: HOOKS-SPEC §3.6.6,
//! <https://developer.okta.com/docs/reference/telephony-hook/>.
//!
//! No SMS/voice provider is wired in yet, so the hook answers the documented `error` object,
//! which makes Okta send the OTP through its own providers. [`TelephonyProvider`] is the seam for
//! a real one: it gets the request (including the OTP, which must never be logged or recorded)
//! and returns `com.okta.telephony.action` results, or `None` to let Okta fall back.

use std::future::Future;
use std::pin::Pin;

use serde_json::json;

use super::{Answer, Decision};
use crate::okta::inline_hook::{Command, ErrorCause, InlineError, InlineResponse, TelephonyData};

/// One `com.okta.telephony.action` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `SUCCESSFUL`, `PENDING` or `FAILED`.
    pub status: String,
    pub provider: String,
    pub transaction_id: String,
    pub transaction_metadata: String,
}

pub type DeliveryFuture<'a> = Pin<Box<dyn Future<Output = Option<Vec<Delivery>>> + Send + 'a>>;

/// Sends an OTP. `None` = not sent here; Okta then uses its own providers.
pub trait TelephonyProvider: Send + Sync {
    fn deliver<'a>(
        &'a self,
        request_type: Option<&'a str>,
        data: &'a TelephonyData,
    ) -> DeliveryFuture<'a>;
}

/// The provider used until a real one is configured: sends nothing.
pub struct OktaFallback;

impl TelephonyProvider for OktaFallback {
    fn deliver<'a>(&'a self, _: Option<&'a str>, _: &'a TelephonyData) -> DeliveryFuture<'a> {
        Box::pin(async { None })
    }
}

pub async fn decide_telephony(
    provider: &dyn TelephonyProvider,
    request_type: Option<&str>,
    data: &TelephonyData,
) -> Decision {
    match provider.deliver(request_type, data).await {
        Some(deliveries) if !deliveries.is_empty() => Decision::new(
            Answer::Body(InlineResponse {
                commands: vec![Command::new(
                    "com.okta.telephony.action",
                    deliveries
                        .iter()
                        .map(|d| {
                            json!({"status": d.status, "provider": d.provider,
                                   "transactionId": d.transaction_id,
                                   "transactionMetadata": d.transaction_metadata})
                        })
                        .collect(),
                )],
                ..Default::default()
            }),
            "delivered",
        ),
        _ => Decision::new(
            fallback_answer("No telephony provider is configured in okta-adapter"),
            "fallback",
        ),
    }
}

/// The documented failure response (object form; OAS's array form looks like a doc bug).
pub fn fallback_answer(why: &str) -> Answer {
    Answer::Body(InlineResponse {
        error: Some(InlineError {
            error_summary: format!("{why}; use Okta's telephony providers"),
            error_causes: vec![ErrorCause {
                error_summary: why.into(),
                reason: "PROVIDER_UNAVAILABLE".into(),
                location_type: None,
                location: "telephony.provider".into(),
                domain: None,
            }],
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl TelephonyProvider for Fake {
        fn deliver<'a>(&'a self, _: Option<&'a str>, _: &'a TelephonyData) -> DeliveryFuture<'a> {
            Box::pin(async {
                Some(vec![Delivery {
                    status: "SUCCESSFUL".into(),
                    provider: "VONAGE".into(),
                    transaction_id: "SM49a8ece2822d44e4adaccd7ed268f954".into(),
                    transaction_metadata: "Duration=300ms".into(),
                }])
            })
        }
    }

    #[tokio::test]
    async fn without_a_provider_okta_is_told_to_fall_back() {
        let d = decide_telephony(&OktaFallback, None, &TelephonyData::default()).await;
        assert_eq!(d.outcome, "fallback");
        let j = d.answer.to_json();
        assert!(j["error"]["errorSummary"]
            .as_str()
            .unwrap()
            .contains("Okta"));
        assert_eq!(
            j["error"]["errorCauses"][0]["reason"],
            "PROVIDER_UNAVAILABLE"
        );
    }

    #[tokio::test]
    async fn a_provider_s_delivery_is_answered_in_okta_s_success_shape() {
        let d = decide_telephony(&Fake, None, &TelephonyData::default()).await;
        let okta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/hooks/inline-telephony-response-success.json"
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(d.answer.to_json(), okta);
    }
}
