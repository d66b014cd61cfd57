-- wrk script for bench/pki_load.sh: OCSP POST (RFC 6960 §A.1) of the DER request in
-- $OCSP_REQUEST. With a nonce in it every answer is signed fresh; without, it is pre-signed.
local f = assert(io.open(os.getenv("OCSP_REQUEST"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/ocsp-request"

-- done(): the RESULT line, shared with the other scripts (bench/result.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
