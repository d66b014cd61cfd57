#!/usr/bin/env python3
"""An actuator that obeys only commands its operator signed (docs/signed-objects.md).

It pins one thing, the operator's root public key, and learns the command-signing keys from
the root-signed trust list the gateway serves. Over MQTT it subscribes to its own
`devices/{id}/commands`; each command is checked before anything moves:

  - a COSE_Sign1 with content type application/vnd.portcullis.command+cbor,
  - signed by a `commands` key of the trust list (which itself verifies with the root),
  - `dev` is this device, `iat` not in the future (60 s skew), `exp` not passed,
  - `seq` above the last command it executed (a replayed or reordered command is refused),

and answered with an authenticated result, a COSE_Mac0 under the device key (like telemetry,
docs/gateway-protocol.md) published to `devices/{id}/results`:

  actuator.py --device-id valve-7 --key-id KID --key=BASE64URL --audience https://auth.example \
      --mqtt 127.0.0.1:1883 --plain --gateway http://127.0.0.1:8080 --root root.jwk.json \
      [--count 2] [--timeout 60] [--fail-above 90]

Prints one JSON line per command: {"cid", "name", "args", "seq", "verdict"}. With
--fail-above N, a `position` argument above N is reported as failed (a valve that cannot open
that far), to show both results.
"""

import argparse
import json
import os
import sys
import time

import cbor2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python_device"))
from device import next_counter, seal  # noqa: E402
from signed import COMMAND_TYPE, SKEW, Trust, subscribe_until  # noqa: E402


def check(command, device_id, last_seq, now):
    if command["dev"] != device_id:
        return "refused: for another device"
    if command["iat"] > now + SKEW:
        return "refused: issued in the future"
    if now >= command["exp"]:
        return "refused: expired"
    if command["seq"] <= last_seq:
        return "refused: sequence not increasing (replayed or reordered)"
    return None


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
    parser.add_argument("--count", type=int, default=1, help="commands to take, then exit")
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--fail-above", type=float)
    parser.add_argument("--state", help="counter state file of the result messages")
    args = parser.parse_args()
    # What device.py's token and seal helpers read.
    args.cert_key, args.serial, args.lifetime = None, None, 600
    args.counter, args.clock_counter = None, False

    with open(args.root) as f:
        trust = Trust(args.gateway, json.load(f))
    last_seq = 0
    seen = []

    def on_message(client, message):
        nonlocal last_seq
        now = int(time.time())
        try:
            command = trust.open(message.payload, COMMAND_TYPE, "commands")
        except Exception as e:  # noqa: BLE001 - anything unverifiable is refused
            print(json.dumps({"verdict": f"refused: {e}"}), flush=True)
            return
        verdict = check(command, args.device_id, last_seq, now)
        line = {k: command[k] for k in ("cid", "name", "args", "seq")}
        if verdict is None:
            last_seq = command["seq"]
            position = (command["args"] or {}).get("position")
            ok = args.fail_above is None or position is None or position <= args.fail_above
            status = "succeeded" if ok else "failed"
            verdict = "executed" if ok else "failed"
            result = {"cid": command["cid"], "status": status, "output": {"position": position}}
            body = seal(args, cbor2.dumps(result), next_counter(args), now)
            client.publish(f"devices/{args.device_id}/results", body, qos=1)
        line["verdict"] = verdict
        print(json.dumps(line), flush=True)
        seen.append(line)

    topic = f"devices/{args.device_id}/commands"
    if not subscribe_until(args, topic, on_message, lambda: len(seen) >= args.count):
        raise SystemExit(f"only {len(seen)} of {args.count} commands arrived")


if __name__ == "__main__":
    main()
