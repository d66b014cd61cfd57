#!/usr/bin/env bash
# The industrial scenario (issue #13): an actuator (valve-7, written with paho-mqtt and pycose:
# actuator.py) obeys only signed commands; the control service may open and close valves, a
# client without the right may not, and a calibration needs a second approver (four eyes).
#
# usage: examples/industrial/run.sh      (one node of its own; exits 1 if an outcome differs)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

rules='{ rules = [ { name = "valve-operators", principals = { scopes = ["commands:valve"] }, commands = ["valve.open", "valve.close"], devices = { models = ["valve-v2"] }, args = { position = { min = 0, max = 100, integer = true, required = true } }, rate_per_minute = 30 }, { name = "calibration", principals = { scopes = ["commands:critical"] }, commands = ["valve.calibrate.*"], devices = { models = ["valve-v2"] }, approvals = 2 } ] }'

say "a node with two command rules: valve-operators, and calibration (approvals = 2)"
start_node PORTCULLIS_GATEWAY__COMMANDS="$rules"
publish_trust commands
read -r key_id key < <(device_with_key valve-7 valve-v2)
control=$(client_token commands:valve commands:critical)
intruder=$(client_token telemetry:read)
supervisor=$(client_token commands:critical)

say "the actuator connects over MQTT and subscribes to devices/valve-7/commands"
python3 "$examples/industrial/actuator.py" --device-id valve-7 --key-id "$key_id" --key="$key" \
  --audience "$base" --mqtt "$mqtt_addr" --plain --gateway "$base" --root "$work/root.jwk.json" \
  --count 2 --timeout 60 --state "$work/valve-7.counter.json" >"$work/actuator.out" 2>&1 &
actuator=$!
sleep 1.5

send() { # TOKEN BODY: prints "STATUS BODY"
  curl -s -w ' %{http_code}' -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
    -d "$2" "$base/gateway/v1/devices/valve-7/commands"
}
post() { curl -s -w ' %{http_code}' -X POST -H "Authorization: Bearer $1" "$base$2"; }

say "the control service opens the valve to 40 %"
out=$(send "$control" '{"name": "valve.open", "args": {"position": 40}, "ttl_secs": 300}')
echo "   $out"
expect "valve.open from the control service is queued (202)" grep -q '"state":"queued".* 202$' <<<"$out"
open_id=$(sed 's/ [0-9]*$//' <<<"$out" | field command_id)

say "a client without the right tries the same"
out=$(send "$intruder" '{"name": "valve.open", "args": {"position": 100}, "ttl_secs": 300}')
echo "   $out"
expect "valve.open from a client without the right is refused (403, no rule)" grep -q '"reason":"no_rule".* 403$' <<<"$out"

say "the control service asks for a calibration: it waits for a second approver"
out=$(send "$control" '{"name": "valve.calibrate.zero", "ttl_secs": 300}')
echo "   $out"
expect "the critical command waits (pending_approval)" grep -q '"state":"pending_approval".* 202$' <<<"$out"
cal_id=$(sed 's/ [0-9]*$//' <<<"$out" | field command_id)
out=$(post "$control" "/gateway/v1/commands/$cal_id/approve")
echo "   the sender approves its own: $out"
expect "the sender cannot approve its own command (403)" grep -q '"reason":"approver_is_sender".* 403$' <<<"$out"
out=$(post "$supervisor" "/gateway/v1/commands/$cal_id/approve")
echo "   the supervisor approves: $out"
expect "the supervisor's approval queues it" grep -q '"state":"queued".* 200$' <<<"$out"

say "what the actuator did (it checked each signature against the root-signed trust list)"
wait "$actuator" || true
sed 's/^/   /' "$work/actuator.out"
expect "the actuator executed valve.open" grep -q '"name": "valve.open".*"verdict": "executed"' "$work/actuator.out"
expect "the actuator executed the approved calibration" grep -q '"name": "valve.calibrate.zero".*"verdict": "executed"' "$work/actuator.out"

say "the commands' states, from the actuator's authenticated results"
sleep 1
for id in "$open_id" "$cal_id"; do
  state=$(curl -s -H "Authorization: Bearer $control" "$base/gateway/v1/commands/$id" | field state)
  echo "   $id: $state"
  expect "command $id succeeded" test "$state" = succeeded
done
finish
