-- Checked methods (lib/recur/_methods.lua): the classic m.forward(x) /
-- m.parameters() (a dot for a colon) and a method called with the wrong self name the method
-- and say what self must be, at the caller's line; right calls are unchanged (results,
-- argument counts, error levels), functions that are not methods are left alone.
-- tests/bad_input_more_spec.lua sweeps every method with wrong selves.
local recur = require "recur"
local nn, rnn, data = recur.nn, recur.rnn, recur.data

local H = require "tests.helpers"
local err_of = H.err_of

local THIS = debug.getinfo(1, "S").short_src

-- the message of f's error and the line it names (nil when it names no position)
local function msg_line(f)
  local e = err_of(f)
  local file, line, rest = e:match("^([^:\n]*):(%d+): (.*)$")
  if file then return rest, tonumber(line), file end
  return e
end

describe("checked methods", function()
  it("a module's methods called with a dot name themselves, at the caller's line", function()
    local m = nn.Linear(3, 2)
    local x = recur.ones(4, 3)
    local line = debug.getinfo(1, "l").currentline + 1
    local msg, at, file = msg_line(function() local r = m.parameters() return r end)
    assert.equal("Module:parameters: called with nil as self, not a module "
      .. "(use m:parameters(), not m.parameters())", msg)
    assert.equal(line, at)
    assert.equal(THIS, file)
    assert.equal("Linear:forward: called with a tensor as self, not a Linear "
      .. "(use m:forward(...), not m.forward(...))", (msg_line(function() return m.forward(x) end)))
    assert.equal("Module:zero_grad: called with a number as self, not a module "
      .. "(use m:zero_grad(), not m.zero_grad())", (msg_line(function() return m.zero_grad(3) end)))
    -- an alias names itself
    assert.equal("Module:flatten: called with a table as self, not a module "
      .. "(use m:flatten(), not m.flatten())", (msg_line(function() return m.flatten({}) end)))
    -- a subclass's method needs an instance of it; Module's own methods take any module
    assert.equal("Linear:forward: called with a module (Tanh) as self, not a Linear "
      .. "(use m:forward(...), not m.forward(...))",
      (msg_line(function() return nn.Linear.forward(nn.Tanh(), x) end)))
    assert.equal(2, #nn.Module.parameters(m))
    -- class methods need a class
    assert.equal("Module:extend: called with a module (Linear) as self, not a module class "
      .. "(use Class:extend(...), not Class.extend(...))", (msg_line(function() return m:extend("X") end)))
    assert.equal("Module:new: called with nil as self, not a module class "
      .. "(use Class:new(...), not Class.new(...))", (msg_line(function() return nn.Linear.new() end)))
    -- right calls work as before
    assert.same({ 4, 2 }, m:forward(x):size())
    assert.same({ 4, 2 }, m(x):size())
  end)

  it("a script's own classes get checked methods; other functions stay as they are", function()
    local Net = nn.Module:extend("Net")
    function Net:init(k) self.k = k end
    function Net:forward(x) return x * self.k end
    function Net:count(...) return select("#", ...), ... end
    function Net:three(a, b, c) return c, b, a end
    function Net.helper(a, b) return a + b end -- not a method: its first parameter is not self
    local Child = Net:extend("Child")
    function Child:forward(x) return Net.forward(self, x) + 1 end -- a call to the parent's
    local n, c = Net(2), Child(3)
    assert.equal("Net:forward: called with a tensor as self, not a Net "
      .. "(use m:forward(...), not m.forward(...))", (msg_line(function() return n.forward(recur.ones(1)) end)))
    assert.equal("Net:count: called with a number as self, not a Net "
      .. "(use m:count(...), not m.count(...))", (msg_line(function() return n.count(1, 2) end)))
    assert.equal(5, Net.helper(2, 3))
    assert.equal(7, c(recur.full({ 1 }, 2)):item()) -- 2 * 3 + 1
    assert.equal(4, n(recur.full({ 1 }, 2)):item())
    -- argument counts, nils and several results pass through unchanged
    assert.same({ 3, nil, nil, 5 }, { n:count(nil, nil, 5) })
    assert.same({ 0 }, { n:count() })
    assert.same({ 3, nil, 1 }, { n:three(1, nil, 3) })
    -- a method's own errors keep their level: blamed on the caller of the method
    local Bad = nn.Module:extend("Bad")
    function Bad:check(v) if v == nil then error("Bad:check: v is required", 2) end return v end
    local b = Bad()
    local line = debug.getinfo(1, "l").currentline + 1
    local msg, at = msg_line(function() local r = b:check() return r end)
    assert.equal("Bad:check: v is required", msg)
    assert.equal(line, at)
  end)

  it("vocabularies, iterators and recurrent cells name their methods", function()
    local v = data.Vocab.build("abcab")
    assert.equal("Vocab:encode: called with a string as self, not a vocabulary "
      .. "(use vocab:encode(...), not vocab.encode(...))", (msg_line(function() return v.encode("ab") end)))
    assert.equal("Vocab:size: called with nil as self, not a vocabulary "
      .. "(use vocab:size(), not vocab.size())", (msg_line(function() return v.size() end)))
    assert.equal(3, v:size())
    assert.same({ 1, 2 }, v:encode("ab"):totable())
    local it = data.lm_batches(recur.arange(1, 41), { batch = 2, steps = 3 })
    local other = data.lm_batches(recur.arange(1, 41), { batch = 2, steps = 3 })
    assert.equal("iterator:next: called with nil as self, not this iterator "
      .. "(use it:next(), not it.next())", (msg_line(function() return it.next() end)))
    -- an iterator's own methods take that iterator only
    assert.equal("iterator:next: called with a table as self, not this iterator "
      .. "(use it:next(), not it.next())", (msg_line(function() return it.next(other) end)))
    assert.equal("iterator:reset: called with a number as self, not a batch iterator "
      .. "(use it:reset(), not it.reset())", (msg_line(function() return it.reset(1) end)))
    local x = it:next()
    assert.same({ 3, 2 }, x:size())
    local cell = rnn.Cell { cell = "lstm", input = 3, hidden = 2 }
    local xs = recur.ones(2, 1, 3)
    assert.equal("rnn.Cell:forward: called with a tensor as self, not an rnn cell "
      .. "(use cell:forward(...), not cell.forward(...))", (msg_line(function() return cell.forward(xs) end)))
    assert.same({ 2, 1, 2 }, (cell:forward(xs)):size())
    local lc = rnn.LuaCell(require "tests.oracles.cells.gru", { input = 3, hidden = 2 })
    assert.equal("rnn.LuaCell:step: called with a tensor as self, not an rnn.LuaCell "
      .. "(use cell:step(...), not cell.step(...))", (msg_line(function() return lc.step(xs:select(1, 1)) end)))
    assert.same({ 1, 2 }, (lc:step(xs:select(1, 1))):size())
  end)
end)
