"""Reads `device_id,enrollment_secret` lines (the output of `portcullis device import
--secrets-out`) and writes one EST request per device for bench/est.lua:
`Basic base64(id:secret)<TAB>base64(DER PKCS#10 for CN=id, P-256)`."""

import base64
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    next(src)  # header
    for line in src:
        device_id, secret = line.strip().split(",", 1)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
            .sign(key, hashes.SHA256())
        )
        auth = base64.b64encode(f"{device_id}:{secret}".encode()).decode()
        body = base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()
        out.write(f"Basic {auth}\t{body}\n")
