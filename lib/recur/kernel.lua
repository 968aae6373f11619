-- The Jupyter kernel of `recur --kernel CONNECTION_FILE` and the kernelspec writer of
-- `recur --install-kernel [--user|--prefix P]` (docs/notebooks.md). Messaging protocol 5.3:
-- shell and control (ROUTER), iopub (PUB), stdin (ROUTER), heartbeat (a C thread).
-- The C half is recur.kernel_io (bindings/kernel_io.c: ZeroMQ, HMAC-SHA256, base64, the
-- interruptible call); JSON is lua-cjson. Only the `recur` program preloads recur.kernel_io.
--
-- A message is refused (logged to stderr, never run, no reply) when its signature is wrong,
-- its frames are not a Jupyter message, its JSON does not parse or is not an object; an
-- unknown msg_type is logged and ignored.
local recur = require "recur"
local repl = require "recur.repl"

local kernel = {}

local PROTOCOL = "5.3"
local MAX_HTML_NUMEL = 400 -- a tensor this small (and at most 2-D) is also an HTML table
local FLUSH_SECONDS = 0.05 -- stream output is sent at most this often while a cell runs
local FLUSH_BYTES = 8192

-- the kernel's own log goes to the real stderr (the terminal), not to the notebook's stream
-- (install_io keeps it here before it replaces io.stderr)
local log_file
local function log(fmt, ...)
  local f = log_file or io.stderr
  f:write("recur kernel: ", fmt:format(...), "\n")
  f:flush()
end

local function read_file(path, mode)
  local f, err = io.open(path, mode or "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file_atomic(path, s)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then error("recur --install-kernel: cannot write " .. tmp .. ": " .. err, 0) end
  f:write(s)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then error("recur --install-kernel: cannot rename to " .. path .. ": " .. rerr, 0) end
end

-- ---- values as the REPL shows them, and as rich display data ----

local function plain(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    local ok, s = pcall(tostring, v)
    parts[i] = ok and s or ("(error in __tostring: " .. tostring(s) .. ")")
  end
  return table.concat(parts, "\t")
end

local function html_escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;" }))
end

local function html_number(x)
  if math.type(x) == "integer" then return tostring(x) end
  return ("%.6g"):format(x)
end

-- An HTML table of a small 0-, 1- or 2-D tensor (a 1-D tensor is one row), else nil.
local function tensor_html(t)
  local ok, dim, numel = pcall(function() return t:dim(), t:numel() end)
  if not ok or dim > 2 or numel > MAX_HTML_NUMEL or numel == 0 then return nil end
  local ok2, rows = pcall(function() return t:totable() end)
  if not ok2 then return nil end
  if dim == 0 then rows = { { rows } } elseif dim == 1 then rows = { rows } end
  local out = { "<table class=\"recur-tensor\">" }
  for _, row in ipairs(rows) do
    out[#out + 1] = "<tr>"
    for _, x in ipairs(row) do
      out[#out + 1] = "<td>" .. html_escape(type(x) == "number" and html_number(x) or x) .. "</td>"
    end
    out[#out + 1] = "</tr>"
  end
  local shape = {}
  for i = 1, dim do shape[i] = tostring(t:size(i)) end
  out[#out + 1] = ("</table><small>tensor [%s]</small>"):format(table.concat(shape, ", "))
  return table.concat(out)
end

-- The mime bundle of one value: text/plain always; text/html for a small tensor.
function kernel.mime_bundle(v)
  local data = { ["text/plain"] = plain(v) }
  if type(v) == "userdata" and recur.is_tensor(v) then data["text/html"] = tensor_html(v) end
  return data
end

-- ---- the kernel ----

local K = {} -- the one running kernel's state (a process runs one kernel)

local function uuid()
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(16) or tostring(math.random()) .. tostring(os.time())
  if f then f:close() end
  return (b:gsub(".", function(c) return ("%02x"):format(c:byte()) end)):sub(1, 32)
end

local function now_iso()
  return os.date("!%Y-%m-%dT%H:%M:%S") .. ".000000Z"
end

-- lua-cjson 2.1.0 writes every empty table as {}: a list that may be empty is marked and
-- its placeholder replaced by [] after encoding.
-- Bytes that are not UTF-8 (a binary string printed) become U+FFFD: a frontend decodes every
-- message as UTF-8, and JSON's own syntax is ASCII, so the encoded text can be mended whole.
local function clean_utf8(s)
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local ok, bad = utf8.len(s, i)
    if ok then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(out)
end

local function encode(v)
  local s = K.json.encode(v)
  return clean_utf8((s:gsub(K.empty_pattern, "[]")))
end

local function list(t)
  if #t == 0 then return K.empty_marker end
  return t
end

local function send(sock, ids, msg_type, content, parent, metadata)
  local header = {
    msg_id = uuid(), session = K.session, username = "recur", date = now_iso(),
    msg_type = msg_type, version = PROTOCOL,
  }
  local h = encode(header)
  local p = encode(parent and parent.header or {})
  local m = encode(metadata or {})
  local c = encode(content)
  local frames = {}
  for i, id in ipairs(ids) do frames[i] = id end
  frames[#frames + 1] = "<IDS|MSG>"
  frames[#frames + 1] = K.key ~= "" and K.io.hmac(K.key, h, p, m, c) or ""
  frames[#frames + 1] = h
  frames[#frames + 1] = p
  frames[#frames + 1] = m
  frames[#frames + 1] = c
  sock:send(frames)
end

local function publish(msg_type, content, parent)
  send(K.iopub, { "kernel." .. K.kernel_id .. "." .. msg_type }, msg_type, content, parent)
end

local function status(state, parent)
  publish("status", { execution_state = state }, parent)
end

-- Parses the frames of one message; nil plus the reason when it is refused.
local function parse(frames)
  local d
  for i, f in ipairs(frames) do
    if f == "<IDS|MSG>" then
      d = i
      break
    end
  end
  if not d or #frames < d + 5 then return nil, "not a Jupyter message (no delimiter or too few frames)" end
  local ids = {}
  for i = 1, d - 1 do ids[i] = frames[i] end
  local sig, h, p, m, c = frames[d + 1], frames[d + 2], frames[d + 3], frames[d + 4], frames[d + 5]
  if K.key ~= "" and not K.io.equal(sig, K.io.hmac(K.key, h, p, m, c)) then
    return nil, "bad signature"
  end
  local msg = { ids = ids }
  for name, s in pairs { header = h, parent_header = p, metadata = m, content = c } do
    local ok, v = pcall(K.json.decode, s)
    if not ok then return nil, "malformed JSON in " .. name .. ": " .. tostring(v) end
    if type(v) ~= "table" then return nil, name .. " is not a JSON object" end
    msg[name] = v
  end
  if type(msg.header.msg_type) ~= "string" then return nil, "header has no msg_type" end
  return msg
end

-- ---- output of a running cell ----

-- Text waiting to go out as a stream message. A progress line rewritten with "\r" is
-- collapsed here to its last version (the frontend also handles a "\r" across messages).
local function collapse_cr(s)
  return (s:gsub("[^\n]*\r([^\r\n]*)", "\r%1"))
end

local function flush_stream()
  for _, name in ipairs { "stdout", "stderr" } do
    local buf = K.stream[name]
    if #buf > 0 then
      local text = table.concat(buf)
      K.stream[name] = {}
      -- keep a trailing "\r" so the next message overwrites the line
      local body, tail = text:match("^(.-)(\r*)$")
      publish("stream", { name = name, text = collapse_cr(body) .. tail }, K.parent)
    end
  end
  K.stream.bytes = 0
  K.stream.last = K.io.now()
end

local function stream_write(name, s)
  local buf = K.stream[name]
  buf[#buf + 1] = s
  K.stream.bytes = K.stream.bytes + #s
  if K.stream.bytes > FLUSH_BYTES or K.io.now() - K.stream.last > FLUSH_SECONDS then
    flush_stream()
  end
end

local function display_data(data, opts)
  flush_stream()
  opts = opts or {}
  local content = { data = data, metadata = {} }
  local msg_type = "display_data"
  if opts.id ~= nil then
    local id = tostring(opts.id)
    content.transient = { display_id = id }
    if K.displays[id] then msg_type = "update_display_data" end
    K.displays[id] = true
  end
  publish(msg_type, content, K.parent)
end

local function png_bundle(path)
  local bytes, err = read_file(path)
  if not bytes then error("recur.display: cannot read " .. tostring(path) .. ": " .. err, 3) end
  if bytes:sub(1, 8) ~= "\137PNG\r\n\26\n" then
    error("recur.display: " .. tostring(path) .. " is not a PNG file", 3)
  end
  return { ["image/png"] = K.io.b64encode(bytes), ["text/plain"] = "<figure " .. path .. ">" }
end

-- recur.display(value [, opts]): shows value in the notebook (a tensor as text and, when
-- small, an HTML table). opts.png = true: value is the path of a PNG file, shown inline.
-- opts.id: a display id; showing again with the same id updates that output in place.
local function display(v, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("recur.display: opts must be a table or nil, got " .. type(opts), 2)
  end
  local data = (opts and opts.png) and png_bundle(v) or kernel.mime_bundle(v)
  display_data(data, opts)
  return opts and opts.id
end

-- recur.plot's figures appear inline as well as being written to o.file.
local function wrap_plot()
  local ok, plot = pcall(require, "recur.plot")
  if not ok or type(plot) ~= "table" then return end
  for _, name in ipairs { "lines", "histograms", "images" } do
    local f = plot[name]
    if type(f) == "function" then
      local wrapped = function(o, ...)
        local res = table.pack(f(o, ...))
        if res[1] == true and type(o) == "table" and type(o.file) == "string" then
          local good, data = pcall(png_bundle, o.file)
          if good then display_data(data) end
        end
        return table.unpack(res, 1, res.n)
      end
      K.originals[wrapped] = f -- inspect_request shows f's signature and doc
      plot[name] = wrapped
    end
  end
end

-- input from the frontend (io.read in a cell): an input_request on the stdin channel.
local function input(prompt)
  if not (K.parent and K.parent.content.allow_stdin) then
    error("io.read: this frontend does not allow input (allow_stdin is false)", 3)
  end
  flush_stream()
  send(K.stdin, K.parent.ids, "input_request", { prompt = prompt or "", password = false }, K.parent)
  while true do
    local ready = K.io.poll({ K.stdin }, 1000)
    if ready[1] then
      local frames = K.stdin:recv()
      if frames then
        local msg, why = parse(frames)
        if not msg then
          log("stdin: refused a message: %s", why)
        elseif msg.header.msg_type == "input_reply" then
          return tostring(msg.content.value or "")
        end
      end
    end
  end
end

-- A stand-in for io.stdout / io.stderr whose writes become the notebook's stream messages:
-- the library's progress lines (io.stderr:write) and tables (io.stdout:write) show in the
-- cell, not in the terminal that started Jupyter.
local function stream_file(name)
  local f = {}
  local function check_self(self, method)
    if self ~= f then error(("io.%s:%s: call it with ':'"):format(name, method), 3) end
  end
  function f.write(self, ...)
    check_self(self, "write")
    local parts = {}
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      if type(v) ~= "string" and type(v) ~= "number" then
        error(("bad argument #%d to 'write' (string expected, got %s)"):format(i, type(v)), 2)
      end
      parts[i] = tostring(v)
    end
    stream_write(name, table.concat(parts))
    return f
  end
  function f.flush(self)
    check_self(self, "flush")
    flush_stream()
    return f
  end
  function f.setvbuf(self)
    check_self(self, "setvbuf")
    return true
  end
  function f.close(self)
    check_self(self, "close")
    return nil, "io." .. name .. ": the notebook's stream cannot be closed"
  end
  return setmetatable(f, { __name = "FILE*", __tostring = function() return "file (" .. name .. ")" end })
end

local function install_io()
  _G.print = function(...) stream_write("stdout", plain(...) .. "\n") end
  log_file = log_file or io.stderr
  io.stdout = stream_file("stdout")
  io.stderr = stream_file("stderr")
  io.write = function(...) return io.stdout.write(io.stdout, ...) end
  io.read = function(fmt, ...)
    if select("#", ...) > 0 then error("io.read: one format at most in a notebook", 2) end
    fmt = fmt or "l"
    if type(fmt) == "string" then fmt = fmt:gsub("^%*", "") end
    local line = input("")
    if fmt == "n" then return tonumber(line) end
    if fmt == "L" then return line .. "\n" end
    if fmt == "l" or fmt == "a" then return line end
    error("io.read: format " .. tostring(fmt) .. " is not supported in a notebook", 2)
  end
  rawset(recur, "display", display)
end

-- ---- requests ----

-- Compiles a cell: an expression (its value is shown), else statements whose last line is
-- an expression (shown too, as in IPython), else plain statements.
local function compile(code, name)
  local f = load("return " .. code .. ";", name, "t")
  if f then return f end
  local prefix, last = code:match("^(.*\n)([^\n]*%S[^\n]*)%s*$")
  if prefix and not last:find("^%s*%-%-") then
    f = load(prefix .. "return " .. last .. ";", name, "t")
    if f then return f end
  end
  return load(code, name, "t")
end

local function error_content(msg)
  msg = tostring(msg)
  local first = msg:match("^[^\n]*")
  local ename = first:find("interrupted!$") and "KeyboardInterrupt" or "LuaError"
  local tb = {}
  for line in (msg .. "\n"):gmatch("([^\n]*)\n") do tb[#tb + 1] = line end
  return { status = "error", ename = ename, evalue = first, traceback = list(tb) }
end

local handlers = {}

function handlers.kernel_info_request(sock, msg)
  local version = tostring(recur.config().version):gsub("^recur ", "")
  send(sock, msg.ids, "kernel_info_reply", {
    status = "ok", protocol_version = PROTOCOL, implementation = "recur",
    implementation_version = version,
    language_info = {
      name = "lua", version = _VERSION:match("[%d.]+"), mimetype = "text/x-lua",
      file_extension = ".lua", pygments_lexer = "lua", codemirror_mode = "lua",
    },
    banner = "recur " .. version .. " (" .. _VERSION .. ", " .. K.io.version() .. ")",
    help_links = list {},
  }, msg)
end

function handlers.execute_request(sock, msg)
  local c = msg.content
  local code = type(c.code) == "string" and c.code or ""
  local silent = c.silent == true
  local store = c.store_history ~= false and not silent
  if store then K.count = K.count + 1 end
  local count = K.count
  if not silent then publish("execute_input", { code = code, execution_count = count }, msg) end
  K.parent = msg
  K.displays = K.displays or {}
  local reply
  local f, err = compile(code, ("=[%d]"):format(count))
  local res
  if f then
    res = table.pack(K.io.pcall(f))
    if not res[1] then err = res[2] end
  end
  flush_stream()
  if err then
    reply = error_content(err)
    reply.execution_count = count
    if not silent then
      publish("error", { ename = reply.ename, evalue = reply.evalue, traceback = reply.traceback }, msg)
    end
  else
    if res.n > 1 and not silent then
      local data
      if res.n == 2 then
        data = kernel.mime_bundle(res[2])
      else
        data = { ["text/plain"] = plain(table.unpack(res, 2, res.n)) }
      end
      publish("execute_result", { execution_count = count, data = data, metadata = {} }, msg)
    end
    reply = { status = "ok", execution_count = count, user_expressions = {}, payload = list {} }
  end
  K.parent = nil
  send(sock, msg.ids, "execute_reply", reply, msg)
end

function handlers.complete_request(sock, msg)
  local code = tostring(msg.content.code or "")
  local pos = math.tointeger(msg.content.cursor_pos) or utf8.len(code) or #code
  local byte = (utf8.offset(code, pos + 1) or (#code + 1)) - 1
  local word = code:sub(1, byte):match("[%w_%.:]*$")
  local ok, matches = pcall(repl.complete, word)
  if not ok then matches = {} end
  send(sock, msg.ids, "complete_reply", {
    status = "ok", matches = list(matches), cursor_start = pos - #word, cursor_end = pos,
    metadata = {},
  }, msg)
end

-- The value a dotted name refers to, found without running user code (raw lookups, as the
-- REPL's completion does), or nil.
local function resolve(path)
  local v = _G
  for part in path:gmatch("[%w_]+") do
    local r
    if type(v) == "table" then r = rawget(v, part) end
    if r == nil and rawequal(v, recur) and package.preload["recur." .. part] then
      local ok, m = pcall(require, "recur." .. part)
      if ok then r = m end
    end
    if r == nil and type(v) == "userdata" and recur.is_tensor(v) then r = rawget(recur.Tensor, part) end
    if r == nil then
      local mt = getmetatable(v)
      local idx = type(mt) == "table" and rawget(mt, "__index")
      if type(idx) == "table" then r = rawget(idx, part) end
    end
    if r == nil then return nil end
    v = r
  end
  return v
end

-- "function toy.train(o)" and the comment lines above it, from the function's source.
local function lua_doc(f)
  local info = debug.getinfo(f, "S")
  local src = info.source or ""
  local text
  local mod = src:match("^@lib/(.+)%.lua$")
  if mod then
    mod = mod:gsub("/init$", ""):gsub("/", ".")
    text = K.io.embedded_source(mod)
  elseif src:sub(1, 1) == "@" then
    text = read_file(src:sub(2))
  end
  if not text or info.linedefined < 1 then return nil, info.short_src end
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local sig = lines[info.linedefined] or ""
  local doc = {}
  local i = info.linedefined - 1
  while i >= 1 and lines[i]:find("^%s*%-%-") do
    table.insert(doc, 1, (lines[i]:gsub("^%s*%-%-%s?", "")))
    i = i - 1
  end
  return sig:gsub("^%s+", ""), info.short_src .. ":" .. info.linedefined, table.concat(doc, "\n")
end

function handlers.inspect_request(sock, msg)
  local code = tostring(msg.content.code or "")
  local pos = math.tointeger(msg.content.cursor_pos) or #code
  local byte = (utf8.offset(code, pos + 1) or (#code + 1)) - 1
  local name = code:sub(1, byte):match("[%w_%.:]*$") .. code:sub(byte + 1):match("^[%w_]*")
  name = name:gsub("[.:]+$", "")
  local v = name ~= "" and resolve(name) or nil
  if v ~= nil and K.originals[v] then v = K.originals[v] end
  local found = v ~= nil
  local data = {}
  if found then
    local text
    if type(v) == "function" then
      local sig, where, doc = lua_doc(v)
      if sig then
        text = sig .. "\n  (" .. where .. ")" .. (doc ~= "" and ("\n\n" .. doc) or "")
      else
        text = name .. ": a built-in function (C)"
      end
    else
      text = name .. ": " .. type(v) .. "\n" .. plain(v)
    end
    data["text/plain"] = text
  end
  send(sock, msg.ids, "inspect_reply", { status = "ok", found = found, data = data, metadata = {} }, msg)
end

function handlers.is_complete_request(sock, msg)
  local code = tostring(msg.content.code or "")
  -- as the REPL decides to read another line: an error at <eof> means more may come
  local st = "complete"
  local f, err = load("return " .. code, "=cell", "t")
  if not f and not tostring(err):find("<eof>$") then f, err = load(code, "=cell", "t") end
  if not f then st = tostring(err):find("<eof>$") and "incomplete" or "invalid" end
  local reply = { status = st }
  if st == "incomplete" then reply.indent = "  " end
  send(sock, msg.ids, "is_complete_reply", reply, msg)
end

function handlers.history_request(sock, msg)
  send(sock, msg.ids, "history_reply", { status = "ok", history = list {} }, msg)
end

function handlers.comm_info_request(sock, msg)
  send(sock, msg.ids, "comm_info_reply", { status = "ok", comms = {} }, msg)
end

function handlers.shutdown_request(sock, msg)
  local restart = msg.content.restart == true
  send(sock, msg.ids, "shutdown_reply", { status = "ok", restart = restart }, msg)
  K.running = false
end

-- interrupt_mode is "signal": the frontend sends SIGINT. An interrupt_request can only be
-- read between cells, when there is nothing to interrupt.
function handlers.interrupt_request(sock, msg)
  send(sock, msg.ids, "interrupt_reply", { status = "ok" }, msg)
end

local function serve(sock, channel)
  local frames = sock:recv()
  if not frames then return end
  local msg, why = parse(frames)
  if not msg then
    log("%s: refused a message: %s", channel, why)
    return
  end
  local t = msg.header.msg_type
  local h = handlers[t]
  if not h then
    log("%s: ignored a message of unknown type %s", channel, tostring(t))
    return
  end
  status("busy", msg)
  local ok, err = xpcall(h, debug.traceback, sock, msg)
  if not ok then log("%s: %s failed: %s", channel, t, tostring(err)) end
  status("idle", msg)
end

function kernel.run(connection_file)
  local ok_json, json = pcall(require, "cjson")
  if not ok_json then
    error("recur --kernel: lua-cjson is missing (Debian: apt-get install lua-cjson): " .. tostring(json), 0)
  end
  local kio = require "recur.kernel_io"
  local text, err = read_file(connection_file)
  if not text then error("recur --kernel: cannot read " .. connection_file .. ": " .. err, 0) end
  local okc, conn = pcall(json.decode, text)
  if not okc or type(conn) ~= "table" then
    error("recur --kernel: " .. connection_file .. " is not a JSON connection file", 0)
  end
  local scheme = conn.signature_scheme or "hmac-sha256"
  if scheme ~= "hmac-sha256" then
    error("recur --kernel: signature_scheme " .. tostring(scheme) .. " is not supported (hmac-sha256 is)", 0)
  end
  local function endpoint(port)
    local transport = conn.transport or "tcp"
    if transport == "ipc" then return ("ipc://%s-%d"):format(conn.ip, math.tointeger(conn[port])) end
    return ("%s://%s:%d"):format(transport, conn.ip or "127.0.0.1", math.tointeger(conn[port]))
  end
  K.json, K.io = json, kio
  K.key = type(conn.key) == "string" and conn.key or ""
  K.session, K.kernel_id = uuid(), uuid():sub(1, 8)
  K.empty_marker = "\1recur-empty-list-" .. uuid()
  K.empty_pattern = "\"" .. K.json.encode(K.empty_marker):sub(2, -2):gsub("%p", "%%%0") .. "\""
  K.count = 0
  K.stream = { stdout = {}, stderr = {}, bytes = 0, last = kio.now() }
  K.displays = {}
  K.originals = setmetatable({}, { __mode = "k" })
  kio.catch_sigint()
  K.shell = kio.socket("router", endpoint("shell_port"))
  K.control = kio.socket("router", endpoint("control_port"))
  K.stdin = kio.socket("router", endpoint("stdin_port"))
  K.iopub = kio.socket("pub", endpoint("iopub_port"))
  kio.heartbeat(endpoint("hb_port"))
  install_io()
  wrap_plot()
  log("listening (%s; connection file %s)", kio.version(), connection_file)
  status("starting")
  K.running = true
  local parent = math.tointeger(tonumber(os.getenv("JPY_PARENT_PID") or ""))
  while K.running do
    local ready = kio.poll({ K.control, K.shell }, 1000)
    if parent and parent > 1 and not kio.parent_is(parent) then
      log("the frontend (pid %d) is gone: exiting", parent)
      break
    end
    if ready[1] then serve(K.control, "control") end
    if K.running and ready[2] then serve(K.shell, "shell") end
  end
  for _, s in ipairs { K.shell, K.control, K.stdin, K.iopub } do s:close() end
  kio.close()
  return true
end

-- ---- the kernelspec ----

local function mkdir_p(dir)
  local ok = os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  if not ok then error("recur --install-kernel: cannot create " .. dir, 0) end
end

function kernel.install(args, program)
  local where = "system"
  local prefix
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--user" then
      where = "user"
    elseif a == "--prefix" then
      prefix = args[i + 1]
      if not prefix then error("recur --install-kernel: --prefix needs a directory", 0) end
      where = "prefix"
      i = i + 1
    else
      error("recur --install-kernel: unknown option " .. a .. " (use --user or --prefix P)", 0)
    end
    i = i + 1
  end
  local base
  if where == "user" then
    local data = os.getenv("XDG_DATA_HOME")
    base = (data and data ~= "" and data or (os.getenv("HOME") or ".") .. "/.local/share") .. "/jupyter"
  elseif where == "prefix" then
    base = prefix .. "/share/jupyter"
  else
    base = "/usr/local/share/jupyter"
  end
  local dir = base .. "/kernels/recur"
  -- the program's absolute path: the kernelspec must work from any directory
  if program:sub(1, 1) ~= "/" then
    if program:find("/") then
      local p = io.popen("pwd")
      program = p:read("l") .. "/" .. program
      p:close()
    else
      local p = io.popen("command -v '" .. program:gsub("'", "'\\''") .. "'")
      program = p:read("l") or program
      p:close()
    end
  end
  mkdir_p(dir)
  local json = require "cjson"
  local spec = {
    argv = { program, "--kernel", "{connection_file}" },
    display_name = "recur (Lua 5.4)",
    language = "lua",
    interrupt_mode = "signal",
    metadata = { debugger = false },
  }
  write_file_atomic(dir .. "/kernel.json", json.encode(spec) .. "\n")
  local logo = require "recur.kernel_logo"
  local kio = require "recur.kernel_io"
  write_file_atomic(dir .. "/logo-64x64.png", kio.b64decode(logo.png64))
  write_file_atomic(dir .. "/logo-32x32.png", kio.b64decode(logo.png32))
  print("recur: kernelspec written to " .. dir)
  return true
end

-- `recur --kernel FILE` / `recur --install-kernel [...]`: args are the program's arguments
-- (args[1] is the option), program its argv[0].
function kernel.main(args, program)
  if args[1] == "--kernel" then
    if #args ~= 2 then error("recur --kernel: usage: recur --kernel CONNECTION_FILE", 0) end
    return kernel.run(args[2])
  end
  return kernel.install(table.move(args, 2, #args, 1, {}), program)
end

return kernel
