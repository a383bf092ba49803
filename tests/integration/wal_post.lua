-- SPDX-License-Identifier: BSD-2-Clause
-- tests/integration/wal_post.lua - wrk script for paste-wal: every request is POST /log with a
-- 1280-byte body (WAL_BODY_SIZE overrides the size, WAL_PATH the path). Each thread counts the
-- replies that are not "201 Created" and the done() hook prints one summary line:
--   wal_post: requests=N created=N other=N errors_connect=N errors_read=N errors_write=N
--             errors_status=N errors_timeout=N
-- which test_wal.sh checks (zero errors, zero non-201).
local size = tonumber(os.getenv("WAL_BODY_SIZE") or "1280")
local path = os.getenv("WAL_PATH") or "/log"

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	created = 0
	other = 0
	-- a recognisable, non-constant body: a counter pattern of the requested size
	local parts = {}
	local line = "paste-wal load test record "
	while #table.concat(parts) < size do
		table.insert(parts, line)
	end
	wrk.method = "POST"
	wrk.path = path
	wrk.body = string.sub(table.concat(parts), 1, size)
	wrk.headers["Content-Type"] = "application/octet-stream"
end

function response(status, headers, body)
	if status == 201 then
		created = created + 1
	else
		other = other + 1
	end
end

function done(summary, latency, requests)
	local c, o = 0, 0
	for _, t in ipairs(threads) do
		c = c + t:get("created")
		o = o + t:get("other")
	end
	local e = summary.errors
	io.write(string.format("wal_post: requests=%d created=%d other=%d errors_connect=%d " ..
		"errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d " ..
		"p50_us=%d p99_us=%d\n", summary.requests, c, o, e.connect, e.read, e.write,
		e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
