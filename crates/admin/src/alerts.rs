//! Alerts raised by attack detection (the server's `detection` module): list, show,
//! acknowledge. Reading takes `portcullis:admin` or `audit:read` (an alert names who and from
//! where, as the trail does); acknowledging takes `portcullis:admin` and is audited.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use portcullis_audit::AuditTrail;
use portcullis_core::audit::AuditAction;
use portcullis_core::time::unix_seconds;
use portcullis_store::{AlertAck, Store, StoredAlert};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AdminCaller;
use crate::dto::page_size;
use crate::errors::{AdminError, Problem};
use crate::extract::QueryParams;

/// What the alert routes work on.
#[derive(Clone)]
pub struct AlertsState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) trail: AuditTrail,
}

/// Which alerts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// `open` or `acknowledged`; all when absent.
    #[param(pattern = "^(open|acknowledged)$")]
    pub state: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    #[param(pattern = "^[0-9]{1,19}\\.[0-9a-f]{64}$")]
    pub before: Option<String>,
}

/// One alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// The incident id (the same on every node).
    pub id: String,
    /// The detection rule that fired, e.g. `auth_failures_per_client`.
    pub rule: String,
    /// Unix seconds.
    pub raised_at: i64,
    /// `open` or `acknowledged`.
    pub state: String,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
    /// What fired: `key` (`client X`, `address A`, `device D`), `total`, `threshold`,
    /// `window_secs`, `action`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// One page of alerts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub alerts: Vec<AlertView>,
    /// Pass as `before` for older alerts; `null` when there are none.
    pub next: Option<String>,
}

async fn view(trail: &AuditTrail, alert: StoredAlert) -> AlertView {
    let detail = trail
        .open_value(&alert.id, &alert.detail)
        .await
        .unwrap_or_else(|why| serde_json::json!({"unreadable": why}));
    AlertView {
        id: alert.id,
        rule: alert.rule,
        raised_at: alert.raised_at,
        state: alert.state,
        acked_by: alert.acked_by,
        acked_at: alert.acked_at,
        detail,
    }
}

fn valid_id(id: &str) -> Result<(), AdminError> {
    if id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!("alert {id:?}")))
    }
}

/// List alerts, newest first.
#[utoipa::path(
    get, path = "/alerts", tag = "alerts",
    params(AlertQuery),
    responses((status = 200, description = "One page of alerts", body = AlertPage))
)]
pub async fn list_alerts(
    State(state): State<AlertsState>,
    _caller: AdminCaller,
    QueryParams(query): QueryParams<AlertQuery>,
) -> Result<Json<AlertPage>, AdminError> {
    let limit = page_size(query.limit)?;
    if let Some(s) = query.state.as_deref() {
        if s != "open" && s != "acknowledged" {
            return Err(AdminError::BadRequest(
                "state is open or acknowledged".into(),
            ));
        }
    }
    let before = match query.before.as_deref() {
        Some(cursor) => {
            let parsed = cursor
                .split_once('.')
                .filter(|(at, _)| {
                    (1..=19).contains(&at.len()) && at.bytes().all(|b| b.is_ascii_digit())
                })
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id)))
                .filter(|(_, id)| valid_id(id).is_ok());
            Some(parsed.ok_or_else(|| AdminError::BadRequest("before is a `next` value".into()))?)
        }
        None => None,
    };
    let mut alerts = state
        .store
        .list_alerts(query.state.as_deref(), before, limit + 1)
        .await?;
    let next = if alerts.len() > limit as usize {
        alerts.truncate(limit as usize);
        alerts.last().map(|a| format!("{}.{}", a.raised_at, a.id))
    } else {
        None
    };
    let mut views = Vec::with_capacity(alerts.len());
    for alert in alerts {
        views.push(view(&state.trail, alert).await);
    }
    Ok(Json(AlertPage {
        alerts: views,
        next,
    }))
}

/// One alert.
#[utoipa::path(
    get, path = "/alerts/{id}", tag = "alerts",
    params(("id" = String, Path, pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The alert", body = AlertView),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_alert(
    State(state): State<AlertsState>,
    _caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, AdminError> {
    valid_id(&id)?;
    shown(&state, &id).await
}

/// The stored alert `id` as the API shows it, or 404.
async fn shown(state: &AlertsState, id: &str) -> Result<Json<AlertView>, AdminError> {
    let alert = state
        .store
        .get_alert(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("alert {id}")))?;
    Ok(Json(view(&state.trail, alert).await))
}

/// Acknowledge an alert (someone is on it); audited.
#[utoipa::path(
    post, path = "/alerts/{id}/ack", tag = "alerts",
    params(("id" = String, Path, pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The alert, acknowledged", body = AlertView),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ack_alert(
    State(state): State<AlertsState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, AdminError> {
    valid_id(&id)?;
    let now = unix_seconds(std::time::SystemTime::now());
    match state.store.ack_alert(&id, &caller.actor(), now).await? {
        AlertAck::NoSuchAlert => return Err(AdminError::NotFound(format!("alert {id}"))),
        // Acknowledging again changes nothing (the first acknowledgement stays), so it
        // records nothing either: the trail holds one `alert.acknowledged` per alert.
        AlertAck::AlreadyAcknowledged => return shown(&state, &id).await,
        AlertAck::Acknowledged => {}
    }
    state
        .trail
        .commit(caller.event(
            now,
            AuditAction::AlertAcknowledged,
            id.clone(),
            serde_json::json!({}),
        ))
        .await?;
    shown(&state, &id).await
}
