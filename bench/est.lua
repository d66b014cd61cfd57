-- wrk script for bench/pki_load.sh: EST simpleenroll (RFC 7030 §4.2.1), one device per
-- request. Each line of $EST_REQUESTS is "<Authorization header value>\t<base64 CSR>"; the
-- wrk threads take interleaved lines so no device enrolls twice (a second use of a one-time
-- secret would be a 401, counted as an error).
local requests = {}
local next_index = 1
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  local tid = tonumber(wrk.thread:get("tid")) or 1
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  local i = 0
  for line in io.lines(os.getenv("EST_REQUESTS")) do
    i = i + 1
    if (i - 1) % nthreads == tid - 1 then
      local auth, body = line:match("^(.-)\t(.*)$")
      table.insert(requests, wrk.format("POST", "/.well-known/est/simpleenroll",
        { ["Authorization"] = auth, ["Content-Type"] = "application/pkcs10" }, body))
    end
  end
end

function request()
  local r = requests[next_index]
  next_index = next_index + 1
  if next_index > #requests then next_index = 1 end
  return r
end

-- done(): the RESULT line, shared with the other scripts (bench/result.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
