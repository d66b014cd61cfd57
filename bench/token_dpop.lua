-- wrk script for bench/dpop.sh: client_credentials token requests with client_secret_basic,
-- each carrying the next DPoP proof (RFC 9449) from a file that `portcullis bench
-- dpop-proofs` wrote, so every request has its own jti and the load generator signs nothing.
-- The threads share the file by line number (thread i takes lines i, i+n, ...). When a
-- thread runs out, it starts again from its first line: those are replays, answered 400 and
-- counted as errors, so a file too short for the run shows in the result.
--
-- env: TOKEN_AUTH   full Authorization header value ("Basic base64(id:secret)")
--      DPOP_PROOFS  the proofs file
--      THREADS      wrk's -t (how many threads share the file)

local threads = tonumber(os.getenv("THREADS") or "1")
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local proofs = {}
local next_proof = 1

function init(args)
  local n = 0
  for line in io.lines(os.getenv("DPOP_PROOFS")) do
    if n % threads == id then
      proofs[#proofs + 1] = line
    end
    n = n + 1
  end
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("TOKEN_AUTH")
end

function request()
  local proof = proofs[next_proof]
  next_proof = next_proof % #proofs + 1
  return wrk.format(nil, nil, { ["DPoP"] = proof })
end

-- done(): the RESULT line, shared with the other scripts (bench/result.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
