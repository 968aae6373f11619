-- recur.json: a small strict JSON encoder and decoder (checkpoint metadata, configs).
--
--   json.encode(value)  nil -> null, booleans, finite numbers (integers stay integers, floats are
--                       written with 17 significant digits so they read back exactly), strings
--                       (escaped; must be valid UTF-8), tables: a sequence 1..n becomes an array
--                       (an empty table an object), string keys an object (keys sorted, so the
--                       output is reproducible). Cycles, NaN/inf, functions, userdata and mixed
--                       or non-string keys are errors.
--   json.decode(s)      the inverse; null decodes to json.null (a unique sentinel) inside arrays
--                       and objects so that positions are kept, and to nil at the top.
-- Not lua-cjson: 2.1.0 decodes every number as a float, writes 14 digits and keys in hash order
-- (measured in docs/architecture.md, "JSON"); the Jupyter kernel, which needs none of that, uses it.
local json = {}

json.null = setmetatable({}, { __tostring = function() return "json.null" end })

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  if not utf8.len(s) then error("json.encode: string is not valid UTF-8", 0) end
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode(v, out, seen, path)
  local t = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      error("json.encode: " .. path .. " is not a finite number (" .. tostring(v) .. ")", 0)
    end
    if math.type(v) == "integer" then
      out[#out + 1] = string.format("%d", v)
    else
      local s = string.format("%.17g", v)
      if not s:find("[%.eE]") then s = s .. ".0" end
      out[#out + 1] = s
    end
  elseif t == "string" then
    out[#out + 1] = encode_string(v)
  elseif t == "table" then
    if seen[v] then error("json.encode: " .. path .. " contains a cycle", 0) end
    seen[v] = true
    local n, count, allstr = #v, 0, true
    for k in pairs(v) do
      count = count + 1
      if type(k) ~= "string" then allstr = false end
    end
    if count > 0 and n == count then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out, seen, path .. "[" .. i .. "]")
      end
      out[#out + 1] = "]"
    elseif allstr then
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode(v[k], out, seen, path .. "." .. k)
      end
      out[#out + 1] = "}"
    else
      error("json.encode: " .. path .. " mixes non-string keys with others (not an array or an object)", 0)
    end
    seen[v] = nil
  else
    error("json.encode: " .. path .. " is a " .. t .. ", which JSON cannot hold", 0)
  end
end

function json.encode(v)
  local out = {}
  encode(v, out, {}, "value")
  return table.concat(out)
end

-- decoding

local function decode_error(s, i, msg)
  error(string.format("json.decode: %s at byte %d", msg, i), 0)
end

local function skip(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

local decode_value

local function decode_string(s, i)
  -- s:sub(i, i) == '"'
  local parts, j = {}, i + 1
  while true do
    local k = s:find('["\\%c]', j)
    if not k then decode_error(s, i, "unterminated string") end
    parts[#parts + 1] = s:sub(j, k - 1)
    local c = s:sub(k, k)
    if c == '"' then
      local r = table.concat(parts)
      if not utf8.len(r) then decode_error(s, i, "string is not valid UTF-8") end
      return r, k + 1
    elseif c == "\\" then
      local e = s:sub(k + 1, k + 1)
      local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
      if simple[e] then
        parts[#parts + 1] = simple[e]
        j = k + 2
      elseif e == "u" then
        local hex = s:sub(k + 2, k + 5)
        if not hex:match("^%x%x%x%x$") then decode_error(s, k, "bad \\u escape") end
        local cp = tonumber(hex, 16)
        j = k + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = s:match("^\\u(%x%x%x%x)", j)
          lo = lo and tonumber(lo, 16)
          if not lo or lo < 0xDC00 or lo > 0xDFFF then decode_error(s, k, "unpaired surrogate") end
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
          j = j + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          decode_error(s, k, "unpaired surrogate")
        end
        parts[#parts + 1] = utf8.char(cp)
      else
        decode_error(s, k, "bad escape")
      end
    else
      decode_error(s, k, "control character in a string")
    end
  end
end

local function decode_number(s, i)
  local j = i
  if s:sub(j, j) == "-" then j = j + 1 end
  local int = s:match("^0", j) or s:match("^[1-9]%d*", j)
  if not int then decode_error(s, i, "bad number") end
  j = j + #int
  local isfloat = false
  local frac = s:match("^%.%d+", j)
  if frac then j, isfloat = j + #frac, true end
  local exp = s:match("^[eE][-+]?%d+", j)
  if exp then j, isfloat = j + #exp, true end
  local text = s:sub(i, j - 1)
  local v = tonumber(text)
  if v == math.huge or v == -math.huge then decode_error(s, i, "number out of range") end
  if not isfloat then v = math.tointeger(v) or v end
  return v, j
end

function decode_value(s, i, depth)
  if depth > 200 then decode_error(s, i, "nesting too deep") end
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local obj = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return obj, i + 1 end
    while true do
      if s:sub(i, i) ~= '"' then decode_error(s, i, "expected a string key") end
      local k
      k, i = decode_string(s, i)
      if obj[k] ~= nil then decode_error(s, i, "duplicate key " .. string.format("%q", k)) end
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then decode_error(s, i, "expected ':'") end
      local v
      v, i = decode_value(s, i + 1, depth + 1)
      obj[k] = v
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "}" then return obj, i + 1 end
      if d ~= "," then decode_error(s, i, "expected ',' or '}'") end
      i = skip(s, i + 1)
    end
  elseif c == "[" then
    local arr = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return arr, i + 1 end
    while true do
      local v
      v, i = decode_value(s, i, depth + 1)
      arr[#arr + 1] = v
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "]" then return arr, i + 1 end
      if d ~= "," then decode_error(s, i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then
    return decode_string(s, i)
  elseif s:sub(i, i + 3) == "true" then
    return true, i + 4
  elseif s:sub(i, i + 4) == "false" then
    return false, i + 5
  elseif s:sub(i, i + 3) == "null" then
    return json.null, i + 4
  elseif c:match("[-%d]") then
    return decode_number(s, i)
  elseif c == "" then
    decode_error(s, i, "unexpected end of input")
  end
  decode_error(s, i, "unexpected character " .. string.format("%q", c))
end

function json.decode(s)
  if type(s) ~= "string" then error("json.decode: expected a string, got " .. type(s), 2) end
  local v, i = decode_value(s, 1, 0)
  i = skip(s, i)
  if i <= #s then decode_error(s, i, "unexpected data after the value") end
  if v == json.null then return nil end
  return v
end

return json
