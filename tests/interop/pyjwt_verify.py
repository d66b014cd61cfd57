"""Interop: PyJWT verifies a Portcullis access token against the published JWKS.

env: ISSUER, TOKEN, AUDIENCE, PORTCULLIS_INTEROP_DIR (PyJWT and cryptography are installed
under PORTCULLIS_INTEROP_DIR/python by scripts/test.sh). Prints the verified header and
claims; exits 0 when the token verifies, 1 with a reason otherwise.
"""

import json
import os
import sys


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def require_env(name):
    value = os.environ.get(name)
    if not value:
        fail(f"environment variable {name} is required")
    return value


def interop_python_dir():
    base = os.environ.get("PORTCULLIS_INTEROP_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", ".interop"
    )
    return os.path.join(base, "python")


sys.path.insert(0, interop_python_dir())
try:
    import jwt  # noqa: E402  (PyJWT, from the interop folder)
except ImportError as err:
    fail(f"PyJWT is not installed in {interop_python_dir()}: {err} (run scripts/test.sh)")


def main():
    issuer = require_env("ISSUER")
    token = require_env("TOKEN")
    audience = require_env("AUDIENCE")

    header = jwt.get_unverified_header(token)
    # RFC 9068 §4: resource servers must check typ is at+jwt (application/at+jwt also allowed).
    if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
        fail(f"typ header is {header.get('typ')!r}, expected at+jwt")

    jwks = jwt.PyJWKClient(f"{issuer}/jwks.json")
    try:
        signing_key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=["ES256", "EdDSA", "RS256", "PS256", "ES384"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "client_id", "jti"]},
        )
    except jwt.PyJWTError as err:
        fail(f"PyJWT rejected the token: {type(err).__name__}: {err}")

    print(f"ok: PyJWT {jwt.__version__} verified signature (alg={header.get('alg')}, kid={header.get('kid')})")
    print(f"ok: iss={claims['iss']}, aud contains {audience}, typ={header.get('typ')}")
    print(json.dumps({"header": header, "claims": claims}, indent=2))


if __name__ == "__main__":
    main()
