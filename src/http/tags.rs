//! The OpenAPI tags that group the operations in the document and Swagger UI.

use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// Endpoints Okta calls (event hooks and inline hooks).
    OktaHooks,
    /// Support and client-admin lookups of users' Okta status (from projections).
    Users,
    /// Queued bulk jobs against Okta.
    Jobs,
    /// API key management (operator keys).
    Keys,
    /// Monthly IAM report: preview and send (operator keys).
    Reports,
    /// Health, readiness and metrics.
    Operations,
    /// Tenants as declared resources, installation configs, product resource access.
    Tenants,
    /// Never lose an event: System Log backfill, replay and dead-letter redrive (operator keys).
    Delivery,
}
