"""Signs a SAML assertion (or response) read from stdin with Python signxml, as an identity
provider nobody here wrote would: enveloped signature, reference to the root's ID.

usage: saml_sign.py KEY_PEM CERT_PEM [SIGNATURE_ALGORITHM] [C14N_ALGORITHM]
  SIGNATURE_ALGORITHM  signxml's name, e.g. rsa-sha256 (default) or ecdsa-sha256
  C14N_ALGORITHM       default exclusive c14n, as SAML requires
Writes the signed document to stdout.
"""

import sys

from lxml import etree
from signxml import XMLSigner, methods

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def main() -> None:
    key_path, cert_path = sys.argv[1], sys.argv[2]
    algorithm = sys.argv[3] if len(sys.argv) > 3 else "rsa-sha256"
    c14n = sys.argv[4] if len(sys.argv) > 4 else EXC_C14N
    root = etree.fromstring(sys.stdin.buffer.read())
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=algorithm,
        digest_algorithm="sha256",
        c14n_algorithm=c14n,
    )
    with open(key_path, "rb") as f:
        key = f.read()
    with open(cert_path, "rb") as f:
        cert = f.read()
    signed = signer.sign(root, key=key, cert=cert, reference_uri=root.get("ID"))
    sys.stdout.buffer.write(etree.tostring(signed))


if __name__ == "__main__":
    main()
