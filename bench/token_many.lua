-- wrk script for bench/bulk_clients.sh: client_credentials with client_secret_post, each
-- request from a client id drawn at random from bulk-00000000 .. bulk-<COUNT-1>, so the run
-- exercises the client cache's misses and the store's lookups, not one hot entry.
--
-- env: BULK_COUNT   how many bulk clients exist
--      BULK_ACTIVE  how many distinct clients send requests (default BULK_COUNT), spread
--                   evenly over the whole id range: the working set of a real deployment
--      BULK_SECRET  their shared secret (printed by `portcullis bench load-clients`)

local count = tonumber(os.getenv("BULK_COUNT") or "1000")
local active = tonumber(os.getenv("BULK_ACTIVE") or tostring(count))
local stride = math.floor(count / active)
local secret = os.getenv("BULK_SECRET") or ""

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  local id = string.format("bulk-%08d", math.random(0, active - 1) * stride)
  local body = "grant_type=client_credentials&client_id=" .. id .. "&client_secret=" .. secret
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status + e.connect + e.read + e.write + e.timeout))
end
