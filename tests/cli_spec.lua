-- The `recur` program: options, scripts, the arg table, stdin, exit status and the REPL.
local H = require "tests.helpers"
local q, sh = H.q, H.sh

local BIN = os.getenv("RECUR_BIN") or "build/recur"

-- Runs recur with the given (already quoted) argument string, optional stdin text and env.
local function run(args, stdin, env)
  local cmd = (env or "") .. " " .. q(BIN) .. " " .. args
  if stdin then cmd = "printf '%s' " .. q(stdin) .. " | " .. cmd else cmd = cmd .. " </dev/null" end
  return sh(cmd)
end

local tmpfiles = {}
local function tmpfile(content)
  local name = os.tmpname()
  tmpfiles[#tmpfiles + 1] = name
  H.write_file(name, content or "")
  return name
end
local function tmpdir()
  local name = H.tmpdir()
  tmpfiles[#tmpfiles + 1] = name
  return name
end

-- Positions of the needles in order in s (each after the previous one), or an error.
local function in_order(s, ...)
  local pos = 1
  for _, needle in ipairs({ ... }) do
    local a, b = s:find(needle, pos, true)
    assert(a, ("%q not found in order in:\n%s"):format(needle, s))
    pos = b + 1
  end
  return true
end

teardown(function()
  for _, f in ipairs(tmpfiles) do H.rm_rf(f) end
end)

describe("recur program", function()
  it("runs a script with arg and ... set like lua", function()
    local script = tmpfile([[
local t = table.pack(...)
print(t.n, t[1], t[2], t[3])
print(arg[0] == SCRIPT, arg[1], arg[2], arg[3], #arg)
print(arg[-1], arg[-2], arg[-3] ~= nil, arg[-4])
]])
    local out, code = run("-e " .. q("SCRIPT=" .. ("%q"):format(script)) .. " " .. q(script) .. " a 'b c' ''")
    assert.equal(0, code)
    assert.equal(table.concat({
      "3\ta\tb c\t",
      "true\ta\tb c\t\t3",
      "SCRIPT=" .. ("%q"):format(script) .. "\t-e\ttrue\tnil",
      "",
    }, "\n"), out)
  end)

  it("gives arg[0] to the program when there is no script", function()
    local out, code = run("-e 'print(arg[0] == os.getenv(\"RB\"), arg[1], arg[2], #arg)'", nil, "RB=" .. q(BIN))
    assert.equal(0, code)
    assert.equal("true\t-e\tprint(arg[0] == os.getenv(\"RB\"), arg[1], arg[2], #arg)\t2\n", out)
  end)

  it("stops options at -- so later dashes reach the script", function()
    local script = tmpfile("print(arg[0] ~= nil, ...)")
    local out, code = run("-- " .. q(script) .. " -v -e x")
    assert.equal(0, code)
    assert.equal("true\t-v\t-e\tx\n", out)
  end)

  it("runs -e chunks in order, before the script", function()
    local script = tmpfile("x = x + 1 print('script', x)")
    local out, code = run("-e 'x = 1' -e 'x = x * 10' -e 'print(x)' " .. q(script))
    assert.equal(0, code)
    assert.equal("10\nscript\t11\n", out)
    out, code = run("-e'print(3 * 7)'") -- argument attached to the option
    assert.equal(0, code)
    assert.equal("21\n", out)
  end)

  it("preloads recur as a global and keeps require working", function()
    local out, code = run("-e 'print(require(\"recur\") == recur, type(recur.tensor), recur.tensor{1,2,3}:numel())'")
    assert.equal(0, code)
    assert.equal("true\tfunction\t3\n", out)
  end)

  it("-l requires a module into a global, with -l name=mod renaming it", function()
    local dir = tmpdir()
    local f = assert(io.open(dir .. "/mymod.lua", "w"))
    f:write("return { v = 7, name = ... }")
    f:close()
    local env = "LUA_PATH=" .. q(dir .. "/?.lua")
    local out, code = run("-l mymod -e 'print(mymod.v, mymod.name)'", nil, env)
    assert.equal(0, code)
    assert.equal("7\tmymod\n", out)
    out, code = run("-l m2=mymod -e 'print(m2.v, mymod)'", nil, env)
    assert.equal(0, code)
    assert.equal("7\tnil\n", out)
    out, code = run("-l g=recur.gradcheck -e 'print(type(g), g == recur.gradcheck)'")
    assert.equal(0, code)
    assert.equal("function\ttrue\n", out)
    out, code = run("-l no_such_module_xyz -e 'print(\"not reached\")'")
    assert.equal(1, code)
    assert.truthy(out:find("recur: module 'no_such_module_xyz' not found", 1, true))
    assert.falsy(out:find("not reached", 1, true))
  end)

  it("-v prints one version line with recur, Lua and the BLAS", function()
    local out, code = run("-v")
    assert.equal(0, code)
    assert.truthy(out:match("^recur %d+%.%d+%.%d+  Lua 5%.4%.%d+  OpenBLAS %d+%.%d+%.%d+ %([^,]+, %d+ threads?%)\n$"), out)
    local info = run("-e 'local c = recur.config() io.write(c.version, \"  \", c.lua, \"  OpenBLAS \", c.blas.version, \" (\", c.blas.core, \", \")'")
    assert.equal(info, out:sub(1, #info))
    local same = run("--version")
    assert.equal(out, same)
    local one = run("-v", nil, "OPENBLAS_NUM_THREADS=1")
    assert.truthy(one:find("1 thread)\n", 1, true), one)
    -- -v with a script prints the line, then runs the script
    local script = tmpfile("print('ran')")
    out, code = run("-v " .. q(script))
    assert.equal(0, code)
    assert.truthy(out:match("^recur [^\n]+\nran\n$"), out)
  end)

  it("--help prints the usage on stdout and exits 0", function()
    local p = assert(io.popen(q(BIN) .. " --help 2>/dev/null", "r"))
    local out = p:read("a")
    local _, _, code = p:close()
    assert.equal(0, code)
    assert.truthy(out:find("^usage: recur %[options%] %[script %[args%]%]\n"))
    for _, opt in ipairs({ "-e stat", "-i", "-l mod", "-l g=mod", "-v", "-E", "-W", "--help", "--version", "--" }) do
      assert.truthy(out:find("\n  " .. opt, 1, true), opt)
    end
  end)

  it("rejects unknown options with the usage on stderr and status 1", function()
    local out, code = run("-z")
    assert.equal(1, code)
    assert.truthy(out:find("^recur: unrecognized option '%-z'\nusage: recur"))
    -- nothing on stdout
    local p = assert(io.popen(q(BIN) .. " --frobnicate 2>/dev/null", "r"))
    local stdout = p:read("a")
    local _, _, code2 = p:close()
    assert.equal(1, code2)
    assert.equal("", stdout)
    out, code = run("-e")
    assert.equal(1, code)
    assert.truthy(out:find("recur: '-e' needs argument", 1, true))
    out, code = run("-vx")
    assert.equal(1, code)
    assert.truthy(out:find("unrecognized option '-vx'", 1, true))
  end)

  it("exits 1 with the message and a traceback when a script fails", function()
    local script = tmpfile("local function f() error('boom here') end\nf()\nprint('not reached')")
    local out, code = run(q(script))
    assert.equal(1, code)
    in_order(out, "recur: ", script .. ":1: boom here", "stack traceback:", "in local 'f'", "in main chunk")
    assert.falsy(out:find("not reached", 1, true))
    -- syntax errors and errors in -e chunks too
    out, code = run(q(tmpfile("x = = 1")))
    assert.equal(1, code)
    assert.truthy(out:find("recur: ", 1, true) and out:find("unexpected symbol", 1, true), out)
    out, code = run("-e 'error(\"from e\")' -e 'print(\"not reached\")'")
    assert.equal(1, code)
    in_order(out, "recur: (command line):1: from e", "stack traceback:")
    assert.falsy(out:find("not reached", 1, true))
    out, code = run(q("/nonexistent/x.lua"))
    assert.equal(1, code)
    assert.truthy(out:find("recur: cannot open /nonexistent/x.lua", 1, true))
    -- a tensor error is a plain Lua error too
    out, code = run("-e 'recur.zeros(2):close(); local t = recur.zeros(2); t:close(); print(t:numel())'")
    assert.equal(1, code)
    assert.truthy(out:find("closed tensor", 1, true), out)
  end)

  it("runs stdin as a script when it is not a terminal", function()
    local out, code = run("", "print('from stdin', select('#', ...))\n")
    assert.equal(0, code)
    assert.equal("from stdin\t0\n", out)
    out, code = run("- a b", "print(...) print(arg[0])\n")
    assert.equal(0, code)
    assert.equal("a\tb\n-\n", out)
    out, code = run("-", "error('in stdin')\n")
    assert.equal(1, code)
    assert.truthy(out:find("recur: stdin:1: in stdin", 1, true))
  end)

  it("-W turns warnings on", function()
    local out = run("-e 'warn(\"quiet\")'")
    assert.equal("", out)
    out = run("-W -e 'warn(\"loud\")'")
    assert.equal("Lua warning: loud\n", out)
  end)

  it("honours LUA_INIT unless -E is given", function()
    local out = run("-e 'print(init_x)'", nil, "LUA_INIT='init_x = 5'")
    assert.equal("5\n", out)
    out = run("-E -e 'print(init_x)'", nil, "LUA_INIT='init_x = 5'")
    assert.equal("nil\n", out)
    local f = tmpfile("init_y = 'from file'")
    out = run("-e 'print(init_y)'", nil, "LUA_INIT=@" .. q(f))
    assert.equal("from file\n", out)
  end)
end)

describe("recur REPL", function()
  it("prints values, survives errors and keeps going", function()
    local out, code = run("-i", "1+1\nrecur.tensor{1,2}\nerror(\"x\")\n2*3\n")
    assert.equal(0, code)
    local tensor = run("-e 'io.write(tostring(recur.tensor{1,2}))'")
    assert.truthy(tensor:find("tensor", 1, true))
    in_order(out, "recur 0.1.0", "recur> 2\n", "recur> " .. tensor .. "\n", "recur> stdin:1: x\nstack traceback:",
      "recur> 6\n", "recur> \n")
  end)

  it("prints several values with tabs, nothing for statements", function()
    local out, code = run("-i", "1, 'a', nil, true\nlocal y = 3\nx = 4\nx\n=x + 1\nreturn\n")
    assert.equal(0, code)
    local body = out:gsub("^[^\n]*\n", "") -- drop the version line
    assert.equal("recur> 1\ta\tnil\ttrue\nrecur> recur> recur> 4\nrecur> 5\nrecur> recur> \n", body)
  end)

  it("reads continuation lines for incomplete chunks", function()
    local out, code = run("-i", "for i = 1, 3 do\nio.write(i * 10, ' ')\nend\nfunction f(a,\nb) return a + b end\nreturn f(2,\n5)\nf(1,\n1)\n")
    assert.equal(0, code)
    local body = out:gsub("^[^\n]*\n", "")
    assert.equal("recur> ...> ...> 10 20 30 recur> ...> recur> ...> 7\nrecur> ...> recur> \n", body)
  end)

  it("reports syntax errors and an incomplete chunk at end of input", function()
    local out, code = run("-i", "x = = 2\n1 + 1\nif true then\n")
    assert.equal(0, code)
    in_order(out, "recur> stdin:1: unexpected symbol", "recur> 2\n", "recur> ...> stdin:1: 'end' expected")
  end)

  it("runs -i after the script with the script's globals", function()
    local script = tmpfile("z = 41")
    local out, code = run("-i " .. q(script), "z + 1\n")
    assert.equal(0, code)
    in_order(out, "recur> 42\n")
  end)

  it("uses a tostring error as a reported error", function()
    local out, code = run("-i", "setmetatable({}, {__tostring = function() error('bad ts') end})\n5\n")
    assert.equal(0, code)
    in_order(out, "bad ts", "recur> 5\n")
  end)

  it("honours _PROMPT and _PROMPT2", function()
    local out = run("-i", "_PROMPT = 'P> ' _PROMPT2 = 'Q> '\nif true then\nend\n")
    in_order(out, "recur> P> Q> P> \n")
  end)
end)

describe("recur signals and terminal", function()
  local has_script = os.execute("command -v script >/dev/null 2>&1")

  it("Ctrl-C interrupts a running script with an error", function()
    local dir = tmpdir()
    local marker = dir .. "/started"
    -- the marker and the loop on one line: wherever the interrupt lands after the marker
    -- exists (a busy machine may hold the process anywhere), it is on line 3
    local prog = tmpfile(([[
-- interrupted on the next line but one
local t
io.open(%q, "w"):close() t = os.clock() while os.clock() - t < 60 do end
print("not interrupted")
]]):format(marker))
    local out = sh(([[
%s %s > %s/out 2>&1 &
pid=$!
i=0
while [ ! -f %s ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done
kill -INT $pid
wait $pid
echo "status $?"
cat %s/out
]]):format(q(BIN), q(prog), q(dir), q(marker), q(dir)))
    in_order(out, "status 1\n", "recur: ", ":3: interrupted!", "stack traceback:")
    assert.falsy(out:find("not interrupted", 1, true))
  end)

  it("Ctrl-C in the REPL returns to the prompt", function()
    local dir = tmpdir()
    local marker = dir .. "/started"
    local out = sh(([[
cd %s
mkfifo in
%s -i < in > out 2>&1 &
pid=$!
exec 3> in
echo 'io.open("started", "w"):close() local t = os.clock() while os.clock() - t < 60 do end print("not interrupted")' >&3
i=0
while [ ! -f started ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done
kill -INT $pid
echo 'print("after", 6 * 7)' >&3
exec 3>&-
wait $pid
echo "status $?"
cat out
]]):format(q(dir), q(BIN)))
    assert.truthy(io.open(marker)):close()
    in_order(out, "status 0\n", "recur> ", "interrupted!", "stack traceback:", "recur> after\t42\n")
    assert.falsy(out:find("not interrupted", 1, true))
  end)

  it("uses readline on a terminal, saving history to ~/.recur_history", function()
    assert(has_script, "the script(1) program is not installed (util-linux: make deps)")
    local home = tmpdir()
    local out = sh(("printf '1+1\\nx = 3\\nx * 2\\n' | HOME=%s timeout 120 script -qec %s /dev/null"):format(q(home), q("exec " .. q(BIN))))
    in_order(out, "recur 0.1.0", "recur> ", "2\r\n", "recur> ", "recur> ", "6\r\n")
    local f = assert(io.open(home .. "/.recur_history"))
    local hist = f:read("a")
    f:close()
    assert.equal("1+1\nx = 3\nx * 2\n", hist)
    -- Ctrl-D in the middle of a chunk reports it and leaves (no hang waiting for more)
    local out2, code = sh(("printf 'for i = 1, 2 do\\n' | HOME=%s timeout 120 script -qec %s /dev/null"):format(q(home), q("exec " .. q(BIN))))
    assert.equal(0, code)
    in_order(out2, "...> ", "stdin:1: 'end' expected near <eof>")
  end)

  -- Runs `recur` on a pty (script(1)) in dir (also its HOME), driven by the shell lines
  -- `keys`: they send keys with printf ... >&3, each once the terminal shows what it waits for
  -- (until_seen TEXT N: TEXT seen on N lines; no timing guesses). Returns "status N\n" and
  -- the terminal's output. "exec": the shell that script(1) starts must leave the pty's
  -- foreground group, or a non-interactive dash (CI has no $SHELL) dies of a Ctrl-C meant for
  -- recur (status 130).
  local function on_pty(dir, keys)
    return sh(([[
cd %s
mkfifo in
HOME=%s timeout 120 script -qec %s /dev/null < in > out 2>&1 &
pid=$!
exec 3> in
until_seen() {
  i=0
  while [ "$(grep -c "$1" out)" -lt "$2" ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done
}
%s
exec 3>&-
wait $pid
echo "status $?"
cat out
]]):format(q(dir), q(dir), q("exec " .. q(BIN)), keys))
  end

  it("Ctrl-C at the terminal prompt discards the line", function()
    assert(has_script, "the script(1) program is not installed (util-linux: make deps)")
    local out = on_pty(tmpdir(), [[
until_seen 'recur> ' 1
printf 'x = 1' >&3
until_seen 'x = 1' 1
printf '\003' >&3
until_seen 'recur> ' 2
printf 'print("ok", x)\n' >&3
until_seen 'ok' 1
]])
    in_order(out, "status 0\n", "recur> ", "x = 1", "recur> ", "ok\tnil")
  end)

  it("Tab completes names on the terminal (recur.mat -> recur.matmul), indents blank lines", function()
    assert(has_script, "the script(1) program is not installed (util-linux: make deps)")
    local dir = tmpdir()
    -- The completed line is checked where readline leaves it: in the history file.
    local out = on_pty(dir, [[
until_seen 'recur> ' 1
printf 'recur.mat\t' >&3
until_seen 'matmul(' 1
printf 'recur.ones(1, 2), recur.ones(2, 1)):item() * 21\n' >&3
until_seen '42' 1
printf 'do\n' >&3
until_seen '\.\.\.> ' 1
printf '\tprint("ind" .. "ented") end\n' >&3
until_seen 'indented' 1
]])
    in_order(out, "status 0\n", "recur> ", "recur.matmul(", "42", "...> ", "indented")
    assert.falsy(out:find("\a", 1, true)) -- no bell: Tab on a blank line indents
    local f = assert(io.open(dir .. "/.recur_history"))
    local hist = f:read("a")
    f:close()
    assert.equal("recur.matmul(recur.ones(1, 2), recur.ones(2, 1)):item() * 21\n"
      .. "do\n\tprint(\"ind\" .. \"ented\") end\n", hist)
  end)
end)
