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

-- done(): the RESULT line, shared with the other scripts (bench/result.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
