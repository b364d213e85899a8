-- wrk script: every request is a steady heartbeat of one workspace, with
-- that workspace's own token, cycling through the workspaces listed in
-- WORKSPACES_FILE (lines "id token", written by scripts/wrk/setup).
local path = os.getenv("WORKSPACES_FILE") or "workspaces.txt"
local ids, tokens = {}, {}
for line in io.lines(path) do
  local id, token = line:match("(%S+)%s+(%S+)")
  if id then
    ids[#ids + 1] = id
    tokens[#tokens + 1] = token
  end
end
local counter = 0

function setup(thread)
  thread:set("thread_offset", counter * 7919)
  counter = counter + 1
end

local n = 0
request = function()
  n = n + 1
  -- thread_offset: a global that setup() gives each thread (a local of
  -- the same name would shadow it, and every thread would send the same
  -- workspaces at once).
  local i = (((thread_offset or 0) + n) % #ids) + 1
  local body = '{"workspace_id":"' .. ids[i] .. '","active_tasks":0,"uptime_seconds":' .. n .. '}'
  return wrk.format("POST", "/registry/heartbeat", {
    ["Authorization"] = "Bearer " .. tokens[i],
    ["Content-Type"] = "application/json",
  }, body)
end

local errors = 0
response = function(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
  end
end
