-- RFC 8705 mutual-TLS client authentication: the certificate attribute a `tls_client_auth`
-- client is recognised by, as JSON with one member named after the RFC 8705 §2.1.2 metadata,
-- e.g. {"tls_client_auth_subject_dn":"CN=meter-7,O=Plant"}. NULL for every other method
-- (a `self_signed_tls_client_auth` client registers its certificates in `jwks`).
ALTER TABLE clients ADD COLUMN tls_client_auth TEXT;
