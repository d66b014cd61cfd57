"""What a device checks before it obeys its operator (docs/signed-objects.md), with pycose and
cbor2: the root-signed trust list, and objects signed by the keys it lists for one role.
Shared by examples/industrial/actuator.py and examples/consumer-iot/thermostat.py."""

import time
import urllib.request

import cbor2
from pycose.headers import KID, ContentType
from pycose.keys import CoseKey
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.messages import CoseMessage

from device import b64url_decode

TRUST_TYPE = "application/vnd.portcullis.trust+cbor"
COMMAND_TYPE = "application/vnd.portcullis.command+cbor"
SETTINGS_TYPE = "application/vnd.portcullis.settings+cbor"
MANIFEST_TYPE = "application/vnd.portcullis.manifest+cbor"
SKEW = 60


def cose_key_from_jwk(jwk):
    """The root's JWK (as `portcullis trust key list` shows it) as a pycose key."""
    if jwk["kty"] == "EC":
        curve = {"P-256": "P_256", "P-384": "P_384"}[jwk["crv"]]
        return EC2Key(crv=curve, x=b64url_decode(jwk["x"]), y=b64url_decode(jwk["y"]))
    if jwk["kty"] == "OKP":
        return OKPKey(crv="ED25519", x=b64url_decode(jwk["x"]))
    raise SystemExit("the root key must be EC or OKP")


def verified(message_bytes, content_type, key_for):
    """The payload of a COSE_Sign1 of `content_type` whose kid `key_for` knows, or ValueError."""
    msg = CoseMessage.decode(message_bytes)
    if msg.phdr.get(ContentType) != content_type:
        raise ValueError("wrong content type")
    if msg.uhdr:
        raise ValueError("unprotected header not empty")
    key = key_for(msg.phdr.get(KID, b"").decode())
    if key is None:
        raise ValueError("unknown key")
    msg.key = key
    if not msg.verify_signature():
        raise ValueError("bad signature")
    return cbor2.loads(msg.payload)


class Trust:
    """The operator keys a device believes: those the newest trust list names, the list
    believed because the pinned root signed it."""

    def __init__(self, gateway, root_jwk):
        self.gateway = gateway
        self.root = cose_key_from_jwk(root_jwk)
        self.root_kid = root_jwk["kid"]
        self.keys = {}
        self.refresh()

    def refresh(self):
        with urllib.request.urlopen(f"{self.gateway}/gateway/v1/trust", timeout=10) as response:
            signed = response.read()
        trust = verified(signed, TRUST_TYPE, lambda kid: self.root if kid == self.root_kid else None)
        if time.time() >= trust["exp"]:
            raise SystemExit("the trust list is stale")
        self.keys = {}
        for entry in trust["keys"]:
            key = CoseKey.decode(cbor2.dumps(entry["key"]))
            self.keys[(entry["role"], key.kid.decode())] = key

    def open(self, message_bytes, content_type, role):
        """The payload, signed by a key of `role`; a kid it does not know fetches the list
        again once (a rotated key)."""
        try:
            return verified(message_bytes, content_type, lambda kid: self.keys.get((role, kid)))
        except ValueError as e:
            if str(e) != "unknown key":
                raise
        self.refresh()
        return verified(message_bytes, content_type, lambda kid: self.keys.get((role, kid)))


def subscribe_until(args, topic, on_message, done):
    """Connects over plain MQTT as the device (user name = device id, password = a device
    token), subscribes to `topic` with QoS 1, hands each message to `on_message(client,
    message)` until `done()` or `args.timeout` seconds, then disconnects; `done()` at the end."""
    import paho.mqtt.client as mqtt

    from device import device_token

    if not args.plain:
        raise SystemExit("this example speaks plain MQTT on loopback; add TLS as device.py does")
    host, _, port = args.mqtt.rpartition(":")
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=args.device_id, protocol=mqtt.MQTTv311
    )
    client.username_pw_set(args.device_id, device_token(args, int(time.time())))
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = lambda c, _userdata, message: on_message(c, message)
    client.connect(host, int(port))
    client.loop_start()
    deadline = time.time() + args.timeout
    while not done() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the PUBACK of the last message it published
    client.loop_stop()
    client.disconnect()
    return done()
