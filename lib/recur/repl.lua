-- Helpers of the `recur` REPL (bindings/recur_cli.c): the candidates of readline's Tab
-- completion. Kept here, in Lua, so that busted tests them without a terminal.
--
-- repl.complete(text [, env]) -> matches, kinds
--   text is the word before the cursor: `name`, `a.b.c` or `a.b:c` (the last part may be
--   empty or partial). matches is a sorted list of completed words (text with its last part
--   completed), kinds[i] the type of matches[i]'s value ("function", "table", ...; "keyword"
--   for Lua keywords, "field" for a tensor property whose value is not looked at).
--   env is the global table (default _G). Any text is fine: what is not a name, a field or a
--   method path gives no matches.
--
-- Completion never runs user code: every lookup is raw (rawget, next, debug.getmetatable),
-- __index chains are followed only through tables, and an __index that is a function is not
-- called (it could do anything; nn's lazy recur.nn.RNN alias or a proxy's __index are not
-- completed until their value exists). Two things of recur's own are special-cased, as their
-- __index is C or a loader:
--   * a tensor (recur.is_tensor) completes with recur.Tensor's methods and, after `.`, the
--     properties that bindings/tensor.c's __index serves (grad, grad_fn, is_leaf, shape);
--   * recur's own submodules (recur.nn, recur.data ...) are offered before they are loaded,
--     and `recur.nn.<Tab>` loads recur.nn (what typing recur.nn would do anyway).
-- A metatable is read through getmetatable first (recur's userdata show their methods there,
-- behind __metatable), else raw. Names starting with `_` (internals, metamethods) are offered
-- only when the typed part starts with `_`; after `:` only functions are offered.
local recur = require "recur"
local is_tensor = recur.is_tensor -- taken now: a later recur.is_tensor = f is not called
-- the real metatable (a sandbox without `debug` gets the public one only)
local raw_metatable = type(debug) == "table" and debug.getmetatable or getmetatable

local repl = {}

local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
}
local is_keyword = {}
for _, k in ipairs(KEYWORDS) do is_keyword[k] = true end

-- Properties served by the tensor __index after the methods (bindings/tensor.c, m_index).
local TENSOR_PROPERTIES = { "grad", "grad_fn", "is_leaf", "shape" }

local MAX_CHAIN = 32 -- __index tables followed from one value (cycles are cut too)

local function is_name(s)
  return type(s) == "string" and s:find("^[%a_][%w_]*$") ~= nil and not is_keyword[s]
end

-- The tables whose raw keys a value offers, in lookup order: the value itself when it is a
-- table, then the __index tables of its metatable chain.
local function index_tables(v)
  local out, seen = {}, {}
  if type(v) == "userdata" and is_tensor(v) then
    v = rawget(recur, "Tensor")
    if type(v) ~= "table" then return out end
  end
  local cur = v
  for _ = 1, MAX_CHAIN do
    if type(cur) == "table" then
      if seen[cur] then break end
      seen[cur] = true
      out[#out + 1] = cur
    end
    -- the public metatable first: recur's userdata show their methods through it
    local mt = getmetatable(cur)
    if type(mt) ~= "table" then mt = raw_metatable(cur) end
    if type(mt) ~= "table" then break end
    local idx = rawget(mt, "__index")
    if type(idx) ~= "table" then break end
    cur = idx
  end
  return out
end

-- Lazy submodules of recur: package.preload["recur.NAME"] (one level only).
local function submodule_names()
  local names = {}
  local preload = type(package) == "table" and rawget(package, "preload")
  if type(preload) ~= "table" then return names end
  for k in next, preload do
    local name = type(k) == "string" and k:match("^recur%.([%a_][%w_]*)$")
    if name then names[#names + 1] = name end
  end
  return names
end

local function is_recur(v) return rawequal(v, recur) end

-- v[k] without running user code: raw lookups along the __index tables; nil if not found.
local function lookup(v, k)
  for _, t in ipairs(index_tables(v)) do
    local r = rawget(t, k)
    if r ~= nil then return r end
  end
  if is_recur(v) and type(k) == "string" then
    local preload = type(package) == "table" and rawget(package, "preload")
    if type(preload) == "table" and rawget(preload, "recur." .. k) ~= nil then
      local ok, m = pcall(require, "recur." .. k)
      if ok then return m end
    end
  end
  return nil
end

-- Adds the names of v's fields (methods only when `colon`) that start with prefix.
local function add_fields(v, prefix, colon, add)
  local tensor = type(v) == "userdata" and is_tensor(v)
  for _, t in ipairs(index_tables(v)) do
    for k, val in next, t do
      if not colon or type(val) == "function" then add(k, type(val)) end
    end
  end
  if colon then return end
  if tensor then
    for _, k in ipairs(TENSOR_PROPERTIES) do add(k, "field") end
  end
  if is_recur(v) then
    for _, k in ipairs(submodule_names()) do add(k, "table") end
  end
end

function repl.complete(text, env)
  if type(text) ~= "string" then
    error("repl.complete: text must be a string, got " .. type(text), 2)
  end
  if env ~= nil and type(env) ~= "table" then
    error("repl.complete: env must be a table or nil, got " .. type(env), 2)
  end
  env = env or _G
  local matches, kinds = {}, {}
  -- a.b.c:d -> path {a, b, c}, separator ":", last "d"
  local head, sep, last = text:match("^(.-)([.:])([%w_]*)$")
  if not head then
    if not text:find("^[%w_]*$") then return matches, kinds end
    head, sep, last = nil, nil, text
  end
  local v = env
  if head then
    if head == "" then return matches, kinds end
    for part in (head .. "."):gmatch("(.-)%.") do
      if not is_name(part) then return matches, kinds end
      v = lookup(v, part)
      if v == nil then return matches, kinds end
    end
  end
  local seen = {}
  local hidden = last:sub(1, 1) ~= "_" -- _private and __meta names only when asked for
  local base = head and head .. sep or ""
  local function add(k, kind)
    if is_name(k) and not seen[k] and k:sub(1, #last) == last
        and not (hidden and k:sub(1, 1) == "_") then
      seen[k] = true
      matches[#matches + 1] = k
      kinds[k] = kind
    end
  end
  add_fields(v, last, sep == ":", add)
  if not head then
    for _, k in ipairs(KEYWORDS) do
      if k:sub(1, #last) == last and not seen[k] then
        seen[k] = true
        matches[#matches + 1] = k
        kinds[k] = "keyword"
      end
    end
  end
  table.sort(matches)
  local kind_list = {}
  for i, k in ipairs(matches) do
    kind_list[i] = kinds[k]
    matches[i] = base .. k
  end
  return matches, kind_list
end

return repl
