-- Mixed shop traffic for the demo: wrk -t1 -c4 -s tools/demo/traffic.lua URL
-- Stops by itself after DOPPEL_REQUESTS requests (default 3000), so the demo records a
-- known, bounded amount of traffic. Deterministic: the same sequence every run.
local limit = tonumber(os.getenv("DOPPEL_REQUESTS") or "3000")
local sent = 0
local n = 0
local words = { "lamp", "chair", "desk", "mug", "rug", "shelf", "clock", "vase" }
local categories = { "home", "office", "garden", "kitchen" }

request = function()
  n = n + 1
  local id = (n * 7919) % 200 + 1
  local k = n % 10
  local path, method, body = nil, "GET", nil
  local headers = { ["Accept"] = "application/json", ["Accept-Encoding"] = "gzip",
                    ["User-Agent"] = "doppel-demo/1" }
  if k <= 2 then
    path = "/api/v1/products/" .. id
  elseif k == 3 then
    path = "/api/v1/users/" .. id
  elseif k == 4 or k == 5 then
    path = "/api/v1/orders/" .. id
  elseif k == 6 then
    path = "/api/v1/products?limit=" .. (n % 5 + 5) .. "&category=" .. categories[n % 4 + 1]
  elseif k == 7 or k == 8 then
    path = "/api/v1/search?q=" .. words[n % 8 + 1] .. "&page=" .. (n % 3 + 1)
  else
    method = "POST"
    path = "/api/v1/orders"
    headers["Content-Type"] = "application/json"
    body = '{"product_id":' .. id .. ',"quantity":' .. (n % 4 + 1) .. '}'
  end
  return wrk.format(method, path, headers, body)
end

response = function(status, headers, body)
  sent = sent + 1
  if sent >= limit then
    wrk.thread:stop()
  end
end
