//! The update routes, on both listeners.
//!
//! Publishers (bearer access token, scope `updates:write`; reading also `updates:read`):
//! - `POST /gateway/v1/updates/releases?model=M&version=V[&release=N][&valid_days=D]
//!   [&percent=P][&ids=a,b][&attrs=k=v,k2=v2]` with the image as the body
//!   (`application/octet-stream`, streamed to disk while hashed), or with
//!   `&url=U&sha256=HEX&size=N` and no body for an image kept elsewhere;
//! - `GET  /gateway/v1/updates/releases?model=M` → the releases and the rollout;
//! - `POST /gateway/v1/updates/releases/withdraw?model=M&release=N`.
//!
//! Devices:
//! - `GET /gateway/v1/updates/latest` (device credential) → the release to run, with its
//!   signed manifest, or `204`;
//! - `GET /gateway/v1/updates/images/{sha256}` → the image, with range requests. Public, like
//!   the trust list: a device believes the image because its digest is in the signed
//!   manifest, not because of where it came from.
//!
//! Reports travel as messages (`POST /gateway/v1/updates/status`, `http.rs`).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use portcullis_core::hex;
use portcullis_core::update::{Release, ReleaseTarget};
use portcullis_http::SourceAddr;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use super::{ImageSource, NewRelease, UPDATES_READ_SCOPE, UPDATES_WRITE_SCOPE};
use crate::commands::http::{caller, calling_device, command_problem, CommandsHttp};
use crate::commands::CommandError;

/// Largest image a node takes by upload: 2 GiB.
pub const MAX_IMAGE_BYTES: u64 = 2 << 30;
/// Bytes read from an image file per body frame.
const IMAGE_CHUNK_BYTES: usize = 1 << 20;
/// Default validity of a manifest: 30 days.
const DEFAULT_VALID_DAYS: i64 = 30;

pub(crate) fn router(state: CommandsHttp) -> Router {
    Router::new()
        .route("/gateway/v1/updates/releases", post(publish).get(list))
        .route("/gateway/v1/updates/releases/withdraw", post(withdraw))
        .route("/gateway/v1/updates/latest", get(latest))
        .route("/gateway/v1/updates/images/{sha256}", get(image))
        .with_state(state)
}

fn view(release: &Release) -> serde_json::Value {
    json!({
        "model": release.model,
        "version": release.version,
        "release": release.release,
        "sha256": release.sha256,
        "size": release.size,
        "url": release.url,
        "nbf": release.nbf,
        "exp": release.exp,
        "target": release.target,
        "published_at": release.published_at,
        "published_by": release.published_by,
        "withdrawn": release.withdrawn,
        "manifest": release.manifest,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishQuery {
    model: String,
    version: String,
    release: Option<u64>,
    valid_days: Option<i64>,
    percent: Option<u8>,
    ids: Option<String>,
    attrs: Option<String>,
    url: Option<String>,
    sha256: Option<String>,
    size: Option<u64>,
}

fn digest_from_hex(text: &str) -> Result<[u8; 32], CommandError> {
    let bytes = hex::decode(text)
        .filter(|_| text.bytes().all(|b| !b.is_ascii_uppercase()))
        .ok_or_else(|| CommandError::Invalid("sha256 must be 64 lowercase hex digits".into()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| CommandError::Invalid("sha256 must be 64 lowercase hex digits".into()))
}

fn target_of(query: &PublishQuery) -> Result<ReleaseTarget, CommandError> {
    let ids = query
        .ids
        .as_deref()
        .map(|ids| {
            ids.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut attributes = BTreeMap::new();
    for pair in query.attrs.as_deref().unwrap_or("").split(',') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| CommandError::Invalid("attrs are k=v pairs, comma-separated".into()))?;
        attributes.insert(k.to_owned(), v.to_owned());
    }
    let target = ReleaseTarget {
        ids,
        attributes,
        percent: query.percent,
    };
    target.validate()?;
    Ok(target)
}

async fn publish(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Query(query): Query<PublishQuery>,
    request: Request,
) -> Response {
    let result = async {
        let (parts, body) = request.into_parts();
        let caller = caller(&state, source, &parts).await?;
        if !caller.scopes.contains(UPDATES_WRITE_SCOPE) {
            return Err(CommandError::NotReadable);
        }
        let target = target_of(&query)?;
        let updates = state.gateway.updates();
        let image = match (&query.url, &query.sha256, query.size) {
            (Some(url), Some(sha256), Some(size)) => ImageSource::External {
                url: url.clone(),
                sha256: digest_from_hex(sha256)?,
                size,
            },
            (None, None, None) => store_image(updates.images_dir(), body).await?,
            _ => {
                return Err(CommandError::Invalid(
                    "an image elsewhere needs url, sha256 and size together".into(),
                ))
            }
        };
        let valid_secs = query
            .valid_days
            .unwrap_or(DEFAULT_VALID_DAYS)
            .saturating_mul(86_400);
        updates
            .publish(
                &caller.client_id,
                NewRelease {
                    model: query.model.clone(),
                    version: query.version.clone(),
                    release: query.release,
                    image,
                    target,
                    valid_secs,
                },
            )
            .await
    }
    .await;
    match result {
        Ok(release) => (StatusCode::CREATED, Json(view(&release))).into_response(),
        Err(e) => command_problem(&e),
    }
}

/// Streams an uploaded image to disk while hashing it, then names it by its digest.
async fn store_image(dir: &std::path::Path, body: Body) -> Result<ImageSource, CommandError> {
    let io = |e: std::io::Error| CommandError::Unavailable(format!("storing the image: {e}"));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let random = portcullis_keys::random_array::<8>()
        .map_err(|e| CommandError::Unavailable(e.to_string()))?;
    let partial = dir.join(format!(".upload-{}", hex::encode(&random)));
    let mut file = tokio::fs::File::create(&partial).await.map_err(io)?;
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    let written = async {
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|_| CommandError::Invalid("the upload was interrupted".into()))?;
            size += chunk.len() as u64;
            if size > MAX_IMAGE_BYTES {
                return Err(CommandError::Invalid("an image is at most 2 GiB".into()));
            }
            digest.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        Ok(())
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    if size == 0 {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(CommandError::Invalid(
            "send the image as the body, or url, sha256 and size".into(),
        ));
    }
    let sha256: [u8; 32] = digest
        .finish()
        .as_ref()
        .try_into()
        .map_err(|_| CommandError::Unavailable("SHA-256 is 32 bytes".into()))?;
    tokio::fs::rename(&partial, dir.join(hex::encode(&sha256)))
        .await
        .map_err(io)?;
    Ok(ImageSource::Stored { sha256, size })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelQuery {
    model: String,
}

async fn list(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Query(query): Query<ModelQuery>,
    request: Request,
) -> Response {
    let result = async {
        let caller = caller(&state, source, &request.into_parts().0).await?;
        if !(caller.scopes.contains(UPDATES_READ_SCOPE)
            || caller.scopes.contains(UPDATES_WRITE_SCOPE))
        {
            return Err(CommandError::NotReadable);
        }
        let updates = state.gateway.updates();
        let releases = updates.releases(&query.model).await?;
        let rollout = updates.rollout(&query.model).await?;
        Ok((releases, rollout))
    }
    .await;
    match result {
        Ok((releases, rollout)) => Json(json!({
            "model": query.model,
            "releases": releases.iter().map(view).collect::<Vec<_>>(),
            "rollout": rollout
                .iter()
                .map(|(release, status, devices)| json!({
                    "release": release, "status": status.as_str(), "devices": devices,
                }))
                .collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => command_problem(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawQuery {
    model: String,
    release: u64,
}

async fn withdraw(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    Query(query): Query<WithdrawQuery>,
    request: Request,
) -> Response {
    let result = async {
        let caller = caller(&state, source, &request.into_parts().0).await?;
        if !caller.scopes.contains(UPDATES_WRITE_SCOPE) {
            return Err(CommandError::NotReadable);
        }
        state
            .gateway
            .updates()
            .withdraw(&caller.client_id, &query.model, query.release)
            .await
    }
    .await;
    match result {
        Ok(release) => Json(view(&release)).into_response(),
        Err(e) => command_problem(&e),
    }
}

/// `GET /gateway/v1/updates/latest`: the release the calling device should run.
async fn latest(
    State(state): State<CommandsHttp>,
    SourceAddr(source): SourceAddr,
    request: Request,
) -> Response {
    let device = match calling_device(&state, source, request).await {
        Ok(admitted) => admitted.device_id,
        Err(refusal) => return refusal,
    };
    match state.gateway.updates().latest_for(&device).await {
        Ok(Some(release)) => {
            let mut response = Json(json!({
                "model": release.model,
                "version": release.version,
                "release": release.release,
                "size": release.size,
                "sha256": release.sha256,
                "url": release.url,
                "manifest": release.manifest,
            }))
            .into_response();
            portcullis_http::insert_no_store(response.headers_mut());
            response
        }
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => command_problem(&e),
    }
}

/// `GET /gateway/v1/updates/images/{sha256}`, with `Range`, `If-Range` and conditional
/// requests as `tower-http` serves files.
async fn image(
    State(state): State<CommandsHttp>,
    Path(sha256): Path<String>,
    request: Request,
) -> Response {
    let Some(path) = state.gateway.updates().image_path(&sha256) else {
        return command_problem(&CommandError::NotFound("image"));
    };
    // No extension: served as application/octet-stream.
    // 1 MiB reads instead of the default 64 KiB: a sixteenth of the system calls and body
    // frames for large images (measured: bench/updates.sh, docs/benchmarks.md).
    let service = ServeFile::new(path).with_buf_chunk_size(IMAGE_CHUNK_BYTES);
    let mut response = match service.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => match e {},
    };
    // Content-addressed: the bytes behind a digest never change.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
