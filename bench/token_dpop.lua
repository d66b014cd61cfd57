-- wrk script for bench/dpop.sh: client_credentials token requests with client_secret_basic,
-- each carrying the next DPoP proof (RFC 9449) from a file that `portcullis bench
-- dpop-proofs` wrote, so every request has its own jti and the load generator signs nothing.
-- The threads share the file by line number (thread i takes lines i, i+n, ...). When a
-- thread runs out, it starts again from its first line: those are replays, answered 400 and
-- counted as errors, so a file too short for the run shows in the result.
--
-- Without DPOP_PROOFS it sends the same requests with no proof, through the same per-request
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

local proofs = {}
local next_proof = 1

function init(args)
  local n = 0
  local file = os.getenv("DPOP_PROOFS")
  for line in (file and file ~= "") and io.lines(file) or function() return nil end do
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

-- wrk.format sends only the headers it is given: the usual ones, plus this request's proof.
local headers = {}

function request()
  for k, v in pairs(wrk.headers) do
    headers[k] = v
  end
  if #proofs > 0 then
    headers["DPoP"] = proofs[next_proof]
    next_proof = next_proof % #proofs + 1
  end
  return wrk.format(nil, nil, headers)
end

-- done(): the RESULT line, shared with the other scripts (bench/result.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
