-- wrk script: each request creates a pretix order of 1 to 4 random seats of one event, through
-- pretix's REST API (POST /api/v1/organizers/<org>/events/<event>/orders/).
-- Reads BMT_BENCH_SEATS (a file of seat GUIDs), BMT_BENCH_TOKEN (a team API token),
-- BMT_BENCH_ITEM (the product id) and BMT_BENCH_PATH. Counts statuses per thread:
--   201          the order was created (pending, payment "manual", no mail sent)
--   400          a chosen seat is taken: pretix answers 400 with
--                {"positions": [{"seat": ["The selected seat \"...\" is not available."]}, ...]}
--   400 other    any other 400 (a broken request would show here, not as contention)
--   409          pretix's lock on a seat was not acquired within 3 s ("too busy, retry")
local seats, path, item, token = {}, os.getenv("BMT_BENCH_PATH"), os.getenv("BMT_BENCH_ITEM"), os.getenv("BMT_BENCH_TOKEN")
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
  seats = lines(os.getenv("BMT_BENCH_SEATS"))
  statuses = {}
  math.randomseed(os.time() + id * 7919)
end

function request()
  local n, chosen, seen = math.random(1, 4), {}, {}
  while #chosen < n do
    local s = seats[math.random(1, #seats)]
    if not seen[s] then
      seen[s] = true
      chosen[#chosen + 1] = '{"item": ' .. item .. ', "seat": "' .. s .. '"}'
    end
  end
  local body = '{"email": "bench-' .. math.random(1, 50) .. '@example.com", "locale": "en",'
    .. ' "sales_channel": "web", "status": "n", "payment_provider": "manual",'
    .. ' "send_email": false, "simulate": false, "positions": [' .. table.concat(chosen, ", ") .. ']}'
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Token " .. token,
  }
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  local key = tostring(status)
  if status == 400 and not (body and string.find(body, "is not available", 1, true)) then
    key = "400 other"
  end
  statuses[key] = (statuses[key] or 0) + 1
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
