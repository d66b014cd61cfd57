-- wrk script for bench/dpop.sh: client_credentials token requests with client_secret_basic,
-- each carrying the next DPoP proof (RFC 9449) from a file that `portcullis bench
-- dpop-proofs` wrote, so every request has its own jti and the load generator signs nothing.
-- The threads share the file by line number (thread i takes lines i, i+n, ...). When a
-- thread runs out, it starts again from its first line: those are replays, answered 400 and
-- counted as errors, so a file too short for the run shows in the result.
--
-- Without DPOP_PROOFS it sends the same request with no proof, through the same per-request
-- Lua work, so a bearer baseline costs the load generator what the DPoP load costs it.
--
-- env: TOKEN_AUTH   full Authorization header value ("Basic base64(id:secret)")
--      DPOP_PROOFS  the proofs file (unset: no DPoP header)
--      THREADS      wrk's -t (how many threads share the file)

local threads = tonumber(os.getenv("THREADS") or "1")
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

-- Every request is formatted in init(), so that request() costs the load generator the same
-- table lookup with and without proofs. Formatting each one as it went, wrk spent ~11 µs
-- more per DPoP request than per basic one (docs/benchmarks.md), taken from the same two
-- cores as the server under test.
local requests = {}
local next_request = 1

function init(args)
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("TOKEN_AUTH")
  local n = 0
  local file = os.getenv("DPOP_PROOFS")
  for line in (file and file ~= "") and io.lines(file) or function() return nil end do
    if n % threads == id then
      wrk.headers["DPoP"] = line
      requests[#requests + 1] = wrk.format()
    end
    n = n + 1
  end
  if #requests == 0 then
    wrk.headers["DPoP"] = nil
    requests[1] = wrk.format()
  end
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

-- done(): the RESULT line, shared with the other scripts (bench/result.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
