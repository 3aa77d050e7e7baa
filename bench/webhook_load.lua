-- wrk script for bench/webhook.sh: replays the pre-signed requests bench/webhook_gen.py wrote
-- (each a "<length>\n" line, then that many bytes of raw HTTP/1.1 request), so no two requests
-- repeat. Thread i of n sends requests i, i + n, i + 2n, ... of the file.
--
--   wrk -t1 -c32 -d20s --latency -s bench/webhook_load.lua URL -- FILE [THREADS] [once|cycle]
--
-- At the end of the file, "once" (the default, for the exporter: a repeat would be a duplicate)
-- sends GETs for the rest of the run, which the receiver answers 405 without counting anything
-- (wrk counts them as non-2xx; every POST before them completes). "cycle" (for the nginx
-- baseline) starts over.
-- done() prints "webhook_sent=N" (file requests sent) and "webhook_exhausted=N" (threads that
-- reached the end of the file).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local f, nthreads, cycle, index, tail
sent = 0 -- globals: done() reads them from each thread with thread:get
exhausted = 0

function init(args)
   if args[1] == nil then
      error("webhook_load.lua: pass the requests file after --")
   end
   f = assert(io.open(args[1], "rb"))
   f:setvbuf("full", 1048576)
   -- tid comes from setup (thread:set); the thread count is the second argument.
   nthreads = tonumber(args[2]) or 1
   cycle = args[3] == "cycle"
   index = 0
   tail = wrk.format("GET", nil, {}, nil)
end

local function next_request()
   while true do
      local line = f:read("*l")
      if line == nil then
         if not cycle then
            return nil
         end
         f:seek("set", 0)
         index = 0
      else
         local n = tonumber(line)
         local mine = index % nthreads == tid
         index = index + 1
         if mine then
            return f:read(n)
         end
         f:seek("cur", n)
      end
   end
end

-- Before the run, wrk calls the first thread's request() once to check what it returns, and
-- sends nothing: that request is held and sent by the next call.
local held, checked = nil, false

function request()
   local req
   if not checked and tid == 0 then
      checked = true
      held = next_request()
      return held or tail
   elseif held ~= nil then
      req, held = held, nil
   elseif exhausted == 0 then
      req = next_request()
   end
   if req == nil then
      exhausted = 1
      return tail
   end
   sent = sent + 1
   return req
end

function done(summary, latency, requests)
   local s, e = 0, 0
   for _, t in ipairs(threads) do
      s = s + (t:get("sent") or 0)
      e = e + (t:get("exhausted") or 0)
   end
   io.write(string.format("webhook_sent=%d\nwebhook_exhausted=%d\n", s, e))
end
