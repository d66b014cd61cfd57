// Interop: panva's openid-client v6 discovers Portcullis and obtains tokens with the
// client_credentials grant (RFC 6749 §4.4), once with client_secret_basic and once with
// private_key_jwt (RFC 7523 §2.2, the assertion's aud is the issuer identifier).
//
// env: ISSUER, CLIENT_ID, CLIENT_SECRET          (a client_secret_basic client)
//      PKJ_CLIENT_ID, PKJ_PRIVATE_JWK            (a private_key_jwt client; ES256 JWK with kid)
//      PORTCULLIS_INTEROP_DIR                    (where scripts/test.sh installed the packages)
// Exits 0 when every check passes.

import { fail, importInterop, ok, requireEnv, run, unverifiedPayload } from './interop_env.mjs';

const client = await importInterop('openid-client');
const jose = await importInterop('jose');

const issuer = requireEnv('ISSUER');
const clientId = requireEnv('CLIENT_ID');
const clientSecret = requireEnv('CLIENT_SECRET');
const pkjClientId = requireEnv('PKJ_CLIENT_ID');
const pkjPrivateJwk = JSON.parse(requireEnv('PKJ_PRIVATE_JWK'));

// openid-client refuses http:// unless told; the tests run on loopback without TLS.
const insecure = new URL(issuer).protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {};

function checkToken(label, tokens, expectedClientId) {
  if (typeof tokens.access_token !== 'string') fail(`${label}: no access_token in ${JSON.stringify(tokens)}`);
  // RFC 6750 §4: token_type is compared case-insensitively; oauth4webapi lower-cases it.
  if (String(tokens.token_type).toLowerCase() !== 'bearer') fail(`${label}: token_type is ${tokens.token_type}`);
  const claims = unverifiedPayload(tokens.access_token);
  if (claims.iss !== issuer) fail(`${label}: iss is ${JSON.stringify(claims.iss)}, expected ${JSON.stringify(issuer)}`);
  if (claims.client_id !== expectedClientId) {
    fail(`${label}: client_id is ${JSON.stringify(claims.client_id)}, expected ${JSON.stringify(expectedClientId)}`);
  }
  ok(`${label}: access_token issued (iss=${claims.iss}, client_id=${claims.client_id}, expires_in=${tokens.expires_in})`);
}

run(async () => {
  const basic = await client.discovery(new URL(issuer), clientId, clientSecret, client.ClientSecretBasic(clientSecret), insecure);
  const metadata = basic.serverMetadata();
  ok(`discovery: issuer=${metadata.issuer} token_endpoint=${metadata.token_endpoint}`);

  checkToken('client_secret_basic', await client.clientCredentialsGrant(basic), clientId);

  const { kid, alg = 'ES256' } = pkjPrivateJwk;
  const key = await jose.importJWK(pkjPrivateJwk, alg);
  const pkj = await client.discovery(
    new URL(issuer),
    pkjClientId,
    { token_endpoint_auth_method: 'private_key_jwt' },
    client.PrivateKeyJwt({ key, kid }),
    insecure,
  );
  checkToken('private_key_jwt', await client.clientCredentialsGrant(pkj), pkjClientId);
});
