//! Management API calls of the helpdesk: a user's factors and an app user's assignment scope.
//! Factors are in the `users-by-id` bucket, app users in `apps` (`okta::rate::bucket_for`).

use reqwest::Method;
use serde_json::Value;

use super::client::{encode, OktaClient, OktaError};
use super::rate::Lane;

impl OktaClient {
    /// `GET /api/v1/users/{id}/factors`: the enrolled factors.
    pub async fn list_factors(&self, lane: Lane, user: &str) -> Result<Vec<Value>, OktaError> {
        let path = format!("/api/v1/users/{}/factors", encode(user));
        Ok(match self.call(lane, Method::GET, &path, None).await? {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        })
    }

    /// `DELETE /api/v1/users/{id}/factors/{factorId}`: resets one factor (the user enrolls it
    /// anew at the next sign-in).
    pub async fn delete_factor(
        &self,
        lane: Lane,
        user: &str,
        factor: &str,
    ) -> Result<(), OktaError> {
        let path = format!("/api/v1/users/{}/factors/{}", encode(user), encode(factor));
        self.call(lane, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// `GET /api/v1/apps/{appId}/users/{userId}`: the app user; its `scope` is `USER` (assigned
    /// directly) or `GROUP` (inherited from a group assigned to the app).
    pub async fn get_app_user(
        &self,
        lane: Lane,
        app: &str,
        user: &str,
    ) -> Result<Value, OktaError> {
        let path = format!("/api/v1/apps/{}/users/{}", encode(app), encode(user));
        Ok(self
            .call(lane, Method::GET, &path, None)
            .await?
            .unwrap_or(Value::Null))
    }
}
