//! The Tenants pages (issue 18): the list (declared tenants merged with their users by
//! status), one tenant (groups, rule, installations, user counts, last apply, drift), the
//! create and edit form with its plan, the apply's live per-step progress, the typed-name
//! delete, and one installation (its config with a copy button, secret rotation).
//!
//! Every rule is the tenants API's (`http::tenants`): the same role lists
//! ([`WRITERS`](crate::http::tenants::WRITERS), [`READERS`](crate::http::tenants::READERS)), the
//! same scoping (a client admin reads only its own tenant; any other reads exactly like a
//! missing one), the same document checks, the same plan
//! ([`plan_steps`](crate::http::tenants::plan_steps): the engine's dry run), the same queued
//! apply and delete with their audit entries, the same secret rotation. The console adds
//! forms and words, not rules.
//!
//! User counts read at most `COUNT_BUDGET` (5,000) users per tenant (see `projection::census`) and
//! the page says when a split is partial.
//!
//! - `list.rs` — `GET /tenants`, the list.
//! - `page.rs` — one tenant's page and its drift fragment.
//! - `form.rs` — the create/edit form: reading the posted fields, showing it again, the plan.
//! - `apply.rs` — apply, the apply's page and progress fragment, the typed-name delete.
//! - `installation.rs` — one installation's page and its secret rotation.
//! - `views.rs` — steps, drift and applies in words, as the pages above show them.
//! - `version.rs` — the declared document's version a form or plan was made from, and the 409
//!   when it changed since.
//! - `shared.rs` — who opens the pages, the count budget, the "not found" and refusal answers.

mod apply;
mod form;
mod installation;
mod list;
mod page;
mod shared;
mod version;
mod views;

pub use apply::{apply_page, apply_progress, apply_tenant, delete_tenant};
pub use form::{edit_tenant_page, new_tenant_page, tenant_form_post};
pub use installation::{installation_page, rotate_secret};
pub use list::tenants_page;
pub use page::{drift_fragment, tenant_page};
