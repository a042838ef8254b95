-- wrk script: GET the configured path as random clients; counts statuses per thread.
local path = os.getenv("BMT_BENCH_PATH")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function request()
  return wrk.format("GET", path, {["X-Forwarded-For"] = "10.8." .. math.random(0, 255) .. "." .. math.random(1, 254)})
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, n in pairs(s) do counts[status] = (counts[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(counts) do parts[#parts + 1] = '"' .. status .. '": ' .. n end
  local pct = {}
  for _, p in ipairs({50, 75, 90, 95, 99, 99.9}) do
    pct[#pct + 1] = '"' .. p .. '": ' .. latency:percentile(p)
  end
  io.write(string.format(
    'BMT_RESULT {"requests": %d, "seconds": %.3f, "errors": %d, "latency_us": {%s}, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(pct, ", "), table.concat(parts, ", ")))
end
