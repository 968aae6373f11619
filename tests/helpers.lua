-- Shared helpers for the busted specs: require "tests.helpers" from the project root.
local recur = require "recur"
local assert = require "luassert"
local H = {}

-- ---- errors and messages ----

-- Runs f(...) expecting an error; returns the message as a string.
function H.err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- Asserts that string s contains every plain (not pattern) string given; returns s.
function H.has(s, ...)
  for _, needle in ipairs({ ... }) do
    assert(s:find(needle, 1, true), string.format("%q lacks %q", s, needle))
  end
  return s
end

-- Asserts that calling f raises an error whose message contains every plain string given;
-- returns the message.
function H.fails_with(f, ...)
  return H.has(H.err_of(f), ...)
end

-- ---- values ----

-- The numbers of a tensor, a nested table or a number, flattened in order.
function H.flat(t)
  local out = {}
  local function walk(x)
    if type(x) == "number" then
      out[#out + 1] = x
    else
      for i = 1, #x do walk(x[i]) end
    end
  end
  walk(recur.is_tensor(t) and t:totable() or t)
  return out
end

-- Asserts that a tensor (or nested table, or number) matches `expected` (same nesting) within
-- a relative tolerance: |e - a| <= tol * max(1, |e|) (default 1e-5). Equal values (infinities
-- too) and NaN against NaN match.
function H.near(expected, actual, tol)
  tol = tol or 1e-5
  local function walk(e, a, path)
    if type(e) == "number" then
      assert(type(a) == "number", string.format("at %s: expected %.7g, got %s", path, e, tostring(a)))
      assert(e == a or (e ~= e and a ~= a) or math.abs(e - a) <= tol * math.max(1, math.abs(e)),
        string.format("at %s: expected %.7g, got %.7g", path, e, a))
    else
      assert.equal(#e, #a, "length at " .. path)
      for i = 1, #e do walk(e[i], a[i], path .. "[" .. i .. "]") end
    end
  end
  walk(expected, recur.is_tensor(actual) and actual:totable() or actual, "")
end

-- H.near on the flattened numbers of both (any nesting; only the counts must agree).
function H.near_flat(expected, actual, tol)
  H.near(H.flat(expected), H.flat(actual), tol)
end

-- Asserts that the list `actual` matches the list `expected` within an absolute tolerance
-- (default 1e-6).
function H.near_abs(expected, actual, tol)
  tol = tol or 1e-6
  assert.equal(#expected, #actual)
  for i = 1, #expected do
    assert(math.abs(expected[i] - actual[i]) <= tol,
      string.format("at %d: expected %.7g, got %.7g", i, expected[i], actual[i]))
  end
end

-- ---- files and programs ----

-- s quoted for the shell.
function H.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command line; returns its output (stdout and stderr) and its exit code.
function H.sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1", "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

function H.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- A new empty directory /tmp/<prefix>XXXXXX (default prefix "recur_test_"); remove it with
-- H.rm_rf.
function H.tmpdir(prefix)
  local p = assert(io.popen("mktemp -d /tmp/" .. (prefix or "recur_test_") .. "XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir:match("^/tmp/."), "mktemp -d failed")
  return dir
end

-- Removes a file or directory tree under /tmp (anything else is left alone).
function H.rm_rf(path)
  if path and path:match("^/tmp/.") then os.execute("rm -rf " .. H.q(path)) end
end

return H
