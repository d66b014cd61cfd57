// Prints a fresh ES256 (P-256) key pair for registering a private_key_jwt client:
//   {"private": <private JWK>, "public_jwks": {"keys": [<public JWK>]}}
// The kid is the RFC 7638 thumbprint of the public key.
//
// Uses only node:crypto, so it runs before the interop packages are installed.

import { generateKeyPairSync, createHash } from 'node:crypto';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pub = publicKey.export({ format: 'jwk' });
// RFC 7638 §3.2: the thumbprint input has exactly the required members, sorted, no spaces.
const thumbprintInput = JSON.stringify({ crv: pub.crv, kty: pub.kty, x: pub.x, y: pub.y });
const kid = createHash('sha256').update(thumbprintInput).digest('base64url');

const meta = { kid, alg: 'ES256', use: 'sig' };
const privateJwk = { ...privateKey.export({ format: 'jwk' }), ...meta };
const publicJwk = { ...pub, ...meta };

process.stdout.write(`${JSON.stringify({ private: privateJwk, public_jwks: { keys: [publicJwk] } })}\n`);
