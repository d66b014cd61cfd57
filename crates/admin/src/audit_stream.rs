//! `GET /audit/stream`: the audit trail as Server-Sent Events, for a SIEM or a dashboard that
//! follows it live. Each record is one event (`id` = its sequence number, `event: audit`,
//! `data` = the record's JSON, decrypted), so a client that reconnects with `Last-Event-ID`
//! (browsers' `EventSource` do it by themselves) or `?after=` resumes right after the last
//! record it got: nothing skipped, nothing repeated. Needs `audit:read`; opening and closing
//! a stream are audited with the range it delivered. Records archived before the client got
//! them (`portcullis audit archive`) are not silently passed over: an `event: archived` names
//! the range (`{"first_seq", "last_seq"}`, with the last as its `id`), which is in the archive
//! segments.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use portcullis_audit::export::{record_json, POLL};
use portcullis_audit::{AuditTrail, ReadRecord};
use portcullis_core::audit::{AuditAction, AuditEvent};
use portcullis_core::time::unix_seconds;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AdminCaller;
use crate::errors::AdminError;
use crate::extract::QueryParams;

/// Records read from the store per round.
const PAGE: u32 = 200;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where the stream starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Send records with a sequence number above this one (default 0: the whole trail). A
    /// `Last-Event-ID` header, sent on reconnection, takes precedence.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// Follow the audit trail as Server-Sent Events, decrypted, resumable by sequence number.
#[utoipa::path(
    get, path = "/audit/stream", tag = "audit",
    params(StreamQuery),
    responses(
        (status = 200, description = "An endless text/event-stream: one `audit` event per record, `id` = its sequence number", content_type = "text/event-stream", body = String),
        (status = 403, description = "The token lacks the audit:read scope", body = crate::errors::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stream_audit(
    State(trail): State<AuditTrail>,
    caller: AdminCaller,
    headers: HeaderMap,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AdminError> {
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                AdminError::BadRequest("Last-Event-ID must be a sequence number".into())
            })?,
        None => query.after.unwrap_or(0),
    };
    if after < 0 {
        return Err(AdminError::BadRequest("after must not be negative".into()));
    }
    trail
        .commit(read_event(
            &caller,
            serde_json::json!({"stream": "opened", "after": after}),
        ))
        .await?;
    let state = Follower {
        trail,
        caller,
        cursor: after,
        opened_after: after,
        pending: VecDeque::new(),
    };
    let events = stream::unfold(state, |mut state| async move {
        let item = match state.next().await {
            Next::Record(record) => event(record.as_ref()),
            Next::Archived { first, last } => Event::default()
                .id(last.to_string())
                .event("archived")
                .data(serde_json::json!({"first_seq": first, "last_seq": last}).to_string()),
        };
        Some((Ok(item), state))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn event(record: &ReadRecord) -> Event {
    Event::default()
        .id(record.record.seq.to_string())
        .event("audit")
        .data(record_json(record).to_string())
}

fn read_event(caller: &AdminCaller, detail: serde_json::Value) -> AuditEvent {
    caller.event(
        unix_seconds(std::time::SystemTime::now()),
        AuditAction::AuditRead,
        "audit",
        detail,
    )
}

/// What a follower hands out next.
enum Next {
    Record(Box<ReadRecord>),
    /// Records `first..=last` left the live store before this client got them.
    Archived {
        first: i64,
        last: i64,
    },
}

/// One client's position in the trail.
struct Follower {
    trail: AuditTrail,
    caller: AdminCaller,
    /// The last sequence number handed out.
    cursor: i64,
    opened_after: i64,
    pending: VecDeque<ReadRecord>,
}

impl Follower {
    /// The next record, waiting for one to be appended if need be, or the range archived
    /// between the last one handed out and it.
    async fn next(&mut self) -> Next {
        loop {
            if let Some(record) = self.pending.front() {
                let seq = record.record.seq;
                if seq > self.cursor + 1 {
                    let gap = Next::Archived {
                        first: self.cursor + 1,
                        last: seq - 1,
                    };
                    self.cursor = seq - 1;
                    return gap;
                }
            }
            if let Some(record) = self.pending.pop_front() {
                self.cursor = record.record.seq;
                return Next::Record(Box::new(record));
            }
            match self.trail.records_after(self.cursor, PAGE).await {
                Ok(records) if !records.is_empty() => self.pending.extend(records),
                Ok(_) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    tracing::warn!(error = %e, "audit stream: reading the trail failed; retrying");
                    tokio::time::sleep(POLL * 4).await;
                }
            }
        }
    }
}

impl Drop for Follower {
    /// The client went away: record which range it was sent.
    fn drop(&mut self) {
        let trail = self.trail.clone();
        let event = read_event(
            &self.caller,
            serde_json::json!({
                "stream": "closed",
                "after": self.opened_after,
                "last_seq": self.cursor,
            }),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if trail.commit(event).await.is_err() {
                    tracing::warn!(
                        "audit stream: the closing audit.read record could not be stored"
                    );
                }
            });
        }
    }
}
