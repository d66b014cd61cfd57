-- wrk script: prints one RESULT line with the bytes per second and requests per second of the
-- run (bench/updates.sh compares an image download from Portcullis and from nginx).
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT mib_s=%.1f rps=%.1f p99_us=%d errors=%d\n",
    summary.bytes / secs / 1048576, summary.requests / secs, latency:percentile(99), errors))
end
