#!/usr/bin/env bash
# The consumer-IoT scenario (issue #13): a thermostat (device id + key, thermostat.py) gets a
# new set point; a camera (a certificate from the node's CA over EST, camera.py) installs a
# software update, refuses a tampered image and refuses a rollback. Both check everything
# against the root-signed trust list, with pycose; both report what they did, authenticated.
#
# usage: examples/consumer-iot/run.sh   (one node of its own; exits 1 if an outcome differs)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

say "a node; operator keys for settings and updates, a trust list signed by the root"
start_node
publish_trust settings updates

say "the thermostat connects over MQTT and subscribes to devices/thermo-1/settings"
read -r key_id key < <(device_with_key thermo-1 thermostat-v2)
python3 "$examples/consumer-iot/thermostat.py" --device-id thermo-1 --key-id "$key_id" --key="$key" \
  --audience "$base" --mqtt "$mqtt_addr" --plain --gateway "$base" --root "$work/root.jwk.json" \
  --count 1 --timeout 60 --state "$work/thermo-1.counter.json" >"$work/thermostat.out" 2>&1 &
thermostat=$!
sleep 1.5
writer=$(client_token settings:write)
out=$(curl -s -X PUT -H "Authorization: Bearer $writer" -H 'Content-Type: application/json' \
  -d '{"values": {"setpoint": 21.5}}' "$base/gateway/v1/devices/thermo-1/settings")
echo "   set point 21.5: $out"
wait "$thermostat" || true
sed 's/^/   thermostat: /' "$work/thermostat.out"
expect "the thermostat applied version 1 (21.5)" grep -q '"ver": 1, "values": {"setpoint": 21.5}, "verdict": "applied"' "$work/thermostat.out"
sleep 0.5
applied=$(curl -s -H "Authorization: Bearer $writer" "$base/gateway/v1/devices/thermo-1/settings" | field applied_version)
expect "the node knows it applied version 1" test "$applied" = 1

say "the camera enrolls over EST (openssl + curl) for its certificate"
secret=$(cli device register --id cam-1 --model cam-v1 --json | field enrollment_secret)
cli ca export >"$work/root.pem"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/cam.key" \
  -subj /CN=cam-1 -outform DER 2>/dev/null | openssl base64 >"$work/csr.b64"
curl -s --cacert "$work/root.pem" -u "cam-1:$secret" -H 'Content-Type: application/pkcs10' \
  --data-binary "@$work/csr.b64" "$tls_base/.well-known/est/simpleenroll" |
  openssl base64 -d | openssl pkcs7 -inform DER -print_certs >"$work/cam.pem"
serial=$(openssl x509 -in "$work/cam.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
echo "   certificate serial $serial"
expect "the camera holds a certificate" test -n "$serial"

publisher=$(client_token updates:write)
publish() { # VERSION FILE
  curl -s -H "Authorization: Bearer $publisher" -H 'Content-Type: application/octet-stream' \
    --data-binary "@$2" "$base/gateway/v1/updates/releases?model=cam-v1&version=$1"
}
camera() { # INSTALLED
  python3 "$examples/consumer-iot/camera.py" --device-id cam-1 --cert-key "$work/cam.key" \
    --serial "$serial" --audience "$base" --gateway "$base" --root "$work/root.jwk.json" \
    --model cam-v1 --installed "$1" --chunk 65536 --state "$work/cam-1.counter.json"
}
head -c 400000 /dev/urandom >"$work/fw-1.bin"
head -c 450000 /dev/urandom >"$work/fw-2.bin"
head -c 500000 /dev/urandom >"$work/fw-3.bin"

say "release 1.0 and 1.1 published; the camera runs 1.0 (release 1)"
publish 1.0 "$work/fw-1.bin" >/dev/null
publish 1.1 "$work/fw-2.bin" >/dev/null
out=$(camera 1)
echo "   camera: $out"
expect "the camera installed release 2 (1.1) after checking manifest and digest" grep -q '"release": 2, "version": "1.1", "verdict": "installed"' <<<"$out"

say "release 1.2 published, then its image altered on the server"
sha=$(publish 1.2 "$work/fw-3.bin" | field sha256)
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[1000]^=1; open(p,"wb").write(b)' \
  "$work/data/updates/$sha"
out=$(camera 2)
echo "   camera: $out"
expect "the camera refused the tampered image" grep -q 'refused: image digest does not match' <<<"$out"

say "releases 1.2 and 1.1 withdrawn: the node offers 1.0 again, to a camera that runs 1.1"
for n in 3 2; do
  curl -s -X POST -H "Authorization: Bearer $publisher" \
    "$base/gateway/v1/updates/releases/withdraw?model=cam-v1&release=$n" >/dev/null
done
out=$(camera 2)
echo "   camera: $out"
expect "the camera refused the rollback" grep -q 'refused: below the installed release (rollback)' <<<"$out"

say "the rollout, as the camera reported it"
curl -s -H "Authorization: Bearer $publisher" "$base/gateway/v1/updates/releases?model=cam-v1" |
  python3 -c 'import json,sys
for r in json.load(sys.stdin)["rollout"]: print("   release %(release)s: %(devices)s %(status)s" % r)' |
  tee "$work/rollout.txt"
expect "the rollout shows release 2 installed" grep -q 'release 2: 1 installed' "$work/rollout.txt"
expect "the rollout shows release 3 refused" grep -q 'release 3: 1 refused' "$work/rollout.txt"
finish
