-- wrk script for bench/gateway.sh: POST /gateway/v1/telemetry with application/cose bodies,
-- each message sent once. The bodies are pre-built COSE_Mac0 messages of COSE_SIZE bytes
-- (`gateway-load cose-file`), one file per wrk thread (COSE_FILE.0, COSE_FILE.1, ...) holding
-- the messages of its own devices only, round-robin over those devices with the counter
-- rising by one per round. A device's next message is therefore (devices / threads) requests
-- after its previous one, far more than the thread's connections in flight, so it is sent
-- after the previous one was answered and its counter always arrives above it. Were a file
-- to run out it would start over (every reused message then refused as a replay, 409, and
-- counted as an error); the WRAPPED line says so.
--
-- env: COSE_FILE  path prefix of the files    COSE_SIZE  bytes per message (200)

local prefix = os.getenv("COSE_FILE") or error("COSE_FILE is not set")
local size = tonumber(os.getenv("COSE_SIZE") or "200")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/cose"

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(prefix .. "." .. id, "rb"))
  data = f:read("*a")
  f:close()
  count = math.floor(#data / size)
  nexti = 0
  wrapped = 0
end

function request()
  if nexti >= count then
    nexti = 0
    wrapped = wrapped + 1
  end
  local body = data:sub(nexti * size + 1, (nexti + 1) * size)
  nexti = nexti + 1
  return wrk.format(nil, nil, nil, body)
end

-- done(): the RESULT line (bench/result.lua), after a WRAPPED line if a file ran out.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
local result_done = done
function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wrapped") or 0)
  end
  if w > 0 then
    io.write(string.format("WRAPPED %d\n", w))
  end
  result_done(summary, latency, requests)
end
