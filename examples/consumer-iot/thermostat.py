#!/usr/bin/env python3
"""A thermostat that applies only settings its operator signed (docs/signed-objects.md).

It pins the operator's root public key, learns the settings keys from the root-signed trust
list, subscribes to its own `devices/{id}/settings` over MQTT, and for each settings object
checks: signed by a `settings` key of the trust list, `dev` is itself, `iat` not in the
future, `ver` above the version it runs (it never goes back to older settings). It then
applies the values and reports the version, authenticated (COSE_Mac0 under its device key), to
`devices/{id}/settings/applied`:

  thermostat.py --device-id thermo-1 --key-id KID --key=BASE64URL --audience https://auth.example \
      --mqtt 127.0.0.1:1883 --plain --gateway http://127.0.0.1:8080 --root root.jwk.json \
      [--count 1] [--timeout 60] [--have 0]

Prints one JSON line per settings object received: {"ver", "values", "verdict"}.
"""

import argparse
import json
import os
import sys
import time

import cbor2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python_device"))
from device import next_counter, seal  # noqa: E402
from signed import SETTINGS_TYPE, SKEW, Trust, subscribe_until  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--key", required=True, help="device key, base64url")
    parser.add_argument("--audience", required=True, help="aud of the device token")
    parser.add_argument("--mqtt", required=True, help="HOST:PORT of the gateway's MQTT listener")
    parser.add_argument("--plain", action="store_true", help="MQTT without TLS (loopback)")
    parser.add_argument("--gateway", required=True, help="base URL, for the trust list")
    parser.add_argument("--root", required=True, help="the pinned root public key, a JWK file")
    parser.add_argument("--count", type=int, default=1, help="versions to apply, then exit")
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--have", type=int, default=0, help="the settings version it runs")
    parser.add_argument("--state", help="counter state file of the report messages")
    args = parser.parse_args()
    args.cert_key, args.serial, args.lifetime = None, None, 600
    args.counter, args.clock_counter = None, False

    with open(args.root) as f:
        trust = Trust(args.gateway, json.load(f))
    have = args.have
    applied = []

    def on_message(client, message):
        nonlocal have
        now = int(time.time())
        try:
            settings = trust.open(message.payload, SETTINGS_TYPE, "settings")
        except Exception as e:  # noqa: BLE001 - anything unverifiable is refused
            print(json.dumps({"verdict": f"refused: {e}"}), flush=True)
            return
        line = {"ver": settings["ver"], "values": settings["values"]}
        if settings["dev"] != args.device_id:
            line["verdict"] = "refused: for another device"
        elif settings["iat"] > now + SKEW:
            line["verdict"] = "refused: issued in the future"
        elif settings["ver"] <= have:
            line["verdict"] = "refused: not newer than what it runs"
        else:
            have = settings["ver"]
            line["verdict"] = "applied"
            body = seal(args, cbor2.dumps({"ver": have}), next_counter(args), now)
            client.publish(f"devices/{args.device_id}/settings/applied", body, qos=1)
            applied.append(have)
        print(json.dumps(line), flush=True)

    topic = f"devices/{args.device_id}/settings"
    if not subscribe_until(args, topic, on_message, lambda: len(applied) >= args.count):
        raise SystemExit(f"only {len(applied)} of {args.count} versions arrived")


if __name__ == "__main__":
    main()
