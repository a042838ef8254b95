-- wrk script: each request holds 1 to 4 random seats of one showtime, as a random client.
-- Reads its parameters from BMT_BENCH_* environment variables; counts statuses per thread.
local tokens, seats, path = {}, {}, os.getenv("BMT_BENCH_PATH")
local showtime = os.getenv("BMT_BENCH_SHOWTIME")
local threads = {}

local function lines(file)
  local out = {}
  for line in io.lines(file) do out[#out + 1] = line end
  return out
end

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tokens = lines(os.getenv("BMT_BENCH_TOKENS"))
  seats = lines(os.getenv("BMT_BENCH_SEATS"))
  statuses = {}
  math.randomseed(os.time() + id * 7919)
end

function request()
  local n, chosen, seen = math.random(1, 4), {}, {}
  while #chosen < n do
    local s = seats[math.random(1, #seats)]
    if not seen[s] then seen[s] = true; chosen[#chosen + 1] = s end
  end
  local body = '{"showtime_id": ' .. showtime .. ', "seats": [' .. table.concat(chosen, ",") .. ']}'
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[math.random(1, #tokens)],
    ["X-Forwarded-For"] = "10.9." .. math.random(0, 255) .. "." .. math.random(1, 254),
  }
  return wrk.format("POST", path, headers, body)
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
