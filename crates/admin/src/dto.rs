//! The JSON shapes of the admin API, kept apart from the domain types so that the wire
//! contract (and its OpenAPI schema) changes only on purpose.
//!
//! Requests reject unknown fields: a misspelt `scope` silently ignored would register a
//! client with fewer rights than the operator meant. Responses never contain secret hashes or
//! sealed secrets; a plaintext secret appears only in the one response that creates it.

use portcullis_audit::ReadRecord;
use portcullis_core::client::{AuthMethod, Client, TlsClientAuthMatch};
use portcullis_core::{CoreError, Secret, UnixTime};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use crate::errors::AdminError;

/// The OpenAPI schema of [`AuthMethod`], listing exactly the methods the core knows.
fn auth_method_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(AuthMethod::ALL.map(AuthMethod::as_str)))
        .description(Some("Token endpoint authentication method (RFC 7591 §2)."))
}

/// `POST /clients`: register a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientRequest {
    /// Human-readable name, 1-200 printable characters.
    pub name: String,
    /// Scopes the client may request (RFC 6749 §3.3 scope tokens).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences (RFC 8707 resource indicators, absolute URIs) it may request tokens for.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Defaults to `client_secret_basic`.
    #[serde(default)]
    #[schema(schema_with = auth_method_schema)]
    pub auth_method: Option<AuthMethod>,
    /// The client's public JWK Set (RFC 7517 §5), for `private_key_jwt`; for
    /// `self_signed_tls_client_auth`, the client's certificates, one `x5c` per key
    /// (RFC 8705 §2.2).
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Where the client's JWK Set is published, for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    /// `tls_client_auth` (RFC 8705 §2.1.2): the expected subject DN of the client certificate,
    /// an RFC 4514 string such as `CN=meter-7,O=Plant`. Exactly one `tls_client_auth_*` field
    /// is required for `tls_client_auth` clients and none is allowed for other methods.
    pub tls_client_auth_subject_dn: Option<String>,
    /// `tls_client_auth`: an expected dNSName SAN entry.
    pub tls_client_auth_san_dns: Option<String>,
    /// `tls_client_auth`: an expected uniformResourceIdentifier SAN entry.
    pub tls_client_auth_san_uri: Option<String>,
    /// `tls_client_auth`: an expected iPAddress SAN entry (IPv4 or IPv6 text).
    pub tls_client_auth_san_ip: Option<String>,
    /// `tls_client_auth`: an expected rfc822Name SAN entry.
    pub tls_client_auth_san_email: Option<String>,
    /// Access-token lifetime in seconds; default 3600, at most 86400.
    pub token_ttl_secs: Option<u32>,
    /// A chosen client id; by default one is generated (`c-` + 16 base64url characters).
    pub client_id: Option<String>,
    /// Whether the client may obtain tokens; default true.
    pub enabled: Option<bool>,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof; default false.
    pub dpop_bound_access_tokens: Option<bool>,
}

/// `PATCH /clients/{id}`: change some settings. Absent fields are left as they are; for
/// `jwks` and `jwks_uri`, `null` removes the value (RFC 7396 merge-patch semantics).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientRequest {
    pub name: Option<String>,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof. Turning it on ends the
    /// client's tokens issued before.
    pub dpop_bound_access_tokens: Option<bool>,
    pub scopes: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub token_ttl_secs: Option<u32>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub jwks_uri: Option<Option<String>>,
    /// Replaces the certificate match of a `tls_client_auth` client (give exactly one
    /// `tls_client_auth_*` field).
    pub tls_client_auth_subject_dn: Option<String>,
    pub tls_client_auth_san_dns: Option<String>,
    pub tls_client_auth_san_uri: Option<String>,
    pub tls_client_auth_san_ip: Option<String>,
    pub tls_client_auth_san_email: Option<String>,
}

impl CreateClientRequest {
    /// The RFC 8705 certificate match given, if any; more than one is an error.
    pub fn tls_client_auth(&self) -> Result<Option<TlsClientAuthMatch>, CoreError> {
        tls_match([
            &self.tls_client_auth_subject_dn,
            &self.tls_client_auth_san_dns,
            &self.tls_client_auth_san_uri,
            &self.tls_client_auth_san_ip,
            &self.tls_client_auth_san_email,
        ])
    }
}

impl UpdateClientRequest {
    /// The new RFC 8705 certificate match, if one is given; more than one is an error.
    pub fn tls_client_auth(&self) -> Result<Option<TlsClientAuthMatch>, CoreError> {
        tls_match([
            &self.tls_client_auth_subject_dn,
            &self.tls_client_auth_san_dns,
            &self.tls_client_auth_san_uri,
            &self.tls_client_auth_san_ip,
            &self.tls_client_auth_san_email,
        ])
    }
}

/// At most one of the five `tls_client_auth_*` values, in [`TlsClientAuthMatch::METADATA_NAMES`]
/// order.
fn tls_match(values: [&Option<String>; 5]) -> Result<Option<TlsClientAuthMatch>, CoreError> {
    let mut given = TlsClientAuthMatch::METADATA_NAMES
        .iter()
        .zip(values)
        .filter_map(|(name, value)| value.as_ref().map(|v| (*name, v)));
    let first = given.next();
    if given.next().is_some() {
        return Err(CoreError::invalid(
            "tls_client_auth",
            "give exactly one of tls_client_auth_subject_dn, tls_client_auth_san_dns, \
             tls_client_auth_san_uri, tls_client_auth_san_ip or tls_client_auth_san_email",
        ));
    }
    first
        .map(|(name, value)| TlsClientAuthMatch::from_metadata(name, value.clone()))
        .transpose()
}

/// Distinguishes a field sent as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /clients/{id}/rotate-secret`; the body may be omitted.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// How long the previous secret stays valid, in seconds; default 86400 (one day), at most
    /// 2592000 (30 days); 0 stops it at once.
    pub overlap_secs: Option<u32>,
}

/// A client as the admin API shows it: everything but its secret material.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    #[schema(schema_with = auth_method_schema)]
    pub auth_method: AuthMethod,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub token_ttl_secs: u32,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 8705 §2.1.2 certificate match of a `tls_client_auth` client: at most one of the
    /// five `tls_client_auth_*` members is present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof.
    pub dpop_bound_access_tokens: bool,
    /// Unix seconds.
    pub created_at: UnixTime,
    /// Unix seconds.
    pub updated_at: UnixTime,
    /// While a rotated-out secret is still accepted: when it stops being accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_rotation_deadline: Option<UnixTime>,
}

impl ClientView {
    /// The view of `client` at `now` (which decides whether a rotation is still in overlap).
    pub fn of(client: &Client, now: UnixTime) -> Result<Self, AdminError> {
        let jwks = match &client.jwks {
            // Stored JWKS were validated on the way in; one that no longer parses is corrupt.
            Some(text) => Some(serde_json::from_str(text).map_err(|_| {
                portcullis_store::StoreError::Corrupt(format!(
                    "client {}: stored jwks is not JSON",
                    client.client_id
                ))
            })?),
            None => None,
        };
        Ok(Self {
            client_id: client.client_id.to_string(),
            name: client.name.clone(),
            auth_method: client.auth_method,
            scopes: client.scopes.iter().map(str::to_owned).collect(),
            audiences: client.audiences.clone(),
            token_ttl_secs: client.token_ttl_secs,
            enabled: client.enabled,
            jwks,
            jwks_uri: client.jwks_uri.clone(),
            tls_client_auth_subject_dn: tls_value(client, "tls_client_auth_subject_dn"),
            tls_client_auth_san_dns: tls_value(client, "tls_client_auth_san_dns"),
            tls_client_auth_san_uri: tls_value(client, "tls_client_auth_san_uri"),
            tls_client_auth_san_ip: tls_value(client, "tls_client_auth_san_ip"),
            tls_client_auth_san_email: tls_value(client, "tls_client_auth_san_email"),
            dpop_bound_access_tokens: client.dpop_bound_access_tokens,
            created_at: client.created_at,
            updated_at: client.updated_at,
            secret_rotation_deadline: client
                .secret_hashes
                .iter()
                .filter_map(|h| h.expires_at)
                .filter(|&t| t > now)
                .max(),
        })
    }
}

/// The value of the client's certificate match if it is of the kind `name`.
fn tls_value(client: &Client, name: &str) -> Option<String> {
    client
        .tls_client_auth
        .as_ref()
        .filter(|m| m.metadata_name() == name)
        .map(|m| m.value().to_owned())
}

pub(crate) fn expose_secret<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

pub(crate) fn expose_optional_secret<S: Serializer>(
    secret: &Option<Secret>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => expose_secret(secret, s),
        None => s.serialize_none(),
    }
}

/// `201` answer to `POST /clients`: the view plus, for secret methods, the secret, shown
/// this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: ClientView,
    /// 256 random bits, base64url. Store it now: the server keeps only its HMAC.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_optional_secret"
    )]
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<Secret>,
}

/// Answer to `POST /clients/{id}/rotate-secret`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    pub client_id: String,
    /// The new secret, shown this once.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String)]
    pub client_secret: Secret,
    /// Unix time at which the previous secret stops being accepted.
    pub old_secret_expires_at: UnixTime,
}

/// One page of clients, ordered by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientPage {
    pub clients: Vec<ClientView>,
    /// Pass as `after` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

/// `GET /clients` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClientPageQuery {
    /// Page size, 1-1000; default 50.
    pub limit: Option<u32>,
    /// Return clients whose id sorts after this one (the previous page's `next`).
    pub after: Option<String>,
}

/// `GET /audit` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditPageQuery {
    /// Page size, 1-1000; default 50.
    pub limit: Option<u32>,
    /// Return records with a sequence number below this one (the previous page's `next`).
    pub before: Option<i64>,
}

/// One audit record: the event, its position in the chain and its chain hashes.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditRecordView {
    pub seq: i64,
    /// Unix seconds.
    pub at: UnixTime,
    /// Who acted: a client id, `admin:<client_id>`, or `system`.
    pub actor: String,
    /// What was done, e.g. `client.created`.
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// `success` or `failure`.
    pub outcome: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// hex SHA-256 of the previous record.
    pub prev_hash: String,
    /// hex SHA-256 of this record.
    pub hash: String,
    /// Whether the stored record is encrypted (its hashes cover the ciphertext; the fields
    /// above are shown decrypted).
    pub encrypted: bool,
    /// Why an encrypted record could not be decrypted (its fields are then empty and
    /// `detail` holds the ciphertext); absent when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl From<ReadRecord> for AuditRecordView {
    fn from(read: ReadRecord) -> Self {
        let r = read.record;
        Self {
            encrypted: read.encrypted,
            unreadable: read.unreadable,
            seq: r.seq,
            at: r.event.at,
            actor: r.event.actor,
            action: r.event.action,
            subject: r.event.subject,
            outcome: r.event.outcome,
            detail: r.event.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The audit data keys (`GET /audit/keys`): names and dates, never key material.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditKeys {
    /// Oldest first; exactly one is active unless records are not encrypted (then empty).
    pub keys: Vec<AuditKeyView>,
}

/// One audit data key.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditKeyView {
    pub kid: String,
    /// Unix seconds.
    pub created_at: UnixTime,
    /// `software` (sealed under the master key) or `pkcs11` (sealed by the HSM).
    pub backend: String,
    /// Whether new records are sealed with it.
    pub active: bool,
}

impl From<Vec<portcullis_audit::DataKeyInfo>> for AuditKeys {
    fn from(keys: Vec<portcullis_audit::DataKeyInfo>) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|k| AuditKeyView {
                    kid: k.kid,
                    created_at: k.created_at,
                    backend: k.backend,
                    active: k.active,
                })
                .collect(),
        }
    }
}

/// One page of audit records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecordView>,
    /// Pass as `before` to get older records; `null` when there are none.
    pub next: Option<i64>,
}

/// Answer to `POST /audit/verify` when the chain is intact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainVerified {
    /// Always `true`; a broken chain is a 409 problem instead.
    pub ok: bool,
    /// How many records were checked.
    pub records: u64,
    /// Sequence number of the last record (0 for an empty chain).
    pub last_seq: i64,
    /// Signed checkpoints whose signature verified and whose hash matches the chain.
    pub checkpoints_verified: u64,
    /// Checkpoints whose key this server cannot use (destroyed in the HSM after removal,
    /// held by another key backend, revoked as compromised): consistent with the chain, but
    /// proving nothing. Not an error; see `unverifiable_keys`.
    pub checkpoints_unverifiable: u64,
    /// The keys of those checkpoints and why each cannot be used (at most 16).
    pub unverifiable_keys: Vec<UnverifiableKey>,
    /// The record the newest verified checkpoint covers (0 when none): no rewrite up to here
    /// goes unnoticed.
    pub last_checkpoint_seq: i64,
    /// Records after it (`last_seq - last_checkpoint_seq`): compare `last_seq` with the
    /// newest checkpoint in the operational log to see whether this tail was cut.
    pub records_after_checkpoint: u64,
    /// The last record moved to an archive segment (0: none); the chain is proven from there
    /// (`portcullis audit verify --archive` proves the segments).
    pub archived_through: i64,
    /// Whether a verified checkpoint in the live chain signs that archive anchor.
    pub anchor_verified: bool,
}

/// A key whose checkpoints could not be verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnverifiableKey {
    pub kid: String,
    pub reason: String,
}

/// Page size rule shared by both list endpoints.
pub(crate) const DEFAULT_PAGE: u32 = 50;
pub(crate) const MAX_PAGE: u32 = 1000;

/// Checks a requested page size, so a caller learns about a bad `limit` instead of getting a
/// silently different page.
pub(crate) fn page_size(limit: Option<u32>) -> Result<u32, AdminError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n),
        _ => Err(AdminError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        ))),
    }
}

/// Cuts a page fetched with `limit + 1` rows down to `limit` and returns the cursor of the
/// next page. The extra row is how we know another page exists, so the last page says
/// `next: null` instead of sending the caller to an empty one.
pub(crate) fn end_page<T, K>(rows: &mut Vec<T>, limit: u32, cursor: impl Fn(&T) -> K) -> Option<K> {
    let limit = limit as usize;
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tells_null_from_absent() {
        let p: UpdateClientRequest = serde_json::from_str(r#"{"jwks_uri":null}"#).unwrap();
        assert_eq!(p.jwks_uri, Some(None));
        assert!(p.jwks.is_none());
    }

    #[test]
    fn created_client_shows_the_secret_but_debug_does_not() {
        let c = CreatedClient {
            client: ClientView {
                client_id: "c1".into(),
                name: "n".into(),
                auth_method: AuthMethod::ClientSecretBasic,
                scopes: vec![],
                audiences: vec![],
                token_ttl_secs: 1,
                enabled: true,
                jwks: None,
                jwks_uri: None,
                tls_client_auth_subject_dn: None,
                tls_client_auth_san_dns: None,
                tls_client_auth_san_uri: None,
                tls_client_auth_san_ip: None,
                tls_client_auth_san_email: None,
                dpop_bound_access_tokens: false,
                created_at: 0,
                updated_at: 0,
                secret_rotation_deadline: None,
            },
            client_secret: Some(Secret::new("s3cr3t")),
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["client_secret"], "s3cr3t");
        assert_eq!(json["client_id"], "c1");
        assert!(json.get("jwks").is_none());
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn at_most_one_tls_client_auth_field() {
        let p: CreateClientRequest =
            serde_json::from_str(r#"{"name":"m","tls_client_auth_san_ip":"10.0.0.7"}"#).unwrap();
        assert_eq!(
            p.tls_client_auth().unwrap(),
            Some(TlsClientAuthMatch::SanIp("10.0.0.7".into()))
        );
        let p: CreateClientRequest = serde_json::from_str(
            r#"{"name":"m","tls_client_auth_subject_dn":"CN=a","tls_client_auth_san_dns":"a"}"#,
        )
        .unwrap();
        assert!(p.tls_client_auth().is_err());
        let p: UpdateClientRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(p.tls_client_auth().unwrap(), None);
    }

    #[test]
    fn only_an_overfull_page_has_a_next_cursor() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(end_page(&mut rows, 2, |r| *r), Some(2));
        assert_eq!(rows, [1, 2]);
        let mut rows = vec![1, 2];
        assert_eq!(end_page(&mut rows, 2, |r| *r), None);
        assert_eq!(rows, [1, 2]);
    }

    #[test]
    fn page_size_is_bounded() {
        assert_eq!(page_size(None).unwrap(), 50);
        assert_eq!(page_size(Some(1000)).unwrap(), 1000);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(1001)).is_err());
    }
}
