//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` when the process answers at all.
    status: &'static str,
}

/// Readiness answer. Per-check reasons go to the log, not to this unauthenticated page.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// `ok` or `failing`, per dependency.
    checks: Checks,
}

/// Per-dependency readiness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Checks {
    /// Control and region databases answer queries.
    database: &'static str,
    /// The root key provider answers.
    keys: &'static str,
    /// `ok`, or `degraded` while a customer-owned key provider is unavailable: only
    /// its tenants are affected (their requests answer 503), so readiness holds.
    customer_keys: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the databases and the root key provider are usable. Results are reused
/// for two seconds.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Ready),
        (status = 503, description = "A dependency is failing", body = Ready, content_type = "application/json"),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let r = state.platform.readiness().await;
    let word = |check: &Result<(), String>, name: &str| match check {
        Ok(()) => "ok",
        Err(reason) => {
            tracing::warn!(check = name, %reason, "readiness check failing");
            "failing"
        }
    };
    let checks = Checks {
        database: word(&r.database, "database"),
        keys: word(&r.keys, "keys"),
        customer_keys: match word(&r.customer_keys, "customer_keys") {
            "ok" => "ok",
            _ => "degraded",
        },
    };
    if r.is_ready() {
        (
            StatusCode::OK,
            Json(Ready {
                status: "ready",
                checks,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Ready {
                status: "not_ready",
                checks,
            }),
        )
    }
}
