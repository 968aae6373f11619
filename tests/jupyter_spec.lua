-- The Jupyter kernel (`recur --kernel`, lib/recur/kernel.lua): Debian's jupyter_client talks
-- to it and nbclient executes examples/notebooks/rnn1_toy.ipynb, both driven by
-- tests/jupyter_kernel_test.py (the checks are listed there). `make deps` installs
-- python3-jupyter-client and python3-nbclient, so nothing here is skipped.
local H = require "tests.helpers"
local q = H.q

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local PYTHON = "/usr/bin/python3" -- Debian's: the one its python3-* packages are for

-- Runs the client script; its output goes to a file, not to a pipe, so that a kernel left
-- behind by a failure cannot keep this waiting. timeout only bounds a hang.
local function client(what)
  local dir = H.tmpdir("recur_jupyter_")
  local out = dir .. "/client.out"
  local cmd = ("cd %s && timeout -k 10 600 %s tests/jupyter_kernel_test.py %s %s %s >%s 2>&1; echo $?")
    :format(q(os.getenv("PWD") or "."), PYTHON, q(BIN), q(dir .. "/work"), what, q(out))
  local p = assert(io.popen(cmd))
  local code = tonumber(p:read("l"))
  p:close()
  local text = H.read_file(out)
  local log = io.open(dir .. "/work/kernel.log")
  if log then
    text = text .. "\n-- kernel log --\n" .. log:read("a")
    log:close()
  end
  H.rm_rf(dir)
  return code, text
end

describe("the Jupyter kernel", function()
  it("answers a jupyter_client: cells, completion, inspect, errors, interrupt, restart, bad messages", function()
    local code, text = client("kernel")
    assert.are.equal(0, code, text)
    assert.truthy(text:find("ok: endless loop interrupted", 1, true), text)
    assert.truthy(text:find("ok: a wrong signature runs no code", 1, true), text)
    assert.truthy(text:find("ok: shutdown", 1, true), text)
  end)

  it("executes examples/notebooks/rnn1_toy.ipynb headless with nbclient", function()
    local code, text = client("notebook")
    assert.are.equal(0, code, text)
    assert.truthy(text:find("ok: learning-curve figure inline", 1, true), text)
  end)

  it("refuses a bad command line", function()
    local out, code = H.sh(q(BIN) .. " --kernel")
    assert.are_not.equal(0, code)
    assert.truthy(out:find("usage: recur --kernel CONNECTION_FILE", 1, true), out)
    out, code = H.sh(q(BIN) .. " --kernel /nonexistent/connection.json")
    assert.are_not.equal(0, code)
    assert.truthy(out:find("cannot read /nonexistent/connection.json", 1, true), out)
    out, code = H.sh(q(BIN) .. " --install-kernel --bogus")
    assert.are_not.equal(0, code)
    assert.truthy(out:find("unknown option --bogus", 1, true), out)
  end)
end)
