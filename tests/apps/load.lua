-- wrk script for memhound's web tests (driven by wrkload.py):
--
--   wrk -t T -c C -d SECONDS -s load.lua http://127.0.0.1:PORT -- PLAN LIMIT
--
-- PLAN is a file of "weight path" lines; requests are spread over the paths
-- in proportion to their weights by smooth weighted round-robin (each path's
-- share is exact over the run, and a rare path's requests are spread out,
-- not bunched). Each thread stops after LIMIT responses (0: no limit) and
-- says so on stderr ("wrkload: thread done"), and wrk itself stops after -d:
-- the load is bounded in requests and in time. wrk's main thread sleeps for
-- the whole -d even when every thread has stopped, so wrkload.py sends it
-- SIGINT (wrk's own "stop now") once all threads said they are done.
-- done() prints one line, "WRKLOAD {json}": completed requests, wrk's
-- socket errors, responses outside 2xx, and the requests sent per path.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local plan, limit_arg = args[1], args[2]
   limit = tonumber(limit_arg or "0")
   paths, weights, requests, current = {}, {}, {}, {}
   total = 0
   for line in io.lines(plan) do
      local w, p = line:match("^%s*([%d%.]+)%s+(%S+)%s*$")
      if w and tonumber(w) > 0 then
         table.insert(paths, p)
         table.insert(weights, tonumber(w))
         table.insert(requests, wrk.format("GET", p))
         table.insert(current, 0)
         total = total + tonumber(w)
      end
   end
   if #paths == 0 then
      error("no paths in " .. tostring(plan))
   end
   sent, responses, bad = {}, 0, 0
   statuses = {}
   -- Threads start at different points of the same sequence.
   for _ = 1, (id or 0) * 97 do
      pick()
   end
end

function pick()
   local best, bi = nil, 1
   for i = 1, #weights do
      current[i] = current[i] + weights[i]
      if best == nil or current[i] > best then
         best, bi = current[i], i
      end
   end
   current[bi] = current[bi] - total
   return bi
end

function request()
   local i = pick()
   sent[paths[i]] = (sent[paths[i]] or 0) + 1
   return requests[i]
end

function response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then
      bad = bad + 1
      local k = tostring(status)
      statuses[k] = (statuses[k] or 0) + 1
   end
   if limit > 0 and responses == limit then
      io.stderr:write("wrkload: thread done\n")
      io.stderr:flush()
      wrk.thread:stop()
   end
end

local function json_str(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
   end) .. '"'
end

local function json_counts(t)
   local parts = {}
   for k, v in pairs(t) do
      table.insert(parts, json_str(k) .. ": " .. string.format("%d", v))
   end
   return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
   local sent_all, statuses_all = {}, {}
   local bad_all, responses_all = 0, 0
   for _, t in ipairs(threads) do
      for k, v in pairs(t:get("sent") or {}) do
         sent_all[k] = (sent_all[k] or 0) + v
      end
      for k, v in pairs(t:get("statuses") or {}) do
         statuses_all[k] = (statuses_all[k] or 0) + v
      end
      bad_all = bad_all + (t:get("bad") or 0)
      responses_all = responses_all + (t:get("responses") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'WRKLOAD {"requests": %d, "responses": %d, "duration_us": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
      '"timeout": %d}, "non_2xx": %d, "statuses": %s, ' ..
      '"latency_p99_us": %d, "latency_max_us": %d, "sent": %s}\n',
      summary.requests, responses_all, summary.duration, e.connect, e.read,
      e.write, e.status, e.timeout, bad_all, json_counts(statuses_all),
      latency:percentile(99.0), latency.max, json_counts(sent_all)))
end
