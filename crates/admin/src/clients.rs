//! Client registration and management: the admin side of the clients the token endpoint
//! authenticates.
//!
//! The rules about secrets and keys stay with the registry (`portcullis_ports::ClientRegistry`,
//! implemented by the authorization server); this module turns requests into clients and
//! audits each change after the registry stored it, so the trail never records a change that
//! did not happen. Secret rotation is in `secrets.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_core::client::{AuthMethod, Client, DEFAULT_TOKEN_TTL_SECS};
use portcullis_core::{ClientId, CoreError, ScopeSet, UnixTime};
use portcullis_keys::random::random_array;

use crate::auth::AdminCaller;
use crate::dto::{
    end_page, page_size, ClientPage, ClientPageQuery, ClientView, CreateClientRequest,
    CreatedClient, UpdateClientRequest,
};
use crate::errors::{AdminError, Problem};
use crate::extract::{ClientIdPath, JsonBody, QueryParams};
use crate::ClientsState;

/// `c-` + 96 random bits in base64url: unguessable enough that ids leak nothing about how
/// many clients exist, short enough to type.
fn generate_client_id() -> Result<ClientId, AdminError> {
    let id = format!("c-{}", URL_SAFE_NO_PAD.encode(random_array::<12>()?));
    Ok(ClientId::parse(id)?)
}

/// Keys belong to `private_key_jwt` clients (and certificates, in `jwks`, to
/// `self_signed_tls_client_auth` clients) only: a JWK Set on a secret client would suggest it
/// can authenticate with a key when it cannot. (That such a client has one is
/// `Client::validate`'s rule.)
fn check_key_source(client: &Client) -> Result<(), AdminError> {
    let jwks_allowed = matches!(
        client.auth_method,
        AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth
    );
    if (client.jwks.is_some() && !jwks_allowed)
        || (client.jwks_uri.is_some() && client.auth_method != AuthMethod::PrivateKeyJwt)
    {
        return Err(CoreError::invalid(
            "jwks",
            "jwks and jwks_uri are only for private_key_jwt clients (and jwks, with x5c \
             certificates, for self_signed_tls_client_auth clients)",
        )
        .into());
    }
    Ok(())
}

/// The client a registration asks for, checked as far as the request itself allows (the
/// registry then stores it, refusing a taken id). `generate_id` draws an id when the request
/// names none; `check_jwks` is the registry's check of a JWK Set for the method, giving the
/// text to store. Errors come in the order a caller fixes them: certificate match, id,
/// scopes, key set, then the client's own rules. The `admin_json` fuzz target runs this very
/// function, so it cannot drift from the handler.
pub fn client_to_register(
    request: CreateClientRequest,
    now: UnixTime,
    generate_id: impl FnOnce() -> Result<ClientId, AdminError>,
    check_jwks: impl FnOnce(AuthMethod, &serde_json::Value) -> Result<String, AdminError>,
) -> Result<Client, AdminError> {
    let tls_client_auth = request.tls_client_auth()?;
    let client_id = match request.client_id {
        Some(id) => ClientId::parse(id)?,
        None => generate_id()?,
    };
    let auth_method = request.auth_method.unwrap_or(AuthMethod::ClientSecretBasic);
    let scopes = ScopeSet::from_tokens(request.scopes)?;
    let jwks = request
        .jwks
        .as_ref()
        .map(|j| check_jwks(auth_method, j))
        .transpose()?;
    let client = Client {
        client_id,
        name: request.name,
        auth_method,
        scopes,
        audiences: request.audiences,
        token_ttl_secs: request.token_ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS),
        enabled: request.enabled.unwrap_or(true),
        secret_hashes: Vec::new(),
        sealed_secret: None,
        jwks,
        jwks_uri: request.jwks_uri,
        tls_client_auth,
        dpop_bound_access_tokens: request.dpop_bound_access_tokens.unwrap_or(false),
        created_at: now,
        updated_at: now,
        // Drawn by the registry when it stores the client.
        token_epoch: 0,
    };
    client.validate()?;
    check_key_source(&client)?;
    Ok(client)
}

/// Records an admin change durably (a crash must not lose it) before the change is
/// confirmed. `changed` lists field names only, never values: values can include secrets,
/// and the names suffice to find the change.
pub(crate) async fn audit_change(
    state: &ClientsState,
    caller: &AdminCaller,
    action: AuditAction,
    subject: &ClientId,
    changed: &[&str],
) -> Result<(), AdminError> {
    state
        .audit
        .commit(AuditEvent {
            at: state.clients.now(),
            actor: caller.actor(),
            action: action.into(),
            subject: subject.to_string(),
            outcome: Outcome::Success.into(),
            detail: serde_json::json!({ "changed": changed }),
        })
        .await?;
    Ok(())
}

/// Register a client; for secret methods the answer carries its secret, shown this once.
/// Certificate clients (RFC 8705: `tls_client_auth` with one `tls_client_auth_*` field,
/// `self_signed_tls_client_auth` with `x5c` certificates in `jwks`) get no secret.
#[utoipa::path(
    post, path = "/clients", tag = "clients",
    request_body = CreateClientRequest,
    responses(
        (status = 201, description = "Client registered", body = CreatedClient),
        (status = 400, description = "Invalid body or setting", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The client id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_client(
    State(state): State<ClientsState>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<CreateClientRequest>,
) -> Result<(StatusCode, Json<CreatedClient>), AdminError> {
    let now = state.clients.now();
    let client = client_to_register(request, now, generate_client_id, |method, jwks| {
        Ok(state.clients.check_jwks(method, jwks)?)
    })?;
    let (client, secret) = state.clients.register(client).await?;
    let mut changed = vec![
        "name",
        "auth_method",
        "scopes",
        "audiences",
        "token_ttl_secs",
        "enabled",
    ];
    changed.extend(client.jwks.is_some().then_some("jwks"));
    changed.extend(client.jwks_uri.is_some().then_some("jwks_uri"));
    changed.extend(
        client
            .tls_client_auth
            .is_some()
            .then_some("tls_client_auth"),
    );
    changed.extend(
        client
            .dpop_bound_access_tokens
            .then_some("dpop_bound_access_tokens"),
    );
    changed.extend(secret.is_some().then_some("client_secret"));
    audit_change(
        &state,
        &caller,
        AuditAction::ClientCreated,
        &client.client_id,
        &changed,
    )
    .await?;
    let view = ClientView::of(&client, now)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient {
            client: view,
            client_secret: secret,
        }),
    ))
}

/// List clients ordered by id, one page at a time (keyset pagination: stable under inserts).
#[utoipa::path(
    get, path = "/clients", tag = "clients",
    params(ClientPageQuery),
    responses(
        (status = 200, description = "One page of clients", body = ClientPage),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_clients(
    State(state): State<ClientsState>,
    _caller: AdminCaller,
    QueryParams(query): QueryParams<ClientPageQuery>,
) -> Result<Json<ClientPage>, AdminError> {
    let limit = page_size(query.limit)?;
    let after = query.after.map(ClientId::parse).transpose()?;
    let mut clients = state.clients.clients(after.as_ref(), limit + 1).await?;
    let next = end_page(&mut clients, limit, |c| c.client_id.to_string());
    let now = state.clients.now();
    let clients = clients
        .iter()
        .map(|c| ClientView::of(c, now))
        .collect::<Result<_, _>>()?;
    Ok(Json(ClientPage { clients, next }))
}

/// Show one client.
#[utoipa::path(
    get, path = "/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "The client", body = ClientView),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_client(
    State(state): State<ClientsState>,
    _caller: AdminCaller,
    ClientIdPath(id): ClientIdPath,
) -> Result<Json<ClientView>, AdminError> {
    let client = state.clients.client(&id).await?;
    Ok(Json(ClientView::of(&client, state.clients.now())?))
}

/// Sets `field` to `value` and notes its name if that changes it.
fn set<T: PartialEq>(field: &mut T, value: T, name: &'static str, changed: &mut Vec<&'static str>) {
    if *field != value {
        *field = value;
        changed.push(name);
    }
}

/// Applies an update to `client` and returns the names of the fields it changed (for the
/// audit record; values can hold secrets). `check_jwks` is the registry's check of a JWK Set
/// for the client's method. The updated client must pass the same rules as a new one
/// (`Client::validate`, the key-source rule); on an error `client` may be half-changed and
/// must not be stored. The `admin_json` fuzz target runs this very function.
pub fn apply_update(
    client: &mut Client,
    request: UpdateClientRequest,
    check_jwks: impl FnOnce(AuthMethod, &serde_json::Value) -> Result<String, AdminError>,
) -> Result<Vec<&'static str>, AdminError> {
    let new_match = request.tls_client_auth()?;
    let mut changed = Vec::new();
    if let Some(name) = request.name {
        set(&mut client.name, name, "name", &mut changed);
    }
    if let Some(scopes) = request.scopes {
        set(
            &mut client.scopes,
            ScopeSet::from_tokens(scopes)?,
            "scopes",
            &mut changed,
        );
    }
    if let Some(audiences) = request.audiences {
        set(&mut client.audiences, audiences, "audiences", &mut changed);
    }
    if let Some(ttl) = request.token_ttl_secs {
        set(
            &mut client.token_ttl_secs,
            ttl,
            "token_ttl_secs",
            &mut changed,
        );
    }
    if let Some(enabled) = request.enabled {
        set(&mut client.enabled, enabled, "enabled", &mut changed);
    }
    if let Some(bound) = request.dpop_bound_access_tokens {
        set(
            &mut client.dpop_bound_access_tokens,
            bound,
            "dpop_bound_access_tokens",
            &mut changed,
        );
    }
    if let Some(m) = new_match {
        set(
            &mut client.tls_client_auth,
            Some(m),
            "tls_client_auth",
            &mut changed,
        );
    }
    if let Some(jwks) = request.jwks {
        let jwks = jwks
            .as_ref()
            .map(|j| check_jwks(client.auth_method, j))
            .transpose()?;
        set(&mut client.jwks, jwks, "jwks", &mut changed);
    }
    if let Some(jwks_uri) = request.jwks_uri {
        set(&mut client.jwks_uri, jwks_uri, "jwks_uri", &mut changed);
    }
    client.validate()?;
    check_key_source(client)?;
    Ok(changed)
}

/// Change some of a client's settings. Its id, auth method and secret cannot be changed
/// here: a different method is a different client, and secrets are only ever rotated.
#[utoipa::path(
    patch, path = "/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "The client id")),
    request_body(content = Option<UpdateClientRequest>, description = "Fields to change; an empty or omitted body changes nothing"),
    responses(
        (status = 200, description = "The updated client", body = ClientView),
        (status = 400, description = "Invalid body or setting", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_client(
    State(state): State<ClientsState>,
    caller: AdminCaller,
    ClientIdPath(id): ClientIdPath,
    JsonBody(request): JsonBody<UpdateClientRequest>,
) -> Result<Json<ClientView>, AdminError> {
    // Two certificate matches are a 400 before the client is looked up (and maybe a 404).
    request.tls_client_auth()?;
    let mut client = state.clients.client(&id).await?;
    let changed = apply_update(&mut client, request, |method, jwks| {
        Ok(state.clients.check_jwks(method, jwks)?)
    })?;
    let now = state.clients.now();
    if !changed.is_empty() {
        client.updated_at = now;
        state.clients.update(&client).await?;
        audit_change(&state, &caller, AuditAction::ClientUpdated, &id, &changed).await?;
    }
    Ok(Json(ClientView::of(&client, now)?))
}

/// Delete a client; its tokens already issued stay valid until they expire or are revoked.
#[utoipa::path(
    delete, path = "/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_client(
    State(state): State<ClientsState>,
    caller: AdminCaller,
    ClientIdPath(id): ClientIdPath,
) -> Result<StatusCode, AdminError> {
    state.clients.delete(&id).await?;
    audit_change(&state, &caller, AuditAction::ClientDeleted, &id, &[]).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_documented_shape() {
        let id = generate_client_id().unwrap();
        assert!(id.as_str().starts_with("c-"));
        assert_eq!(id.as_str().len(), 18);
        assert_ne!(generate_client_id().unwrap(), id);
    }
}
