-- ZeroMQ publisher for nginx (lua-nginx-module / OpenResty): one usage event per API call, to the
-- api-gateway-zmq-adaptor's XSUB. A drop-in for the original module of the same name (same
-- require path, `new()`, `connect(type, address)`, `log(msg)`), on libzmq directly through
-- LuaJIT's FFI: the original was built on CZMQ 2/3 (`zctx_new`, `zsocket_new`, `zstr_send`),
-- which CZMQ 4 removed. Needs only libzmq 4.x (Debian/Ubuntu: `libzmq5`; RHEL-likes: `zeromq`).
--
--   init_worker_by_lua_block {
--       local ZmqLogger = require "api-gateway.zmq.ZeroMQLogger"
--       local logger = ZmqLogger:new()
--       logger:connect(ZmqLogger.SOCKET_TYPE.ZMQ_PUB, "ipc:///run/api-gateway/nginx_queue_listen")
--       ngx.apiGateway = { zmqLogger = logger }
--   }
--   log_by_lua_block { ngx.apiGateway.zmqLogger:log("app=...,serv=...,req=...,resp=GET.200") }
--   exit_worker_by_lua_block { ngx.apiGateway.zmqLogger:close() }
--
-- What it guarantees a worker:
-- - One ZeroMQ context per worker process, made in the worker (never in the master: libzmq's
--   threads do not survive fork), with one I/O thread.
-- - `log()` never blocks: every send is ZMQ_DONTWAIT. When the queue to the adaptor is full
--   (ZMQ_SNDHWM messages waiting, e.g. the adaptor is stuck), the event is dropped and counted,
--   not queued without bound and not waited for. The socket sets ZMQ_XPUB_NODROP so that libzmq
--   reports a full queue instead of dropping in silence, which is what makes drops countable.
-- - Drops and errors are readable: `stats()` (this worker), the shared dict named by
--   `stats_dict` (all workers: keys `dropped`, `errors`), and a WARN line in error.log at most
--   every `report_interval` seconds while there are any.
-- - A short linger (100 ms by default) and a clean close at worker exit: `close()` from
--   `exit_worker_by_lua*`, or, failing that, the report timer's premature run at shutdown.
--   nginx never waits on the adaptor for longer than the linger.
-- - The adaptor may restart at any time: the socket reconnects by itself, every `reconnect_ivl`
--   (250 ms). Meanwhile events queue in the worker (up to `sndhwm`) and go out on reconnect. The
--   interval is longer than the tracking services' (libzmq's default, 100 ms) on purpose: a worker
--   that reconnects first flushes its queue into a restarted adaptor that has no subscriber yet,
--   whose XPUB then discards it (at 5 000 events/s, 9 restarts in 18 lost hundreds of events
--   with 100 ms, 1 in 24 with 250 ms: docs/deployment.md). A PUB socket sends only what it is subscribed
--   to: everything with the adaptor's default --subscriptions local, what the tracking services asked for
--   with --subscriptions forward.

local ffi = require "ffi"

local ffi_string = ffi.string
local tostring = tostring
local setmetatable = setmetatable
local error = error

-- pcall: another module may have declared these already (LuaJIT refuses a second declaration).
pcall(ffi.cdef, [[
    void *zmq_ctx_new (void);
    int zmq_ctx_set (void *context, int option, int optval);
    int zmq_ctx_term (void *context);
    void *zmq_socket (void *context, int type);
    int zmq_close (void *socket);
    int zmq_setsockopt (void *socket, int option, const void *optval, size_t optvallen);
    int zmq_connect (void *socket, const char *endpoint);
    int zmq_send (void *socket, const void *buf, size_t len, int flags);
    int zmq_errno (void);
    const char *zmq_strerror (int errnum);
    void zmq_version (int *major, int *minor, int *patch);
]])

-- Debian/Ubuntu's libzmq5 ships only libzmq.so.5 (the unversioned libzmq.so is in libzmq3-dev).
local function load_libzmq()
    local errors = {}
    for _, name in ipairs({ "libzmq.so.5", "zmq", "libzmq.so" }) do
        local ok, lib = pcall(ffi.load, name)
        if ok then return lib end
        errors[#errors + 1] = tostring(lib)
    end
    error("cannot load libzmq (install libzmq5 on Debian/Ubuntu, zeromq on RHEL-likes): "
        .. table.concat(errors, "; "))
end

local zmq = load_libzmq()

local SOCKET_TYPE = {
    ZMQ_PAIR = 0, ZMQ_PUB = 1, ZMQ_SUB = 2, ZMQ_REQ = 3, ZMQ_REP = 4, ZMQ_DEALER = 5,
    ZMQ_ROUTER = 6, ZMQ_PULL = 7, ZMQ_PUSH = 8, ZMQ_XPUB = 9, ZMQ_XSUB = 10, ZMQ_STREAM = 11,
}

local ZMQ_DONTWAIT = 1
local ZMQ_IO_THREADS = 1
local ZMQ_LINGER = 17
local ZMQ_RECONNECT_IVL = 18
local ZMQ_SNDHWM = 23
local ZMQ_RECONNECT_IVL_MAX = 21
local ZMQ_XPUB_NODROP = 69
local EAGAIN = 11

local _M = { _VERSION = "1.0.0", SOCKET_TYPE = SOCKET_TYPE }
local mt = { __index = _M }

-- The worker's context: made on the first connect() in this process, ended by close().
local ctx, ctx_pid
local open_sockets = {}

local function zmq_error()
    local errno = zmq.zmq_errno()
    return errno, ffi_string(zmq.zmq_strerror(errno))
end

local function worker_context()
    local pid = ngx.worker.pid()
    if ctx == nil or ctx_pid ~= pid then
        ctx = zmq.zmq_ctx_new()
        if ctx == nil then
            local _, msg = zmq_error()
            return nil, "zmq_ctx_new failed: " .. msg
        end
        zmq.zmq_ctx_set(ctx, ZMQ_IO_THREADS, 1)
        ctx_pid = pid
        open_sockets = {}
    end
    return ctx
end

local int_option = ffi.new("int[1]")
local function set_int(socket, option, value)
    int_option[0] = value
    return zmq.zmq_setsockopt(socket, option, int_option, ffi.sizeof("int"))
end

--- The ZeroMQ version in use, e.g. "4.3.4".
function _M.zmq_version()
    local v = ffi.new("int[3]")
    zmq.zmq_version(v, v + 1, v + 2)
    return v[0] .. "." .. v[1] .. "." .. v[2]
end

--- A publisher, not yet connected. `opts` (all optional):
---   sndhwm           queue length towards the adaptor before events are dropped (10000)
---   linger           ms that close() may spend delivering queued events (100)
---   stats_dict       a lua_shared_dict name: drops and errors of all workers are added there
---   report_interval  seconds between WARN lines about drops/errors, 0 = never (10)
---   reconnect_ivl    ms between attempts to reach the adaptor again after losing it (250; see below)
function _M.new(self, opts)
    opts = opts or {}
    return setmetatable({
        sndhwm = opts.sndhwm or 10000,
        linger = opts.linger or 100,
        stats_dict = opts.stats_dict and ngx.shared[opts.stats_dict] or nil,
        report_interval = opts.report_interval or 10,
        reconnect_ivl = opts.reconnect_ivl or 250,
        sent = 0,
        dropped = 0,
        errors = 0,
        reported_dropped = 0,
        reported_errors = 0,
        last_error = nil,
    }, mt)
end

local function report(self)
    local dropped = self.dropped - self.reported_dropped
    local errors = self.errors - self.reported_errors
    if dropped > 0 or errors > 0 then
        ngx.log(ngx.WARN, "zmq publisher (worker pid=", ngx.worker.pid(), ", ", self.address, "): ",
            dropped, " events dropped (queue to the adaptor full: sndhwm ", self.sndhwm, ") and ",
            errors, " send errors", self.last_error and (" (last: " .. self.last_error .. ")") or "",
            " in the last ", self.report_interval, " s; since start: sent=", self.sent,
            " dropped=", self.dropped, " errors=", self.errors)
        self.reported_dropped = self.dropped
        self.reported_errors = self.errors
    end
end

--- Makes the socket and connects it (asynchronously: libzmq connects, and reconnects, in the
--- background). Returns true, or nil and an error (logged at ERR).
function _M.connect(self, socket_type, socket_address)
    if socket_type == nil then error("Socket type must be provided.") end
    if socket_address == nil then error("Socket address must be provided.") end
    local where = "worker pid=" .. tostring(ngx.worker.pid()) .. ", socket_address=" .. socket_address
    local context, err = worker_context()
    if not context then
        ngx.log(ngx.ERR, "zmq publisher: ", err, "; ", where)
        return nil, err
    end
    local socket = zmq.zmq_socket(context, socket_type)
    if socket == nil then
        local _, msg = zmq_error()
        ngx.log(ngx.ERR, "zmq publisher: cannot create socket: ", msg, "; ", where)
        return nil, msg
    end
    set_int(socket, ZMQ_LINGER, self.linger)
    set_int(socket, ZMQ_SNDHWM, self.sndhwm)
    set_int(socket, ZMQ_RECONNECT_IVL, self.reconnect_ivl)
    set_int(socket, ZMQ_RECONNECT_IVL_MAX, 0)
    if socket_type == SOCKET_TYPE.ZMQ_PUB or socket_type == SOCKET_TYPE.ZMQ_XPUB then
        -- A full queue then fails the DONTWAIT send with EAGAIN (counted) instead of a silent drop.
        set_int(socket, ZMQ_XPUB_NODROP, 1)
    end
    if zmq.zmq_connect(socket, socket_address) ~= 0 then
        local _, msg = zmq_error()
        zmq.zmq_close(socket)
        ngx.log(ngx.ERR, "zmq publisher: cannot connect: ", msg, "; ", where)
        return nil, msg
    end
    self.socket = socket
    self.address = socket_address
    open_sockets[#open_sockets + 1] = self
    ngx.log(ngx.INFO, "zmq publisher: connecting (ZeroMQ ", _M.zmq_version(), "); ", where)
    -- Drops are reported from a timer; its premature run at shutdown closes, should no
    -- exit_worker_by_lua* do it.
    local interval = self.report_interval > 0 and self.report_interval or 60
    local ok, terr = ngx.timer.every(interval, function(premature)
        if premature then
            _M.close_all()
        elseif self.report_interval > 0 then
            report(self)
        end
    end)
    if not ok then ngx.log(ngx.ERR, "zmq publisher: cannot start its report timer: ", terr) end
    return true
end

--- Sends `msg` as one frame without ever waiting. Returns true when queued; false and the
--- reason when dropped (queue full) or failed; counted either way.
function _M.log(self, msg)
    if msg == nil or #msg == 0 then return false, "nothing to send" end
    local socket = self.socket
    if socket == nil then
        self.errors = self.errors + 1
        self.last_error = "not connected"
        return false, "not connected"
    end
    if zmq.zmq_send(socket, msg, #msg, ZMQ_DONTWAIT) >= 0 then
        self.sent = self.sent + 1
        return true
    end
    local errno, text = zmq_error()
    if errno == EAGAIN then
        self.dropped = self.dropped + 1
        if self.stats_dict then self.stats_dict:incr("dropped", 1, 0) end
        return false, "dropped: queue full"
    end
    self.errors = self.errors + 1
    self.last_error = text
    if self.stats_dict then self.stats_dict:incr("errors", 1, 0) end
    return false, text
end

--- This worker's counters: { sent, dropped, errors, address }.
function _M.stats(self)
    return { sent = self.sent, dropped = self.dropped, errors = self.errors, address = self.address }
end

--- Closes this publisher's socket; with no socket left, ends the worker's context.
--- Waits up to the linger for queued events. Idempotent.
function _M.close(self)
    if self.socket ~= nil then
        report(self)
        ngx.log(ngx.INFO, "zmq publisher: closing (worker pid=", ngx.worker.pid(), ", ", self.address,
            "): sent=", self.sent, " dropped=", self.dropped, " errors=", self.errors)
        zmq.zmq_close(self.socket)
        self.socket = nil
        for i, s in ipairs(open_sockets) do
            if s == self then table.remove(open_sockets, i) break end
        end
    end
    if #open_sockets == 0 and ctx ~= nil and ctx_pid == ngx.worker.pid() then
        zmq.zmq_ctx_term(ctx)
        ctx = nil
    end
end

--- The original's name for close().
_M.disconnect = _M.close

--- Closes every publisher of this worker and its context (worker exit).
function _M.close_all()
    for i = #open_sockets, 1, -1 do open_sockets[i]:close() end
    if ctx ~= nil and ctx_pid == ngx.worker.pid() then
        zmq.zmq_ctx_term(ctx)
        ctx = nil
    end
end

return _M
