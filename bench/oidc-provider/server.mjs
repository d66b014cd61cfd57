// The side-by-side peer for bench/token_load.sh: panva's oidc-provider in production mode,
// serving only the client_credentials grant with JWT access tokens signed ES256, the same
// work Portcullis does per token request (RFC 9068 JWT, one ES256 signature, no storage of
// the token). Memory adapter: JWT access tokens are not persisted, so it is not on the path.
//
// env: PORT (default 3000), CLIENT_SECRET (default bench-secret-0123456789abcdef0123456789).
// Client: id `bench`, client_secret_basic. Ask with `resource=urn:bench`; without a resource
// oidc-provider would issue an opaque token instead.

import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

process.env.NODE_ENV ??= 'production';
const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;
const clientSecret = process.env.CLIENT_SECRET || 'bench-secret-0123456789abcdef0123456789';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'bench',
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256', // the default RS256 has no key here
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['bench-cookie-key-not-used-by-client-credentials'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:bench',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => ({
        scope: 'bench:read',
        audience: resourceIndicator,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  ttl: { ClientCredentials: 300 },
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
