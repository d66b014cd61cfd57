#!/usr/bin/env python3
"""A minimal Portcullis device: authenticated readings as COSE, and device tokens.

Implements docs/gateway-protocol.md with pycose, cbor2 and PyJWT only:

  # a reading as COSE_Mac0 under a device key, over HTTP
  device.py send --device-id sensor-7 --key-id KID --key=BASE64URL \
      --url http://127.0.0.1:8080/gateway/v1/telemetry --payload '{"t":21.5}'

  # the same as COSE_Sign1 under the device certificate's private key
  device.py send --device-id sensor-7 --cert-key device.key.pem --serial 5f3a... --url ...

  # over MQTT, with a device token as the password
  device.py send ... --mqtt 127.0.0.1:8883 --cafile ca.pem --audience https://auth.example

  # a device token (HS256 with a device key, or ES256/ES384/EdDSA/PS256 with the certificate key)
  device.py token --device-id sensor-7 --key-id KID --key=BASE64URL --audience https://auth.example

The counter is kept in a small state file (--state, default ./<device-id>.counter.json) and
written before a message leaves, so a crash never reuses one. --clock-counter uses the clock
in milliseconds instead, for devices without storage.
"""

import argparse
import base64
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request

from pycose.algorithms import EdDSA, Es256, Es384, HMAC256, Ps256
from pycose.headers import KID, Algorithm
from pycose.keys import CoseKey, SymmetricKey
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.keys.rsa import RSAKey
from pycose.messages import Mac0Message, Sign1Message

# Header labels of the wire format (docs/gateway-protocol.md, "Protected header").
CWT_CLAIMS = 15  # RFC 9597: CWT Claims map
CLAIM_ISS = 1  # the device id
CLAIM_IAT = 6  # the message time, Unix seconds
COUNTER = -65537  # private-use label: the per-device counter, unsigned, > 0


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_cert_key(path):
    """The certificate's private key as a pycose key, and the COSE algorithm it signs with."""
    with open(path) as f:
        key = CoseKey.from_pem_private_key(f.read())
    if isinstance(key, EC2Key):
        alg = Es384 if key.crv.fullname == "P_384" else Es256
    elif isinstance(key, OKPKey):
        alg = EdDSA
    elif isinstance(key, RSAKey):
        alg = Ps256
    else:
        raise SystemExit("unsupported certificate key type")
    return key, alg


def next_counter(args):
    """A counter above every one this device sent before, saved before it is used."""
    if args.counter is not None:
        return args.counter
    if args.clock_counter:
        return time.time_ns() // 1_000_000
    path = args.state or f"{args.device_id}.counter.json"
    last = 0
    if os.path.exists(path):
        with open(path) as f:
            last = int(json.load(f)["counter"])
    counter = last + 1
    # Write-then-rename: the file holds the old or the new value, never half of one.
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False) as f:
        json.dump({"counter": counter}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)
    return counter


def protected_header(alg, kid, device_id, counter, timestamp):
    header = {
        Algorithm: alg,
        CWT_CLAIMS: {CLAIM_ISS: device_id, CLAIM_IAT: timestamp},
        COUNTER: counter,
    }
    if kid is not None:
        header[KID] = kid.encode()
    return header


def seal(args, payload, counter, timestamp):
    """The reading as a tagged COSE_Mac0 (device key) or COSE_Sign1 (certificate key)."""
    if args.key is not None:
        msg = Mac0Message(
            phdr=protected_header(HMAC256, args.key_id, args.device_id, counter, timestamp),
            payload=payload,
        )
        msg.key = SymmetricKey(k=b64url_decode(args.key))
    else:
        key, alg = load_cert_key(args.cert_key)
        msg = Sign1Message(
            phdr=protected_header(alg, args.serial, args.device_id, counter, timestamp),
            payload=payload,
        )
        msg.key = key
    return msg.encode()  # tagged: 0xD1 (Mac0) or 0xD2 (Sign1)


def device_token(args, now):
    import jwt  # PyJWT

    claims = {
        "iss": args.device_id,
        "sub": args.device_id,
        "aud": args.audience,
        "iat": now,
        "exp": now + args.lifetime,
    }
    if args.key is not None:
        key, alg, kid = b64url_decode(args.key), "HS256", args.key_id
    else:
        with open(args.cert_key) as f:
            key = f.read()
        _, cose_alg = load_cert_key(args.cert_key)
        alg = {Es256: "ES256", Es384: "ES384", EdDSA: "EdDSA", Ps256: "PS256"}[cose_alg]
        kid = args.serial
    headers = {"kid": kid} if kid else {}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def tls_context(args):
    context = ssl.create_default_context(cafile=args.cafile)
    if args.cert and args.cert_key:
        context.load_cert_chain(args.cert, args.cert_key)
    return context


def send_http(args, body):
    url = args.url + (f"/{args.stream}" if args.stream else "")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/cose"}
    )
    context = tls_context(args) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            print(response.status, response.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode(), file=sys.stderr)
        raise SystemExit(1)


def send_mqtt(args, body, now):
    import paho.mqtt.client as mqtt

    host, _, port = args.mqtt.rpartition(":")
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=args.device_id, protocol=mqtt.MQTTv311
    )
    if args.audience:
        client.username_pw_set(args.device_id, device_token(args, now))
    if not args.plain:
        client.tls_set_context(tls_context(args))
    client.connect(host, int(port))
    client.loop_start()
    topic = f"devices/{args.device_id}/telemetry" + (f"/{args.stream}" if args.stream else "")
    info = client.publish(topic, body, qos=1)
    info.wait_for_publish(timeout=10)
    client.loop_stop()
    client.disconnect()
    print("published" if info.is_published() else "not acknowledged")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("send", "token"):
        p = sub.add_parser(name)
        p.add_argument("--device-id", required=True)
        p.add_argument("--key-id", help="device key id (COSE_Mac0 / HS256)")
        p.add_argument(
            "--key",
            help="device key, base64url (as `device key create` prints it); write --key=KEY: "
            "a key may begin with -",
        )
        p.add_argument("--cert-key", help="PEM private key of the device certificate")
        p.add_argument("--serial", help="certificate serial, lowercase hex (optional kid)")
        p.add_argument("--audience", help="aud of the device token")
        p.add_argument("--lifetime", type=int, default=600, help="token lifetime, seconds")
        p.add_argument("--time", type=int, help="fixed Unix time (tests)")
    send = sub.choices["send"]
    send.add_argument("--payload", default='{"temperature": 21.5}')
    send.add_argument("--url", help="e.g. http://127.0.0.1:8080/gateway/v1/telemetry")
    send.add_argument("--mqtt", help="HOST:PORT of the gateway's MQTT listener")
    send.add_argument("--plain", action="store_true", help="MQTT without TLS")
    send.add_argument("--stream", help="stream name appended to the path / topic")
    send.add_argument("--cafile", help="CA bundle that signed the gateway's TLS certificate")
    send.add_argument("--cert", help="device certificate PEM (TLS client authentication)")
    send.add_argument("--state", help="counter state file")
    send.add_argument("--counter", type=int, help="fixed counter (tests)")
    send.add_argument("--clock-counter", action="store_true", help="counter = clock in ms")
    send.add_argument("--out", help="also write the COSE message to this file")
    args = parser.parse_args()

    if args.key is None and args.cert_key is None:
        parser.error("give --key-id/--key (device key) or --cert-key (certificate key)")
    if args.key is not None and not args.key_id:
        parser.error("--key needs --key-id")
    now = args.time if args.time is not None else int(time.time())

    if args.command == "token":
        if not args.audience:
            parser.error("token needs --audience")
        print(device_token(args, now))
        return

    body = seal(args, args.payload.encode(), next_counter(args), now)
    if args.out:
        with open(args.out, "wb") as f:
            f.write(body)
    if args.url:
        send_http(args, body)
    if args.mqtt:
        send_mqtt(args, body, now)
    if not (args.url or args.mqtt or args.out):
        sys.stdout.write(body.hex() + "\n")


if __name__ == "__main__":
    main()
