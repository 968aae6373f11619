-- scripts/args.lua, the scripts' command line over lua-argparse: types, defaults and .given,
-- --name=value and negative values, flags, exclusive options, the help, and the errors (usage,
-- "Error: ..." naming the option, exit status 2), each through a script run by the recur program.
local H = require "tests.helpers"
local q, sh, has = H.q, H.sh, H.has

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local ROOT = sh("pwd"):match("[^\n]+")
if not BIN:find("^/") then BIN = ROOT .. "/" .. BIN end

local dir = H.tmpdir("recur_args_")
teardown(function() H.rm_rf(dir) end)

-- a script that parses its command line with SPEC and prints the result, one key per line
local SPEC = [[{
  name = "recur t.lua",
  about = "A test of the parser.",
  epilog = "The end of the help.",
  { "data", "file", nil, "a file" },
  { "hidden", "int", 128, "units per layer" },
  { "lr", "number", 2e-3, "learning rate" },
  { "cell", { "lstm", "gru" }, "lstm", "cell type" },
  { "quiet", "flag", false, "print less" },
  { "loud", "flag", false, "print more" },
  { "init-state", "text", "zero", "a dashed name" },
  exclusive = { { "quiet", "loud" } },
}]]
local script = dir .. "/t.lua"
H.write_file(script, [[
local a = require("scripts.args").parse(arg, ]] .. SPEC .. [[)
local keys = {}
for k in pairs(a) do if k ~= "given" then keys[#keys + 1] = k end end
table.sort(keys)
for _, k in ipairs(keys) do
  io.write(k, "=", tostring(a[k]), " ", math.type(a[k]) or type(a[k]), a.given[k] and " given" or "", "\n")
end
]])
local function run(args) return sh(q(BIN) .. " " .. q(script) .. " " .. args) end

describe("scripts/args.lua", function()
  it("gives the defaults, typed, with nothing given", function()
    local out, code = run("")
    assert.equal(0, code, out)
    assert.equal(table.concat({ "cell=lstm string", "hidden=128 integer", "init_state=zero string",
      "loud=false boolean", "lr=0.002 float", "quiet=false boolean", "" }, "\n"), out)
  end)

  it("takes --name value, --name=value, negative numbers and flags, and marks them given", function()
    local out, code = run("--data x.txt --hidden=64 --lr -1e-3 --cell gru --quiet --init-state noisy")
    assert.equal(0, code, out)
    assert.equal(table.concat({ "cell=gru string given", "data=x.txt string given", "hidden=64 integer given",
      "init_state=noisy string given", "loud=false boolean", "lr=-0.001 float given",
      "quiet=true boolean given", "" }, "\n"), out)
    out = run("--hidden -3 --hidden 5")
    has(out, "hidden=5 integer given") -- the last one counts
    out = run("--init-state '-- so' --data -")
    has(out, "init_state=-- so string given", "data=- string given")
    out = run("--hidden 1e3 --lr 2")
    has(out, "hidden=1000 integer given", "lr=2 integer given")
  end)

  it("refuses a wrong command line with the usage, the option and status 2", function()
    for _, case in ipairs({
      { "--frobnicate", "Error: unknown option '--frobnicate'" },
      { "--hidden two", "Error: --hidden must be an integer, got 'two'" },
      { "--hidden 1.5", "Error: --hidden must be an integer, got '1.5'" },
      { "--lr nan", "Error: --lr must be a number, got 'nan'" },
      { "--cell rnn", "Error: argument for option '--cell' must be one of 'lstm', 'gru'" },
      { "--hidden", "Error: option '--hidden' requires an argument" },
      { "--data --hidden 3", "Error: option '--data' requires an argument" },
      { "--quiet=1", "Error: option '--quiet' does not take arguments" },
      { "--quiet --loud", "Error: option '--loud' can not be used together with option '--quiet'" },
      { "stray", "Error: too many arguments" },
    }) do
      local out, code = run(case[1])
      assert.equal(2, code, case[1] .. ": " .. out)
      assert.truthy(out:find("^Usage: recur t%.lua .*%[%-h%]"), case[1] .. ": " .. out)
      has(out, case[2])
    end
  end)

  it("--help and -h print the usage, the options with their defaults and the epilog, status 0", function()
    for _, flag in ipairs({ "--help", "-h", "--hidden 3 --help" }) do
      local out, code = run(flag)
      assert.equal(0, code, out)
      assert.truthy(out:find("^Usage: recur t%.lua .*%[%-h%]"), out)
      has(out, "A test of the parser.", "Options:", "-h, --help", "--data <file>",
        "--hidden <int>", "units per layer (default: 128)", "--lr <number>", "(default: 0.002)",
        "--cell {lstm,gru}", "([--quiet] | [--loud])", "--init-state <text>", "The end of the help.")
      assert.falsy(out:find("print less (default", 1, true), out) -- a flag shows no default
    end
  end)

  it("help() returns the same text; an older spec's usage still names the program", function()
    local args = require "scripts.args"
    local spec = assert(load("return " .. SPEC))()
    local text = args.help(spec)
    has(text, "Usage: recur t.lua ([--quiet] | [--loud]) [-h]", "units per layer (default: 128)")
    spec.name = nil
    spec.usage = "recur scripts/old.lua --data FILE [options]"
    has(args.help(spec), "Usage: recur scripts/old.lua ([--quiet] | [--loud]) [-h]")
    spec.exclusive = { { "quiet", "nothing" } }
    has(H.err_of(args.parser, spec), "args: exclusive names --nothing, which is not an option")
  end)

  it("duration formats seconds", function()
    local args = require "scripts.args"
    assert.same({ "0s", "12s", "3m05s", "1h02m", "?" },
      { args.duration(-1), args.duration(12.4), args.duration(185), args.duration(3720), args.duration(0 / 0) })
  end)
end)
