-- The embedding side seen from outside: the example host (headless, hot reload), building a
-- host with pkg-config against the build tree and against `make install`, and Debian's stock
-- lua5.4 loading recur with require. The C API itself is tested by tests/c/test_embed.c and
-- tests/c/test_sandbox.c.
local build = os.getenv("RECUR_BUILD") or "build"
local sanitized = os.getenv("RECUR_SANITIZED") == "1"
local talker = build .. "/examples/talker"

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- as an editor that saves through a temporary file does (the talker also waits for a file
-- to settle before reloading it)
local function write_atomic(path, s)
  write(path .. ".tmp", s)
  assert(os.rename(path .. ".tmp", path))
end

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

-- a tiny char-RNN checkpoint that has learned one sentence by heart (trained once, in ~0.2 s)
local SENTENCE = "welcome, traveller! have a look at my wares."
local ck_dir, ck_path
local function train(sentence, path, dir)
  write(dir .. "/text.txt", (sentence .. "\n"):rep(80))
  local out, code = run(string.format("%s/recur scripts/train_charrnn.lua --data %s/text.txt "
    .. "--checkpoint %s --hidden 32 --embed 8 --layers 1 --seq 32 --batch 4 --epochs 30 "
    .. "--lr 2e-2 --val-frac 0 --print-every 1000", build, dir, path))
  assert(code == 0 and out:find("checkpoint: ", 1, true), out)
  return path
end
local function checkpoint()
  if ck_path then return ck_path end
  ck_dir = tmpdir()
  ck_path = train(SENTENCE, ck_dir .. "/talk.ckpt", ck_dir)
  return ck_path
end

-- the frames of a headless run: their numbers, the line shown in each, the voice
local function frames_of(out)
  local frames = {}
  for n, line in out:gmatch('frame (%d+): %d+ chars in [%d.]+ ms | line "([^"]*)"') do
    frames[#frames + 1] = { n = tonumber(n), line = line }
  end
  return frames, out:match("talker: voice: ([^\n]*)")
end

-- the lines spoken in full (shown on the frame that finished them)
local function finished_lines(out)
  local lines, last = {}, 0
  for line, n in out:gmatch('line "([^"]*)" | lines (%d+)') do
    n = tonumber(n)
    if n > last then lines[#lines + 1] = line end
    last = n
  end
  return lines
end

describe("the example host", function()
  teardown(function()
    if ck_dir then os.execute("rm -rf " .. ck_dir) end
  end)

  it("speaks from a char-RNN checkpoint, one character per call, and exits cleanly", function()
    local ck = checkpoint()
    local out, code = run(talker .. " --headless --frames 60 --fps 1000 --chars-per-frame 6 "
                          .. "--pause-ms 0 --checkpoint " .. ck)
    assert.equal(0, code, out)
    local frames, voice = frames_of(out)
    assert.equal(60, #frames)
    for i, f in ipairs(frames) do assert.equal(i, f.n) end
    assert.equal("char-RNN lstm 1x32, vocabulary 19 (utf8), C path, checkpoint " .. ck, voice)
    -- every character comes from the checkpoint's vocabulary (the sentence's 19 characters)
    local text = {}
    for _, f in ipairs(frames) do text[#text + 1] = f.line end
    text = table.concat(text)
    assert.is_true(#text > 200, text)
    assert.is_nil(text:find("[^welcom, trav!hkys.]"), text)
    -- it has learned the sentence: after the first line it says it again and again
    local lines = finished_lines(out)
    assert.is_true(#lines >= 4, out)
    for i = 2, #lines do assert.equal(SENTENCE, lines[i]) end
    local n_lines, n_chars = out:match("talker: (%d+) lines, (%d+) characters, 0 reloads, 0 errors")
    assert.equal(#lines, tonumber(n_lines))
    assert.is_true(tonumber(n_chars) > 200)
  end)

  it("falls back to its scripted voice without a checkpoint", function()
    local out, code = run(talker .. " --headless --frames 12 --fps 200 --no-checkpoint "
                          .. "--script examples/talker.lua")
    assert.equal(0, code, out)
    local frames, voice = frames_of(out)
    assert.equal(12, #frames)
    for i, f in ipairs(frames) do assert.equal(i, f.n) end
    assert.equal("scripted bigram LSTM, vocabulary 28", voice)
    -- 2 characters a frame by default: 24 characters of a line (or a finished line)
    local text = frames[12].line
    assert.is_true(#text >= 20, text)
    assert.is_nil(text:find("[^a-z ,.!?'\n]"), text)
    assert.truthy(out:find("talker: %d+ lines, %d+ characters, 0 reloads, 0 errors"))
  end)

  -- The mechanism, not the machine's speed: a frame calls the voice until its time is spent and
  -- then hands the frame back (at most the call that crossed the line runs over). Frame times
  -- are bounded only by a generous net against hangs: a busy machine stretches each call.
  it("keeps within its per-frame time budget", function()
    -- a voice that takes at least 0.5 ms a character and never ends its line: a 2 ms frame
    -- holds at most 4 calls before its time is spent, however slow the machine
    local dir = tmpdir()
    write(dir .. "/slow.lua", [[
      talker = {}
      function talker.next_char()
        local t = recur.now() -- monotonic wall time (os.clock is the process's CPU time)
        while recur.now() - t < 0.0005 do end
        return "a"
      end
      function talker.describe() return "slow" end
    ]])
    local out, code = run(talker .. " --headless --frames 5 --fps 200 --chars-per-frame 100000 "
                          .. "--budget-ms 2 --no-checkpoint --script " .. dir .. "/slow.lua")
    os.execute("rm -rf " .. dir)
    assert.equal(0, code, out)
    local n = 0
    for chars, ms in out:gmatch("(%d+) chars in ([%d.]+) ms") do
      n = n + 1
      assert.is_true(tonumber(ms) >= 2, ms) -- it ran until its time was spent ...
      assert.is_true(tonumber(chars) >= 1 and tonumber(chars) <= 5, chars) -- ... and no further
      assert.is_true(tonumber(ms) < 10000, ms) -- a net against hangs only
    end
    assert.equal(5, n)
    -- the checkpoint voice, uncapped: each frame ends when its time is spent or its line ends
    -- (then it pauses a few frames, with no work)
    out, code = run(talker .. " --headless --frames 3 --fps 200 --chars-per-frame 100000 "
                    .. "--budget-ms 2 --checkpoint " .. checkpoint())
    assert.equal(0, code, out)
    n = 0
    local lines = 0
    for chars, ms, l in out:gmatch('(%d+) chars in ([%d.]+) ms | line "[^"]*" | lines (%d+)') do
      n = n + 1
      chars, ms, l = tonumber(chars), tonumber(ms), tonumber(l)
      assert.is_true(chars < 100000, out)
      assert.is_true(ms >= 2 or l > lines or chars == 0, out)
      assert.is_true(ms < 10000, ms)
      lines = l
    end
    assert.equal(3, n)
  end)

  it("reloads the script when it changes, keeps the checkpoint and survives a broken edit", function()
    local dir = tmpdir()
    local script = dir .. "/talker.lua"
    local src = read("examples/talker.lua")
    write(script, src)
    local log = dir .. "/out.txt"
    os.execute(string.format("%s --headless --frames 100 --fps 50 --pause-ms 0 --chars-per-frame 4 "
                             .. "--checkpoint %s --script %s > %s 2>&1 &", talker, checkpoint(),
                             script, log))
    os.execute("sleep 0.6")
    write_atomic(script, src .. "\nthis is not lua\n") -- a broken edit: the old script keeps running
    os.execute("sleep 0.6")
    -- a good edit: the Lua step path, and a next_char that shouts (before the final `return T`)
    write_atomic(script, (src:gsub("\nreturn T\n$", '\nT.path = "lua"\nlocal say = T.next_char\n'
                            .. "function T.next_char() return say():upper() end\nreturn T\n")))
    local out
    for _ = 1, 100 do
      os.execute("sleep 0.1")
      out = read(log)
      if out:find("talker: %d+ lines") then break end
    end
    os.execute("rm -rf " .. dir)
    assert.truthy(out:find("reload failed, keeping the old script: .*talker.lua:%d+:"), out)
    assert.truthy(out:find("reloaded " .. script .. " (char-RNN lstm 1x32, vocabulary 19 (utf8), "
                           .. "Lua path)", 1, true), out)
    -- before the edit it says the sentence, after it the same model shouts it
    local lines = finished_lines(out)
    local said, shouted = 0, 0
    for _, l in ipairs(lines) do
      if l == SENTENCE then said = said + 1 end
      if l == SENTENCE:upper() then shouted = shouted + 1 end
    end
    assert.is_true(said >= 1 and shouted >= 1, out)
    assert.truthy(out:find("talker: %d+ lines, %d+ characters, 1 reloads, 1 errors"), out)
  end)

  it("reloads the checkpoint when training rewrites it, and survives a broken one", function()
    local dir = tmpdir()
    -- the same vocabulary (the same letters), another sentence
    local other = "have a look at my wares, traveller! welcome."
    local second = train(other, dir .. "/second.ckpt", dir)
    local ck = dir .. "/talk.ckpt"
    write(ck, read(checkpoint()))
    local log = dir .. "/out.txt"
    os.execute(string.format("%s --headless --frames 100 --fps 50 --pause-ms 0 --chars-per-frame 4 "
                             .. "--checkpoint %s > %s 2>&1 &", talker, ck, log))
    os.execute("sleep 0.6")
    write_atomic(ck, "not a checkpoint") -- the old weights keep talking
    os.execute("sleep 0.6")
    write_atomic(ck, read(second))
    local out
    for _ = 1, 100 do
      os.execute("sleep 0.1")
      out = read(log)
      if out:find("talker: %d+ lines") then break end
    end
    os.execute("rm -rf " .. dir)
    assert.truthy(out:find("checkpoint reload failed, keeping the old weights: load: " .. ck, 1, true), out)
    assert.truthy(out:find("reloaded the checkpoint " .. ck, 1, true), out)
    -- the first sentence before the reload, the second after it, nothing else
    local lines = finished_lines(out)
    local first_at, second_at = nil, nil
    for i, l in ipairs(lines) do
      if l == SENTENCE then first_at = first_at or i end
      if l == other then second_at = second_at or i end
    end
    assert.is_true(first_at ~= nil and second_at ~= nil and first_at < second_at, out)
    assert.equal(other, lines[#lines])
    assert.truthy(out:find("talker: %d+ lines, %d+ characters, 1 reloads, 1 errors"), out)
  end)

  it("reports a checkpoint it cannot use, and its usage", function()
    local out, code = run(talker .. " --help")
    assert.equal(0, code)
    assert.truthy(out:find("usage: talker", 1, true))
    out, code = run(talker .. " --frames")
    assert.equal(2, code)
    assert.truthy(out:find("unknown or incomplete option '--frames'", 1, true))
    out, code = run(talker .. " --checkpoint x --no-checkpoint")
    assert.equal(2, code)
    assert.truthy(out:find("--checkpoint and --no-checkpoint exclude each other", 1, true), out)
    out, code = run(talker .. " --headless --frames 1 --no-checkpoint --script /nonexistent.lua")
    assert.equal(1, code)
    assert.truthy(out:find("cannot open /nonexistent.lua", 1, true), out)
    out, code = run(talker .. " --headless --frames 1 --checkpoint /nonexistent.ckpt")
    assert.equal(1, code)
    assert.truthy(out:find("talker: cannot load the checkpoint /nonexistent.ckpt: ", 1, true), out)
    -- a checkpoint that is not a char model's
    local dir = tmpdir()
    out, code = run(string.format("%s/recur -e 'recur.save(\"%s/other.ckpt\", "
                                  .. "{tensors = {w = recur.zeros(2)}})'", build, dir))
    assert.equal(0, code, out)
    out, code = run(talker .. " --headless --frames 1 --checkpoint " .. dir .. "/other.ckpt")
    assert.equal(1, code)
    assert.truthy(out:find("talker: the script cannot use the checkpoint: use_checkpoint: not a "
                           .. "char-RNN checkpoint", 1, true), out)
    -- the char model out of the sandbox's reach
    out, code = run(talker .. " --headless --frames 1 --lua-path '" .. dir .. "/?.lua' --checkpoint "
                    .. checkpoint())
    assert.equal(1, code)
    assert.truthy(out:find("cannot load the char model (models/charrnn.lua; the host's module path "
                           .. "must reach it)", 1, true), out)
    assert.truthy(out:find("module 'models.charrnn' not found", 1, true), out)
    os.execute("rm -rf " .. dir)
  end)
end)

describe("a host built with pkg-config", function()
  -- an unsanitized host cannot load a sanitized library: `make test` runs these, `make asan`
  -- does not (nothing is reported as skipped, since nothing here is expected to run there)
  if sanitized then return end

  it("compiles against the build tree with the shared library", function()
    local dir = tmpdir()
    local out, code = run(string.format(
      "PKG_CONFIG_PATH=%s/pkgconfig cc -std=c11 -Wall -Werror -o %s/host examples/talker.c " ..
      "$(PKG_CONFIG_PATH=%s/pkgconfig pkg-config --cflags --libs recur)", build, dir, build))
    assert.equal(0, code, out)
    out, code = run(dir .. "/host --headless --frames 3 --fps 200 --no-checkpoint")
    assert.equal(0, code, out)
    assert.truthy(out:find("frame 3: 2 chars"), out)
    local ldd = run("ldd " .. dir .. "/host")
    assert.truthy(ldd:find("librecur.so.0", 1, true), ldd)
    os.execute("rm -rf " .. dir)
  end)

  it("compiles against `make install`, shared and static", function()
    local dir = tmpdir()
    local out, code = run(string.format("make -s install BUILD=%s PREFIX=%s/usr", build, dir))
    assert.equal(0, code, out)
    local pc = read(dir .. "/usr/lib/pkgconfig/recur.pc")
    assert.truthy(pc:find("includedir=" .. dir .. "/usr/include", 1, true), pc)
    local env = "PKG_CONFIG_PATH=" .. dir .. "/usr/lib/pkgconfig"
    out, code = run(string.format("%s sh -c 'cc -std=c11 -o %s/dyn examples/talker.c " ..
                                  "$(pkg-config --cflags --libs recur)'", env, dir))
    assert.equal(0, code, out)
    out, code = run(string.format("LD_LIBRARY_PATH=%s/usr/lib %s/dyn --headless --frames 2 --no-checkpoint", dir, dir))
    assert.equal(0, code, out)
    assert.truthy(out:find("frame 2:"), out)
    -- static: the archive plus its private dependencies
    out, code = run(string.format("%s sh -c 'cc -std=c11 -o %s/static examples/talker.c " ..
                                  "$(pkg-config --cflags recur) %s/usr/lib/librecur.a " ..
                                  "$(pkg-config --static --libs-only-l recur | sed s/-lrecur//)'",
                                  env, dir, dir))
    assert.equal(0, code, out)
    out, code = run(dir .. "/static --headless --frames 2 --no-checkpoint")
    assert.equal(0, code, out)
    -- the shared library exports the API only
    local syms = run("nm -D --defined-only " .. dir .. "/usr/lib/librecur.so.0")
    assert.truthy(syms:find(" T recur_new", 1, true), syms)
    assert.is_nil(syms:find(" T rc_", 1, true))
    assert.is_nil(syms:find(" T rb_", 1, true))
    os.execute("rm -rf " .. dir)
  end)
end)

describe("stock Lua", function()
  -- lua5.4 cannot load a sanitized module: `make test` runs these, `make asan` does not
  if sanitized then return end
  it("loads recur with require from Debian's lua5.4 (module on LUA_CPATH)", function()
    local out, code = run(string.format(
      "LUA_CPATH='%s/?.so;;' lua5.4 -e 'local r = require \"recur\" " ..
      "print(r._VERSION, r.tensor{1, 2, 3}:sum():item(), package.loaded.recur == r)'", build))
    assert.equal(0, code, out)
    assert.equal("recur 0.1.0\t6.0\ttrue\n", out)
  end)
end)
