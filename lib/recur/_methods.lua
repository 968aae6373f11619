-- recur._methods: checked methods for the Lua classes of the library (internal).
--
-- The classic Lua mistake m.forward(x) (a dot for a colon), or a method called with the wrong
-- self, used to fail deep inside the method ("attempt to index a number value (local
-- 'self')"). A checked method tests its self first, with one cheap predicate, and otherwise
-- raises at the caller's line:
--   Module:parameters: called with nil as self, not a module (use m:parameters(), not m.parameters())
-- then calls the method as a tail call (error levels and results are the method's own).
--
-- What counts as a method: a Lua function whose first parameter is named self (function
-- Class:name(...) defines one). recur._nn.method_arity tells, from C (it works where the
-- debug library is absent, e.g. in the sandbox), and how many arguments follow self. Other
-- functions stored in a class table (Vocab.build, metamethods "__*") are left as they are.
--
-- recur.nn's class tables check every method assigned to them (Module:extend installs the
-- hook, so a script's own classes get it too); the other classes (recur.data.Vocab, the
-- iterators, rnn.LuaCell, the fused cells' Lua methods) run wrap_all once they are built.
local C = require("recur")._nn

local M = {}

-- v for a message: "nil", "a number", "a tensor", "a module (Linear)", ...
local function describe(v)
  if v == nil then return "nil" end
  local recur = require "recur"
  if recur.is_tensor(v) then return "a tensor" end
  if type(v) == "table" then
    if rawget(v, "_is_module") == true then return "a module (" .. tostring(v._class_name) .. ")" end
    if rawget(v, "__index") == v and rawget(v, "_class_name") then
      return "the class " .. tostring(rawget(v, "_class_name"))
    end
  end
  local ok, mt = pcall(getmetatable, v)
  local name = ok and type(mt) == "table" and rawget(mt, "__name")
  if type(name) == "string" then return "a " .. name end
  local t = type(v)
  return (t:match("^[aeiou]") and "an " or "a ") .. t
end
M.describe = describe

-- The checked function g for f: g(self, ...) = f(self, ...) once self's metatable is mt (an
-- instance of exactly the class: one comparison) or is_self(self). With the same fixed
-- parameters as f when it has at most 3 and no `...` (a vararg wrapper costs about twice as
-- much per call).
local makers = {
  [0] = function(f, ok, bad, mt)
    return function(self)
      if getmetatable(self) ~= mt and not ok(self) then bad(self) end
      return f(self)
    end
  end,
  [1] = function(f, ok, bad, mt)
    return function(self, a)
      if getmetatable(self) ~= mt and not ok(self) then bad(self) end
      return f(self, a)
    end
  end,
  [2] = function(f, ok, bad, mt)
    return function(self, a, b)
      if getmetatable(self) ~= mt and not ok(self) then bad(self) end
      return f(self, a, b)
    end
  end,
  [3] = function(f, ok, bad, mt)
    return function(self, a, b, c)
      if getmetatable(self) ~= mt and not ok(self) then bad(self) end
      return f(self, a, b, c)
    end
  end,
  vararg = function(f, ok, bad, mt)
    return function(self, ...)
      if getmetatable(self) ~= mt and not ok(self) then bad(self) end
      return f(self, ...)
    end
  end,
}

-- checked function -> the function it checks (Module.__call, which always has the right
-- self, calls forward through it: no check on the hot path)
M.unchecked = setmetatable({}, { __mode = "k" })

-- The method name(...) of class `cls` (its name in messages), as a checked function.
-- is_self(v): true when v may be self; what: what self must be ("a module"); var: the name
-- of an instance in the hint ("m"); mt (optional): the metatable of the usual self (the
-- class table), tested first. Returns f itself when f is not a method.
local NONE = {} -- no value's metatable
function M.method(f, cls, name, is_self, what, var, mt)
  if type(f) ~= "function" then return f end
  f = M.unchecked[f] or f -- an alias (Module.flatten = Module.flat_parameters): its own name
  local nargs, vararg = C.method_arity(f)
  if not nargs then return f end
  local args = (nargs > 0 or vararg) and "..." or ""
  local function bad(self)
    error(string.format("%s:%s: called with %s as self, not %s (use %s:%s(%s), not %s.%s(%s))",
      cls, name, describe(self), what, var, name, args, var, name, args), 3)
  end
  local g = (not vararg and makers[nargs] or makers.vararg)(f, is_self, bad, mt or NONE)
  M.unchecked[g] = f
  return g
end

-- Checks every method of the table t in place (see M.method).
function M.wrap_all(t, cls, is_self, what, var, mt)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" and not k:match("^__") then keys[#keys + 1] = k end
  end
  for _, k in ipairs(keys) do t[k] = M.method(t[k], cls, k, is_self, what, var, mt) end
  return t
end

return M
