#!/usr/bin/env bash
# The smart-energy scenario (issue #12/#13): ten pre-registered meters report readings — six
# with a device key (COSE_Mac0, over MQTT with a device token), four with a certificate from
# the node's CA (enrolled over EST, COSE_Sign1 over plain HTTP); an unregistered meter and a
# replayed reading are refused. The devices are examples/python_device/device.py (pycose,
# PyJWT, paho-mqtt); enrollment is openssl + curl.
#
# usage: examples/smart-energy/run.sh   (one node of its own; exits 1 if an outcome differs)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
device_py="$examples/python_device/device.py"

say "a node; ten meters registered at manufacturing"
start_node
cli ca export >"$work/root.pem"

for i in 01 02 03 04 05 06; do
  read -r key_id key < <(device_with_key "meter-$i" meter-v1)
  echo "$key_id $key" >"$work/meter-$i.key"
done
for i in 07 08 09 10; do
  secret=$(cli device register --id "meter-$i" --model meter-v2 --json | field enrollment_secret)
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/meter-$i.pem.key" \
    -subj "/CN=meter-$i" -outform DER 2>/dev/null | openssl base64 >"$work/csr.b64"
  curl -s --cacert "$work/root.pem" -u "meter-$i:$secret" -H 'Content-Type: application/pkcs10' \
    --data-binary "@$work/csr.b64" "$tls_base/.well-known/est/simpleenroll" |
    openssl base64 -d | openssl pkcs7 -inform DER -print_certs >"$work/meter-$i.pem"
  openssl x509 -in "$work/meter-$i.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' >"$work/meter-$i.serial"
done
echo "   meter-01..06 hold a device key; meter-07..10 enrolled over EST for a certificate"

say "each meter sends one reading"
for i in 01 02 03 04 05 06; do
  read -r key_id key <"$work/meter-$i.key"
  out=$(python3 "$device_py" send --device-id "meter-$i" --key-id "$key_id" --key="$key" \
    --payload "{\"kwh\": 1$i.5}" --mqtt "$mqtt_addr" --plain --audience "$base" \
    --state "$work/meter-$i.counter.json" 2>&1) || true
  echo "   meter-$i (COSE_Mac0 over MQTT): $out"
  expect "meter-$i's reading is acknowledged" test "$out" = published
done
for i in 07 08 09 10; do
  out=$(python3 "$device_py" send --device-id "meter-$i" --cert-key "$work/meter-$i.pem.key" \
    --serial "$(cat "$work/meter-$i.serial")" --payload "{\"kwh\": 2$i.0}" \
    --url "$base/gateway/v1/telemetry" --state "$work/meter-$i.counter.json" 2>&1) || true
  echo "   meter-$i (COSE_Sign1 over HTTP): $out"
  expect "meter-$i's reading is accepted (202)" grep -q '^202 ' <<<"$out"
done

say "an unregistered meter tries, with a key of its own making"
out=$(python3 "$device_py" send --device-id meter-99 --key-id k00000000 \
  --key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA --payload '{"kwh": 999}' \
  --url "$base/gateway/v1/telemetry" --state "$work/meter-99.counter.json" 2>&1) || true
echo "   meter-99: $out"
expect "the unregistered meter is refused (401)" grep -q '^401 ' <<<"$out"

say "someone on the path replays meter-03's next reading"
read -r key_id key <"$work/meter-03.key"
python3 "$device_py" send --device-id meter-03 --key-id "$key_id" --key="$key" \
  --payload '{"kwh": 103.9}' --out "$work/reading.cose" --state "$work/meter-03.counter.json" >/dev/null
for attempt in original replay; do
  status=$(curl -s -o "$work/answer.json" -w '%{http_code}' -H 'Content-Type: application/cose' \
    --data-binary "@$work/reading.cose" "$base/gateway/v1/telemetry")
  echo "   $attempt: $status $(cat "$work/answer.json")"
  [[ $attempt == original ]] && expect "the original is accepted (202)" test "$status" = 202
  [[ $attempt == replay ]] && expect "the replay is refused (409)" test "$status" = 409
done

say "what the node stored"
reader=$(client_token telemetry:read)
curl -s -H "Authorization: Bearer $reader" "$base/gateway/v1/telemetry/stream?after=0" |
  python3 -c 'import base64,json,sys
rows=[json.loads(l) for l in sys.stdin if l.strip()]
for r in rows: print("   %-9s %-10s %s" % (r["device_id"], r["method"], base64.urlsafe_b64decode(r["payload"] + "=" * (-len(r["payload"]) % 4)).decode()))
print("   %d readings from %d meters" % (len(rows), len({r["device_id"] for r in rows})))' |
  tee "$work/stored.txt"
expect "eleven readings from ten meters are stored, and nothing else" grep -q '11 readings from 10 meters' "$work/stored.txt"
finish
