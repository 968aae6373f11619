-- Shared helpers for the busted specs: require "tests.helpers" from the project root.
local recur = require "recur"
local assert = require "luassert"
local H = {}

-- Runs f(...) expecting an error; returns the message as a string.
function H.err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- Asserts that a tensor (or nested table) matches `expected` within a relative tolerance.
function H.near(expected, actual, tol)
  tol = tol or 1e-5
  local function walk(e, a, path)
    if type(e) == "number" then
      assert(math.abs(e - a) <= tol * math.max(1, math.abs(e)),
        string.format("at %s: expected %.7g, got %.7g", path, e, a))
    else
      assert.equal(#e, #a, "length at " .. path)
      for i = 1, #e do walk(e[i], a[i], path .. "[" .. i .. "]") end
    end
  end
  walk(expected, recur.is_tensor(actual) and actual:totable() or actual, "")
end

return H
