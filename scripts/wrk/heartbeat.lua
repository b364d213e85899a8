-- wrk script: every request is a steady heartbeat of one workspace, with
-- that workspace's own token, cycling through the workspaces listed in
-- WORKSPACES_FILE (lines "id token", written by scripts/wrk/setup).
--
-- wrk shares the machine's cores with the server and the database, so the
-- script does as little as it can per request: each workspace's request
-- head and the start of its body are built once, in init(), and there is no
-- response() callback (with one, wrk hands every response's headers and
-- body to Lua; it counted 7 µs of wrk's CPU per heartbeat). wrk reports
-- answers other than 2xx/3xx itself ("Non-2xx or 3xx responses").
local path = os.getenv("WORKSPACES_FILE") or "workspaces.txt"
local heads, bodies = {}, {}
local counter = 0

function setup(thread)
  thread:set("thread_offset", counter * 7919)
  counter = counter + 1
end

function init(args)
  local host = wrk.host .. ":" .. wrk.port
  for line in io.lines(path) do
    local id, token = line:match("(%S+)%s+(%S+)")
    if id then
      heads[#heads + 1] = "POST /registry/heartbeat HTTP/1.1\r\nHost: " .. host ..
        "\r\nAuthorization: Bearer " .. token .. "\r\nContent-Type: application/json\r\nContent-Length: "
      bodies[#bodies + 1] = '{"workspace_id":"' .. id .. '","active_tasks":0,"uptime_seconds":'
    end
  end
end

local n = 0
request = function()
  n = n + 1
  -- thread_offset: a global that setup() gives each thread (a local of
  -- the same name would shadow it, and every thread would send the same
  -- workspaces at once).
  local i = (((thread_offset or 0) + n) % #heads) + 1
  local body = bodies[i] .. n .. "}"
  return heads[i] .. #body .. "\r\n\r\n" .. body
end
