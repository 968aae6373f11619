-- The documentation runs: every fenced ```lua block of README.md and docs/*.md, every REPL
-- transcript, and the --help of every script.
--
-- Conventions (for whoever writes docs):
--
-- * Every ```lua block runs, each in its own process (`$RECUR_BIN`, a fresh Lua state) with
--   `local recur = require "recur"` before it, in an empty temporary directory (files the
--   block writes go there; one directory per markdown file), with the repository root on
--   package.path (`require "models.charrnn"` works). Error messages point at the markdown
--   line. The block passes when it runs without error; state what matters with `assert`.
-- * A transcript is a fence (any language) whose lines start with `recur> ` (after an
--   optional `$ build/recur` line): the input lines (prompt removed; `...> ` continues a
--   chunk) are fed to `recur -i`; lines without a prompt are output the transcript shows,
--   which must appear in order, compared loosely (every number matches any number, runs of
--   spaces are one space). An error fails it unless the transcript shows it (`stdin:N: ...`).
-- * Other fences (sh, c, plain text) are not run: the shell lines are checked by hand, and
--   the --help of every script below.
-- * Markers: HTML comments on the lines right before a fence (several may follow each
--   other; no blank line before the fence):
--     <!-- doc-test: skip (REASON) -->      not run; the reason is required (needs a dataset,
--                                           a file that is not there, a fragment). Skips are
--                                           the exception: a test below caps them.
--     <!-- doc-test: setup CODE -->         CODE (Lua, may span lines) runs first, in the same
--                                           chunk: its locals are the block's (fixtures such as
--                                           `local x = recur.randn(5, 3, 64)`).
--     <!-- doc-test: after CODE -->         CODE runs after the block, in the same chunk (checks
--                                           on what a fragment defines).
--     <!-- doc-test: module NAME -->        the block is also saved as module NAME (require
--                                           NAME) for the later blocks of the same file.
--   A marker anywhere else, `<!-- doc-test: prelude CODE -->`, puts CODE before every later
--   block of its file (e.g. `local nn = recur.nn` for a page that assumes it).
local H = require "tests.helpers"
local q, sh = H.q, H.sh

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local BUILD = os.getenv("RECUR_BUILD") or "build"
local ROOT = sh("pwd"):match("[^\n]+")
if not BIN:find("^/") then BIN = ROOT .. "/" .. BIN end
if not BUILD:find("^/") then BUILD = ROOT .. "/" .. BUILD end

local tmpdirs = {}
local function tmpdir()
  local d = H.tmpdir("recur_docs_")
  tmpdirs[#tmpdirs + 1] = d
  return d
end
teardown(function()
  for _, d in ipairs(tmpdirs) do H.rm_rf(d) end
end)

-- ---- parsing ----

-- The blocks of a markdown text: { {kind = "lua"|"repl", line = n (the fence's line),
-- code = text, setup = text|nil, skip = reason|nil, module = name|nil, prelude = text}, ... }
-- and the errors in its markers.
local function parse(text)
  local lines = {}
  for l in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local blocks, errors, pending, prelude = {}, {}, {}, {}
  local i = 1
  while i <= #lines do
    local l = lines[i]
    if l:find("^<!%-%- doc%-test:") then
      local start, body = i, l
      while not body:find("%-%->%s*$") and i < #lines do
        i = i + 1
        body = body .. "\n" .. lines[i]
      end
      local kind, rest = body:match("^<!%-%- doc%-test:%s*(%a+)%s*(.-)%s*%-%->%s*$")
      if kind == "skip" then
        local reason = rest:match("^%((.+)%)$") or rest
        if reason == "" then errors[#errors + 1] = ("line %d: skip without a reason"):format(start) end
        pending.skip = reason
      elseif kind == "setup" then
        pending.setup = (pending.setup and pending.setup .. "\n" or "") .. rest
      elseif kind == "after" then
        pending.after = (pending.after and pending.after .. "\n" or "") .. rest
      elseif kind == "module" and rest:match("^[%w_.]+$") then
        pending.module = rest
      elseif kind == "prelude" then
        prelude[#prelude + 1] = rest
      else
        errors[#errors + 1] = ("line %d: unknown doc-test marker %q"):format(start, body)
      end
      pending.line = i
    elseif l:find("^```") then
      local lang = l:match("^```%s*(%S*)")
      local first, body = i, {}
      i = i + 1
      while i <= #lines and not lines[i]:find("^```%s*$") do
        body[#body + 1] = lines[i]
        i = i + 1
      end
      local code = table.concat(body, "\n")
      local repl = false
      for _, b in ipairs(body) do
        if b:find("^recur> ") then repl = true break end
        if not b:find("^%$ ") and b ~= "" then break end
      end
      local marked = pending.line == first - 1
      if lang == "lua" or repl then
        blocks[#blocks + 1] = {
          kind = repl and "repl" or "lua", line = first, code = code,
          setup = marked and pending.setup or nil, skip = marked and pending.skip or nil,
          after = marked and pending.after or nil,
          module = marked and pending.module or nil, prelude = table.concat(prelude, "\n"),
        }
      elseif marked then
        errors[#errors + 1] = ("line %d: a doc-test marker before a block that is not run"):format(first)
      end
      pending = {}
    elseif l:find("%S") or pending.line then
      if pending.line then
        errors[#errors + 1] = ("line %d: a doc-test marker not right before a fence"):format(pending.line)
      end
      pending = {}
    end
    i = i + 1
  end
  return blocks, errors
end

-- ---- running ----

local DRIVER = [[
local path, name, line = ...
local f = assert(io.open(path)); local src = f:read("a"); f:close()
local chunk, err = load(src, "@" .. name)
if not chunk then io.stderr:write(err, "\n") os.exit(3) end
chunk()
]]

-- Runs a lua block of `doc` (its path, for messages) in dir; returns ok, output.
local function run_lua(b, doc, dir)
  local prefix = { 'local recur = require "recur"' }
  if b.prelude ~= "" then prefix[#prefix + 1] = b.prelude end
  if b.setup then prefix[#prefix + 1] = b.setup end
  local head = table.concat(prefix, "\n")
  local _, nl = head:gsub("\n", "")
  -- pad so that the block's first line has its own line number in the markdown
  local pad = math.max(0, b.line - (nl + 1))
  local src = head .. "\n" .. ("\n"):rep(pad) .. b.code .. "\n" .. (b.after and b.after .. "\n" or "")
  H.write_file(dir .. "/block.lua", src)
  H.write_file(dir .. "/driver.lua", DRIVER)
  if b.module then
    local mpath = dir .. "/" .. b.module:gsub("%.", "/") .. ".lua"
    sh("mkdir -p " .. q(mpath:match("^(.*)/")))
    H.write_file(mpath, b.code .. "\n")
  end
  local env = "LUA_PATH=" .. q(dir .. "/?.lua;" .. ROOT .. "/?.lua;" .. ROOT .. "/?/init.lua;;")
  local out, code = sh(("cd %s && %s timeout 120 %s driver.lua block.lua %s </dev/null"):format(
    q(dir), env, q(BIN), q(doc)))
  return code == 0, out
end

-- Normalizes output for loose comparison: numbers become #, runs of blanks one space.
local function loose(s)
  s = s:gsub("%d[%d%.]*[eE][%+%-]?%d+", "#"):gsub("%d[%d%.]*", "#"):gsub("%-#", "#")
  return (s:gsub("%s+", " "))
end

-- Runs a transcript in dir; returns ok, message.
local function run_repl(b, dir)
  local inputs, expected = {}, {}
  for l in (b.code .. "\n"):gmatch("([^\n]*)\n") do
    if l:find("^recur> ") then
      inputs[#inputs + 1] = l:sub(8)
    elseif l:find("^%s*%.%.%.> ?") then
      inputs[#inputs + 1] = l:gsub("^%s*%.%.%.> ?", "")
    elseif l:find("^%$ ") or l == "" then -- the command line
    else
      expected[#expected + 1] = l
    end
  end
  H.write_file(dir .. "/input.txt", table.concat(inputs, "\n") .. "\n")
  local out, code = sh(("cd %s && timeout 120 %s -i < input.txt"):format(q(dir), q(BIN)))
  if code ~= 0 then return false, "exit status " .. tostring(code) .. ":\n" .. out end
  local shown, errors = 0, 0
  for _, e in ipairs(expected) do
    if e:find("stdin:%d+:") then shown = shown + 1 end
  end
  for l in out:gmatch("[^\n]+") do -- error messages (not traceback lines), after any prompts
    repeat
      local before = l
      l = l:gsub("^recur> ", ""):gsub("^%.%.%.> ", "")
    until l == before
    if l:find("^stdin:%d+:") and not l:find("^stdin:%d+: in ") then errors = errors + 1 end
  end
  if errors > shown then
    return false, ("an input line failed (%d errors, the transcript shows %d):\n%s"):format(errors, shown, out)
  end
  local got, pos = loose(out), 1
  for _, e in ipairs(expected) do
    local want = loose(e):gsub("^ ", ""):gsub(" $", "")
    local a, z = got:find(want, pos, true)
    if not a then
      return false, ("output %q (loosely %q) not found in order in:\n%s"):format(e, want, out)
    end
    pos = z + 1
  end
  return true, out
end

local function run_block(b, doc, dir)
  if b.kind == "repl" then return run_repl(b, dir) end
  return run_lua(b, doc, dir)
end

-- ---- the docs ----

local docs = { "README.md" }
do
  local p = assert(io.popen("ls docs/*.md"))
  for f in p:lines() do docs[#docs + 1] = f end
  p:close()
end

describe("doc blocks", function()
  local total, skipped = 0, 0
  for _, doc in ipairs(docs) do
    local blocks, errors = parse(H.read_file(doc))
    it(doc .. ": doc-test markers are well formed", function()
      assert.same({}, errors)
    end)
    local dir
    for _, b in ipairs(blocks) do
      total = total + 1
      if b.skip then
        skipped = skipped + 1
      else
        it(("%s:%d runs (%s)"):format(doc, b.line, b.kind), function()
          dir = dir or tmpdir()
          local ok, out = run_block(b, doc, dir)
          assert(ok, ("%s:%d failed:\n%s"):format(doc, b.line, out))
        end)
      end
    end
  end

  it("runs most blocks: skips are the exception", function()
    assert.is_true(total >= 15, "only " .. total .. " blocks found")
    assert.is_true(skipped * 5 <= total, ("%d of %d blocks are skipped"):format(skipped, total))
  end)
end)

describe("doc-test machinery", function()
  local doc = table.concat({
    "# a page",
    "<!-- doc-test: prelude local two = 2 -->",
    "```lua",
    "assert(two + 1 == 3)",
    "```",
    "<!-- doc-test: setup local t = recur.ones(2)",
    "local u = t * 3 -->",
    "<!-- doc-test: after assert(v == 7) -->",
    "```lua",
    "assert(u:sum():item() == 6)",
    "local v = 7",
    "```",
    "```lua",
    "local y = recur.matmul(recur.ones(2, 3), recur.ones(4, 5))   -- wrong",
    "```",
    "<!-- doc-test: skip (needs data/fetch mnist) -->",
    "```lua",
    "error('never run')",
    "```",
    "<!-- doc-test: module my.mod -->",
    "```lua",
    "return { answer = 42 }",
    "```",
    "```lua",
    "assert(require('my.mod').answer == 42)",
    "```",
    "```",
    "$ build/recur",
    "recur> x = recur.tensor{1, 2}",
    "recur> print(x:sum():item(),",
    "...>   x:size(1))",
    "3.0\t2",
    "```",
    "```",
    "recur> recur.ones(2):size(1)",
    "false",
    "```",
    "```",
    "recur> recur.nothing()",
    "```",
    "```sh",
    "not run",
    "```",
    "<!-- doc-test: frobnicate -->",
    "```lua",
    "```",
    "<!-- doc-test: skip -->",
    "```lua",
    "```",
  }, "\n")

  it("parses blocks and markers", function()
    local blocks, errors = parse(doc)
    assert.equal(11, #blocks)
    assert.same({ "lua", "lua", "lua", "lua", "lua", "lua", "repl", "repl", "repl", "lua", "lua" },
      (function()
        local k = {}
        for i, b in ipairs(blocks) do k[i] = b.kind end
        return k
      end)())
    assert.equal("local two = 2", blocks[2].prelude)
    assert.equal("local t = recur.ones(2)\nlocal u = t * 3", blocks[2].setup)
    assert.equal("needs data/fetch mnist", blocks[4].skip)
    assert.equal("my.mod", blocks[5].module)
    assert.equal(9, blocks[2].line)
    assert.equal("assert(v == 7)", blocks[2].after)
    assert.equal(2, #errors)
    H.has(errors[1], "unknown doc-test marker")
    H.has(errors[2], "skip without a reason")
  end)

  it("passes good blocks and fails wrong ones, naming the markdown line", function()
    local blocks = parse(doc)
    local dir = tmpdir()
    assert.is_true((run_block(blocks[1], "page.md", dir)))
    assert.is_true((run_block(blocks[2], "page.md", dir)))
    blocks[2].after = "assert(v == 8)"
    assert.is_false((run_block(blocks[2], "page.md", dir)))
    local ok, out = run_block(blocks[3], "page.md", dir)
    assert.is_false(ok)
    H.has(out, "page.md:14:", "matmul: shapes [2, 3] and [4, 5] do not match")
    assert.is_true((run_block(blocks[5], "page.md", dir)))
    assert.is_true((run_block(blocks[6], "page.md", dir)))
    ok, out = run_block(blocks[7], "page.md", dir)
    assert(ok, out)
    ok, out = run_block(blocks[8], "page.md", dir) -- shows false, prints 2
    assert.is_false(ok)
    H.has(out, "not found in order")
    ok, out = run_block(blocks[9], "page.md", dir) -- an error the transcript does not show
    assert.is_false(ok)
    H.has(out, "an input line failed", "nothing")
  end)

  it("compares output loosely", function()
    assert.equal("tensor([[ #, #], [#, #]], size=[#, #])",
      loose("tensor([[ 1.5000e-01,  -2.0],\n        [3, 4]], size=[2, 2])"))
  end)
end)

-- ---- --help of every script ----

-- How each file under scripts/ and bench/ is run; false: not a program (with the reason).
local PY = "/usr/bin/python3"
local not_programs = {
  ["scripts/args.lua"] = "the option parser the scripts require",
  ["bench/README.md"] = "documentation",
  ["bench/matmul.c"] = "compiled and run by bench/matmul.sh",
  ["bench/embed_call.c"] = "built as build/bench/embed_call, checked below",
  ["bench/xcore.c"] = "built as build/bench/xcore, checked below",
  ["bench/bench_rows.h"] = "the C benchmarks' results rows",
  ["bench/lib/rows.lua"] = "the module the benchmarks' results rows come from",
  ["bench/lib/timing.lua"] = "the module the benchmark workers time with",
  ["bench/lib/workers.lua"] = "the module the benchmarks run their workers with",
}
-- Lua programs without the .lua extension
local lua_programs = { ["bench/compare"] = true }
local function command_for(f)
  if not_programs[f] then return nil end
  -- make bench's results files (bench/results/, local; bench/baselines/, committed): data
  if f:find("^bench/results/") or f:find("^bench/baselines/[^/]+%.json$") then return nil end
  -- Python's byte-code cache (python3 -m py_compile on a bench script): not a source
  if f:find("/__pycache__/") then return nil end
  if f:find("%.lua$") or lua_programs[f] then return q(BIN) .. " " .. q(f) end
  if f:find("%.sh$") then return "sh " .. q(f) end
  if f:find("%.py$") then return PY .. " " .. q(f) end
  error(f .. ": a new kind of file under scripts/ or bench/: add it to docs_spec.lua")
end

describe("--help", function()
  local programs = {
    { "build/examples/talker", q(BUILD .. "/examples/talker") },
    { "build/bench/embed_call", q(BUILD .. "/bench/embed_call") },
    { "build/bench/xcore", q(BUILD .. "/bench/xcore") },
    { "tools/profile_step.lua", q(BIN) .. " tools/profile_step.lua" },
    { "tools/report.lua", q(BIN) .. " tools/report.lua" },
  }
  local p = assert(io.popen("find scripts bench -type f | sort"))
  for f in p:lines() do
    local cmd = command_for(f)
    if cmd then programs[#programs + 1] = { f, cmd } end
  end
  p:close()

  it("finds the scripts", function()
    assert.is_true(#programs >= 20, #programs .. " programs")
  end)

  for _, pr in ipairs(programs) do
    it(pr[1] .. " --help prints a usage line and exits 0", function()
      local out, code = sh("timeout 20 " .. pr[2] .. " --help </dev/null")
      assert(code == 0, pr[1] .. " --help: exit status " .. tostring(code) .. "\n" .. out)
      assert(out:find("^[Uu]sage: ") or out:find("\n[Uu]sage: "), pr[1] .. " --help prints no usage line:\n" .. out)
    end)
  end
end)
