"""The load: `wrk` posting one message per request, each with a unique reference.

A Lua script per gateway builds the requests and checks each answer: a request counts as
accepted only when the gateway said so (Tidings: 200 with `"error":"0"` in its JSON body;
Kannel: 202 with `0: Accepted for delivery`). `done()` prints one `WRK_RESULT {json}` line.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.load import wrk_command

# Shared by both scripts: per-thread counters, the result line. `tid` numbers the threads.
COMMON = r"""
local threads = {}
counter = 0
ok = 0
bad = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function msisdn()
  return string.format("38097%07d", (tid * 1000003 + counter) % 10000000)
end

function reference()
  return prefix .. "t" .. tid .. "n" .. counter
end

function response(status, headers, body)
  if accepted(status, body) then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local accepted, refused = 0, 0
  for _, thread in ipairs(threads) do
    accepted = accepted + thread:get("ok")
    refused = refused + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"accepted":%d,"refused":%d,' ..
    '"p50_us":%d,"p99_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, accepted, refused, latency:percentile(50),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""

TIDINGS_SCRIPT = (
    COMMON
    + r"""
function init(args)
  prefix = args[1]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-KEY"] = args[2]
end

function request()
  counter = counter + 1
  local body = '{"destination":"phone","msisdn":"' .. msisdn() .. '","reference":"' ..
    reference() .. '","originator":"bench","body":"bench message ' .. counter .. '"}'
  return wrk.format(nil, "/rest/sms/create", nil, body)
end

function accepted(status, body)
  return status == 200 and body ~= nil and string.find(body, '"error":"0"', 1, true) ~= nil
end
"""
)

# Kannel's sendsms: GET with the dlr-url (carrying the reference and %d, the DLR type)
# URL-encoded as one parameter; Kannel substitutes %d when it calls the URL.
KANNEL_SCRIPT = (
    COMMON
    + r"""
local function encode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  prefix = args[1]
  credentials = "username=" .. args[2] .. "&password=" .. args[3]
  dlr_base = args[4]
  wrk.method = "GET"
end

function request()
  counter = counter + 1
  local ref = reference()
  local dlr = dlr_base .. "?ref=" .. ref .. "&type=%d"
  local path = "/cgi-bin/sendsms?" .. credentials .. "&from=bench&to=" .. msisdn() ..
    "&text=" .. encode("bench message " .. counter) .. "&dlr-mask=31&dlr-url=" .. encode(dlr)
  return wrk.format(nil, path)
end

function accepted(status, body)
  return status == 202 and body ~= nil and string.sub(body, 1, 2) == "0:"
end
"""
)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    accepted: int
    refused: int
    socket_errors: int
    seconds: float  # wrk's own duration
    started_at: float  # time.monotonic() when wrk was started
    p50_ms: float
    p99_ms: float
    cpu_seconds: float  # wrk's own CPU

    @property
    def accepted_rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0


def run_wrk(
    script: str,
    base_url: str,
    args: list[str],
    *,
    workdir: Path,
    seconds: int,
    threads: int,
    connections: int,
) -> LoadResult:
    path = workdir / "load.lua"
    path.write_text(script, "utf-8")
    command = wrk_command(path, base_url, args, seconds, connections, threads)
    # wrk is the only child reaped during this call: RUSAGE_CHILDREN's growth is its CPU.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    popen = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        out, err = popen.communicate(timeout=seconds + 60)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait(timeout=10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = out.decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("WRK_RESULT ")), None)
    if popen.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({popen.returncode}): {text}\n{err.decode()[-2000:]}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    return LoadResult(
        requests=data["requests"],
        accepted=data["accepted"],
        refused=data["refused"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        seconds=data["duration_us"] / 1e6,
        started_at=started,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        cpu_seconds=cpu,
    )
