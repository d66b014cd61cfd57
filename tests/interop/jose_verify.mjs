// Interop: panva's jose v6 verifies a Portcullis access token against the published JWKS, as
// a resource server would (RFC 9068 §4: typ at+jwt, issuer, optional audience).
//
// env: ISSUER, TOKEN, optional AUDIENCE, PORTCULLIS_INTEROP_DIR
// Prints the verified header and claims; exits 0 when the token verifies.

import { importInterop, ok, requireEnv, run } from './interop_env.mjs';

const jose = await importInterop('jose');

const issuer = requireEnv('ISSUER');
const token = requireEnv('TOKEN');
const audience = process.env.AUDIENCE || undefined;

run(async () => {
  const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks.json`));
  const options = { issuer, typ: 'at+jwt', ...(audience ? { audience } : {}) };
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, options);
  ok(`jose verified signature (alg=${protectedHeader.alg}, kid=${protectedHeader.kid}, typ=${protectedHeader.typ})`);
  ok(`issuer=${payload.iss}${audience ? `, audience includes ${audience}` : ''}`);
  console.log(JSON.stringify({ header: protectedHeader, claims: payload }, null, 2));
});
