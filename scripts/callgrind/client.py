"""Sends N requests one after another on one keep-alive connection: heartbeats
(each of its own workspace, with its own token; `hb`) or GET /health
(`health`). Used by scripts/callgrind/run.

  client.py HOST PORT WORKSPACES_FILE N hb|health
"""
import http.client, json, sys
host, port, wsfile, count, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
ws = [l.split() for l in open(wsfile)]
c = http.client.HTTPConnection(host, port)
bad = 0
for i in range(count):
    wid, tok = ws[i % len(ws)]
    if path == "hb":
        body = json.dumps({"workspace_id": wid, "error_rate": 0.0, "active_tasks": 0, "uptime_seconds": 100, "runtime_state": "running"})
        c.request("POST", "/registry/heartbeat", body, {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    else:
        c.request("GET", "/health")
    r = c.getresponse(); r.read()
    if r.status != 200: bad += 1
if bad:
    sys.exit(f"{bad} of {count} answers were not 200")
