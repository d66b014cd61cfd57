#!/usr/bin/env python3
"""A camera that installs only software its operator signed (docs/signed-objects.md).

Over HTTP(S) with its device credential it asks the gateway which release it should run
(`GET /gateway/v1/updates/latest`), checks the signed manifest against the trust list its
pinned root signed — an `updates` key, its own model, not before `nbf`, not after `exp` (an
expired manifest means someone is freezing it on old software), a release above the one it
runs (no rollback) — downloads the image in ranges (resuming where it stopped), checks size and
SHA-256 against the manifest, installs it, and reports each step in an authenticated message
(COSE_Sign1 with its certificate's key, or COSE_Mac0 under a device key) to
`POST /gateway/v1/updates/status`:

  camera.py --device-id cam-1 --cert-key dev.key --serial HEX --audience https://auth.example \
      --gateway http://127.0.0.1:8080 --root root.jwk.json --model cam-v1 --installed 3 \
      [--image-out firmware.bin] [--chunk 65536]

Prints one JSON line: {"release", "version", "verdict"} ("installed", "up to date" or
"refused: why"); exits 0 unless the gateway could not be reached.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request

import cbor2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python_device"))
from device import b64url_decode, device_token, next_counter, seal  # noqa: E402
from signed import MANIFEST_TYPE, SKEW, Trust  # noqa: E402


def get(url, token=None, headers=None):
    request = urllib.request.Request(url, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def report(args, release, status, detail=None):
    body = {"release": release, "status": status}
    if detail:
        body["detail"] = detail[:256]
    message = seal(args, cbor2.dumps(body), next_counter(args), int(time.time()))
    request = urllib.request.Request(
        f"{args.gateway}/gateway/v1/updates/status",
        data=message,
        method="POST",
        headers={"Content-Type": "application/cose"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def download(url, size, chunk):
    """The image, fetched in ranges of `chunk` bytes (a device on a poor link resumes)."""
    image = bytearray()
    while len(image) < size:
        end = min(len(image) + chunk, size) - 1
        status, _, part = get(url, headers={"Range": f"bytes={len(image)}-{end}"})
        if status != 206 or not part:
            raise ValueError(f"range request answered {status}")
        image.extend(part)
    return bytes(image)


def check(manifest, args, now):
    if manifest["model"] != args.model:
        return "for another model"
    if now < manifest["nbf"] - SKEW:
        return "not yet valid"
    if now >= manifest["exp"]:
        return "manifest expired (freeze attack?)"
    if manifest["release"] < args.installed:
        return "below the installed release (rollback)"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--key-id", help="device key id (or --cert-key and --serial)")
    parser.add_argument("--key", help="device key, base64url (write --key=KEY)")
    parser.add_argument("--cert-key", help="PEM private key of the device certificate")
    parser.add_argument("--serial", help="the certificate's serial, lowercase hex")
    parser.add_argument("--audience", required=True, help="aud of the device token")
    parser.add_argument("--gateway", required=True, help="base URL of the gateway")
    parser.add_argument("--root", required=True, help="the pinned root public key, a JWK file")
    parser.add_argument("--model", required=True, help="this camera's model")
    parser.add_argument("--installed", type=int, default=0, help="the release it runs")
    parser.add_argument("--image-out", help="where to 'install' the image")
    parser.add_argument("--chunk", type=int, default=65536, help="bytes per range request")
    parser.add_argument("--state", help="counter state file of the report messages")
    args = parser.parse_args()
    if (args.key is None) == (args.cert_key is None):
        parser.error("give --key-id/--key (device key) or --cert-key/--serial (certificate)")
    args.lifetime, args.counter, args.clock_counter = 600, None, False

    with open(args.root) as f:
        trust = Trust(args.gateway, json.load(f))
    token = device_token(args, int(time.time()))
    status, _, body = get(f"{args.gateway}/gateway/v1/updates/latest", token)
    if status == 204:
        print(json.dumps({"verdict": "up to date"}))
        return
    offer = json.loads(body)
    release = offer["release"]
    try:
        manifest = trust.open(b64url_decode(offer["manifest"]), MANIFEST_TYPE, "updates")
    except Exception as e:  # noqa: BLE001 - anything unverifiable is refused
        report(args, release, "refused", f"manifest: {e}")
        print(json.dumps({"release": release, "verdict": f"refused: manifest: {e}"}))
        return
    line = {"release": manifest["release"], "version": manifest["version"]}
    if manifest["release"] == args.installed:
        line["verdict"] = "up to date"
        print(json.dumps(line), flush=True)
        return
    why = check(manifest, args, int(time.time()))
    if why is None:
        report(args, release, "downloading")
        image = download(manifest["url"], manifest["size"], args.chunk)
        if len(image) != manifest["size"] or hashlib.sha256(image).digest() != manifest["sha256"]:
            why = "image digest does not match the manifest (tampered?)"
    if why is not None:
        report(args, release, "refused", why)
        line["verdict"] = f"refused: {why}"
    else:
        if args.image_out:
            with open(args.image_out, "wb") as f:
                f.write(image)
        report(args, release, "installed")
        line["verdict"] = "installed"
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
