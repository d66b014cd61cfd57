-- wrk script for bench/token_load.sh: one client_credentials token request per call
-- (RFC 6749 §4.4.2), client_secret_basic, and a one-line machine-readable summary.
--
-- env: TOKEN_AUTH  full Authorization header value ("Basic base64(id:secret)")
--      TOKEN_BODY  form body (default "grant_type=client_credentials")
--      BENCH_BARE  if set, send a plain GET instead (the bare-server number)

if os.getenv("BENCH_BARE") then
  wrk.method = "GET"
else
  wrk.method = "POST"
  wrk.body = os.getenv("TOKEN_BODY") or "grant_type=client_credentials"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  local auth = os.getenv("TOKEN_AUTH")
  if auth then
    wrk.headers["Authorization"] = auth
  end
end

-- Printed once after the run; token_load.sh reads this line rather than wrk's prose.
-- Latencies are in microseconds; errors counts non-2xx/3xx answers and socket errors.
-- done(): the RESULT line, shared with the other scripts (bench/result.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
