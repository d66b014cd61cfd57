"""A device and a relying party written with Python `cryptography`, nobody's code but theirs.

MODE=enroll: build a P-256 CSR, enroll over EST (HTTP Basic, TLS verified against ROOT_PEM),
             save the certificate to CERT_PEM, then check OCSP says `good`.
MODE=ocsp:   check OCSP for CERT_PEM says EXPECT (`good` or `revoked`).

env: TLS_BASE (https://...), HTTP_BASE (http://...), DEVICE_ID, SECRET, ROOT_PEM, CERT_PEM,
     EXPECT
"""

import base64
import os
import ssl
import sys
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID


def post(url, body, content_type, context=None, auth=None):
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", content_type)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, context=context, timeout=30) as resp:
        return resp.read()


def issuer_cert():
    with urllib.request.urlopen(os.environ["HTTP_BASE"] + "/pki/ca.der", timeout=30) as resp:
        return x509.load_der_x509_certificate(resp.read())


def enroll():
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, os.environ["DEVICE_ID"])]))
        .sign(key, hashes.SHA256())
    )
    context = ssl.create_default_context(cafile=os.environ["ROOT_PEM"])
    answer = post(
        os.environ["TLS_BASE"] + "/.well-known/est/simpleenroll",
        base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)),
        "application/pkcs10",
        context=context,
        auth=os.environ["DEVICE_ID"] + ":" + os.environ["SECRET"],
    )
    certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(answer))
    assert len(certs) == 1, certs
    cert = certs[0]
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == os.environ["DEVICE_ID"], cn
    issuer = issuer_cert()
    issuer.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )
    with open(os.environ["CERT_PEM"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    print("python: enrolled", format(cert.serial_number, "x"))
    return cert, issuer


def check_ocsp(cert, issuer, expect):
    nonce = os.urandom(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA256())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    der = post(
        os.environ["HTTP_BASE"] + "/ocsp",
        request.public_bytes(serialization.Encoding.DER),
        "application/ocsp-request",
    )
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, response.response_status
    issuer.public_key().verify(
        response.signature,
        response.tbs_response_bytes,
        ec.ECDSA(response.signature_hash_algorithm),
    )
    echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert echoed == nonce, "nonce not echoed"
    assert response.serial_number == cert.serial_number
    status = response.certificate_status
    wanted = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED}[expect]
    assert status == wanted, f"OCSP says {status}, expected {expect}"
    if expect == "revoked":
        print("python: revoked, reason", response.revocation_reason)
    print("python: OCSP", expect, "signature verified, nonce echoed")


def main():
    if os.environ["MODE"] == "enroll":
        cert, issuer = enroll()
        check_ocsp(cert, issuer, "good")
    else:
        with open(os.environ["CERT_PEM"], "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        check_ocsp(cert, issuer_cert(), os.environ["EXPECT"])


if __name__ == "__main__":
    sys.exit(main())
