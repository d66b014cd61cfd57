//! The authorization server as the [`ClientRegistry`] and [`TokenValidator`] ports: the
//! admin API registers and changes clients, and checks its callers' bearer tokens, through
//! these without seeing the pepper, the master key or the caches.
//!
//! Every write goes store first, then cache invalidation, so a token request that races a
//! change sees either the old client or the new one. Auditing the change is the caller's:
//! it knows who asked.

use async_trait::async_trait;
use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::secret::rotated_hashes;
use portcullis_core::token::AccessTokenClaims;
use portcullis_core::{ClientId, CoreError, Secret, SecretHash, UnixTime};
use portcullis_keys::random::random_array;
use portcullis_keys::software::seal;
use portcullis_keys::verify::VerifyingKey;
use portcullis_keys::{Algorithm, JwkSet, KeyError};
use portcullis_ports::{
    ClientRegistry, PortError, Presentation, RotatedSecret, TokenRejection, TokenValidator,
};
use portcullis_store::StoreError;

use crate::AuthServer;

fn internal(e: KeyError) -> PortError {
    PortError::Internal(e.to_string())
}

/// A fresh token epoch, never 0 (the epoch of clients stored before epochs) nor `old`.
fn new_epoch(old: u32) -> Result<u32, PortError> {
    loop {
        let epoch = u32::from_be_bytes(random_array::<4>().map_err(internal)?);
        if epoch != 0 && epoch != old {
            return Ok(epoch);
        }
    }
}

/// Draws a fresh secret for a client of `method` (never chosen: the entropy is what makes a
/// fast keyed hash enough). 256 bits (43 characters) for the Basic and POST methods; 512 bits
/// (86 characters) for `client_secret_jwt`, whose secret is the HMAC key itself and must be at
/// least as long as the hash output for HS384 and HS512 (RFC 7518 §3.2).
fn generate_secret(method: AuthMethod) -> Result<Secret, PortError> {
    Ok(if method == AuthMethod::ClientSecretJwt {
        Secret::from_random_bytes(&random_array::<64>().map_err(internal)?)
    } else {
        Secret::from_random_bytes(&random_array::<32>().map_err(internal)?)
    })
}

/// Checks the public keys of a `private_key_jwt` client against the algorithms the token
/// endpoint accepts, so a key it would refuse fails registration instead of every later
/// token request.
fn check_public_keys(text: &str, allowed: &[Algorithm]) -> Result<(), PortError> {
    let set = JwkSet::parse(text).map_err(|e| CoreError::invalid("jwks", e.to_string()))?;
    if set.keys.is_empty() {
        return Err(CoreError::invalid("jwks", "must contain at least one key").into());
    }
    for (i, jwk) in set.keys.iter().enumerate() {
        VerifyingKey::from_jwk(jwk, allowed)
            .map_err(|e| CoreError::invalid("jwks", format!("key {i}: {e}")))?;
    }
    Ok(())
}

impl AuthServer {
    /// Seals the secret of a `client_secret_jwt` client under the master key, bound to its id
    /// (as AAD) so a sealed secret copied onto another client does not open.
    fn seal_secret(&self, client: &Client, secret: &Secret) -> Result<Option<Vec<u8>>, PortError> {
        if client.auth_method != AuthMethod::ClientSecretJwt {
            return Ok(None);
        }
        seal(
            &self.master,
            secret.expose().as_bytes(),
            client.client_id.as_str().as_bytes(),
        )
        .map(Some)
        .map_err(internal)
    }

    /// Writes a changed client and drops its cached copy, so the token endpoint sees the
    /// change on its next lookup rather than when the cache entry expires.
    async fn store_client_update(&self, client: &Client) -> Result<(), PortError> {
        self.store
            .update_client(client)
            .await
            .map_err(|e| match e {
                // Deleted between the caller's read and this write.
                StoreError::NotFound => PortError::UnknownClient(client.client_id.to_string()),
                other => PortError::Store(other),
            })?;
        self.clients.invalidate(&client.client_id);
        Ok(())
    }
}

#[async_trait]
impl ClientRegistry for AuthServer {
    fn now(&self) -> UnixTime {
        AuthServer::now(self)
    }

    fn check_jwks(
        &self,
        method: AuthMethod,
        jwks: &serde_json::Value,
    ) -> Result<String, PortError> {
        let text = serde_json::to_string(jwks)
            .map_err(|_| CoreError::invalid("jwks", "must be a JSON object"))?;
        if method == AuthMethod::SelfSignedTlsClientAuth {
            crate::mtls::validate_self_signed_jwks(&text)?;
        } else {
            check_public_keys(&text, &self.settings.assertion_algorithms)?;
        }
        Ok(text)
    }

    async fn clients(
        &self,
        after: Option<&ClientId>,
        limit: u32,
    ) -> Result<Vec<Client>, PortError> {
        Ok(self.store.list_clients(after, limit).await?)
    }

    async fn client(&self, id: &ClientId) -> Result<Client, PortError> {
        self.store
            .get_client(id)
            .await?
            .ok_or_else(|| PortError::UnknownClient(id.to_string()))
    }

    async fn register(&self, mut client: Client) -> Result<(Client, Option<Secret>), PortError> {
        client.token_epoch = new_epoch(0)?;
        client.secret_hashes.clear();
        client.sealed_secret = None;
        let secret = if client.auth_method.uses_secret() {
            let secret = generate_secret(client.auth_method)?;
            client
                .secret_hashes
                .push(SecretHash::of(&self.pepper, &secret, None));
            client.sealed_secret = self.seal_secret(&client, &secret)?;
            Some(secret)
        } else {
            None
        };
        self.store
            .insert_client(&client)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => PortError::ClientExists(client.client_id.to_string()),
                other => PortError::Store(other),
            })?;
        // A lookup of this id may have cached "no such client" before it existed.
        self.clients.invalidate(&client.client_id);
        Ok((client, secret))
    }

    /// A change that narrows what the client may do starts a new token epoch, which ends
    /// every token issued before it ([`Client::change_ends_tokens`]).
    async fn update(&self, client: &Client) -> Result<(), PortError> {
        let stored = ClientRegistry::client(self, &client.client_id).await?;
        let mut client = client.clone();
        client.token_epoch = if stored.change_ends_tokens(&client) {
            new_epoch(stored.token_epoch)?
        } else {
            stored.token_epoch
        };
        self.store_client_update(&client).await
    }

    async fn delete(&self, id: &ClientId) -> Result<(), PortError> {
        if !self.store.delete_client(id).await? {
            return Err(PortError::UnknownClient(id.to_string()));
        }
        self.clients.invalidate(id);
        Ok(())
    }

    /// `client_secret_jwt` clients get no overlap: their assertions are checked against the
    /// one sealed copy of the secret, which is replaced here, so the old secret stops working
    /// for JWT authentication at once, and the answer says so.
    async fn rotate_secret(
        &self,
        id: &ClientId,
        overlap_secs: u32,
    ) -> Result<RotatedSecret, PortError> {
        let mut client = ClientRegistry::client(self, id).await?;
        if !client.auth_method.uses_secret() {
            return Err(PortError::Conflict(format!(
                "client '{id}' uses {} and has no secret; update its jwks, jwks_uri or certificate match instead",
                client.auth_method.as_str()
            )));
        }
        let overlap = if client.auth_method == AuthMethod::ClientSecretJwt {
            0
        } else {
            overlap_secs
        };
        let now = AuthServer::now(self);
        let secret = generate_secret(client.auth_method)?;
        let new_hash = SecretHash::of(&self.pepper, &secret, None);
        client.secret_hashes = rotated_hashes(&client.secret_hashes, new_hash, now, overlap);
        client.sealed_secret = self.seal_secret(&client, &secret)?;
        client.updated_at = now;
        if overlap == 0 {
            // The old secret stops working at once: so do the tokens it obtained.
            client.token_epoch = new_epoch(client.token_epoch)?;
        }
        self.store_client_update(&client).await?;
        Ok(RotatedSecret {
            client,
            secret,
            old_secret_expires_at: now + i64::from(overlap),
        })
    }
}

#[async_trait]
impl TokenValidator for AuthServer {
    async fn presented_token(
        &self,
        token: &str,
        presented: Presentation<'_>,
    ) -> Result<AccessTokenClaims, TokenRejection> {
        let claims = self.check_active_token(token).await?;
        let bound = if crate::mtls::binding_holds(&claims, presented.certificate) {
            self.check_dpop_binding(&claims, token, presented.dpop)
                .await
        } else {
            Err(TokenRejection::CertificateMismatch)
        };
        match bound {
            Ok(()) => Ok(claims),
            Err(rejection) => {
                self.audit_bound_use_refused(&claims, &presented, rejection);
                Err(rejection)
            }
        }
    }

    fn dpop_nonce(&self) -> Option<String> {
        self.current_dpop_nonce()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_carry_256_bits_in_base64url() {
        assert_eq!(
            generate_secret(AuthMethod::ClientSecretBasic)
                .unwrap()
                .expose()
                .len(),
            43
        );
        // HS512 needs a key of at least 64 bytes.
        assert_eq!(
            generate_secret(AuthMethod::ClientSecretJwt)
                .unwrap()
                .expose()
                .len(),
            86
        );
    }
}
