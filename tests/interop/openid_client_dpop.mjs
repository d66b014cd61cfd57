// Interop: panva's openid-client v6 as a DPoP client (RFC 9449). It generates its own key,
// proves it at the token endpoint (client_credentials, client_secret_basic) and then on every
// call to a Portcullis resource (the admin API), with `ath` and, when the server requires
// them, nonces it learns from `use_dpop_nonce` answers and `DPoP-Nonce` headers.
//
// env: ISSUER, CLIENT_ID, CLIENT_SECRET   (a client allowed the portcullis:admin scope)
//      RESOURCE                           (an admin API URL to GET, under the issuer)
//      PORTCULLIS_INTEROP_DIR             (where scripts/test.sh installed the packages)
// Exits 0 when every check passes.

import { fail, importInterop, ok, requireEnv, run, unverifiedPayload } from './interop_env.mjs';

const client = await importInterop('openid-client');
const jose = await importInterop('jose');

const issuer = requireEnv('ISSUER');
const clientId = requireEnv('CLIENT_ID');
const clientSecret = requireEnv('CLIENT_SECRET');
const resource = new URL(requireEnv('RESOURCE'));

const insecure = new URL(issuer).protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {};

run(async () => {
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, client.ClientSecretBasic(clientSecret), insecure);
  const algs = config.serverMetadata().dpop_signing_alg_values_supported;
  if (!Array.isArray(algs) || !algs.includes('ES256')) fail(`discovery: dpop_signing_alg_values_supported is ${JSON.stringify(algs)}`);
  ok(`discovery: dpop_signing_alg_values_supported=${algs.join(',')}`);

  for (const alg of ['ES256', 'EdDSA']) {
    const keyPair = await client.randomDPoPKeyPair(alg);
    const DPoP = client.getDPoPHandle(config, keyPair);
    const tokens = await client.clientCredentialsGrant(config, { scope: 'portcullis:admin' }, { DPoP });
    if (String(tokens.token_type).toLowerCase() !== 'dpop') fail(`${alg}: token_type is ${tokens.token_type}`);
    const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
    const cnf = unverifiedPayload(tokens.access_token).cnf;
    if (!cnf || cnf.jkt !== jkt) fail(`${alg}: cnf is ${JSON.stringify(cnf)}, expected jkt ${jkt}`);
    ok(`${alg}: DPoP-bound token issued (cnf.jkt=${jkt})`);

    // Twice: each call needs a fresh proof (a new jti), which the handle makes.
    for (const n of [1, 2]) {
      const response = await client.fetchProtectedResource(config, tokens.access_token, resource, 'GET', undefined, undefined, { DPoP });
      if (response.status !== 200) fail(`${alg}: GET ${resource} #${n} answered ${response.status}: ${await response.text()}`);
    }
    ok(`${alg}: GET ${resource.pathname} with Authorization: DPoP and a proof, twice`);

    // A bound token without its proof is refused.
    const bare = await fetch(resource, { headers: { authorization: `DPoP ${tokens.access_token}` } });
    if (bare.status !== 401) fail(`${alg}: a DPoP token without a proof answered ${bare.status}`);
    const challenge = bare.headers.get('www-authenticate') || '';
    if (!challenge.startsWith('DPoP ')) fail(`${alg}: challenge is ${JSON.stringify(challenge)}`);
    ok(`${alg}: without a proof: 401, ${challenge}`);
  }
});
