-- wrk script for bench/pki_load.sh: OCSP POST (RFC 6960 §A.1) of the DER request in
-- $OCSP_REQUEST. With a nonce in it every answer is signed fresh; without, it is pre-signed.
local f = assert(io.open(os.getenv("OCSP_REQUEST"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/ocsp-request"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status + e.connect + e.read + e.write + e.timeout))
end
