-- recur.experiment.format: how numbers, targets and tables are written, shared by the table
-- printed at run time (report.lua) and the Markdown report (tools/report.lua), and the
-- readable JSON of the results files.
local json = require "recur.json"

local format = {}

-- x with `digits` significant digits (default 6), integers as integers.
function format.number(x, digits)
  if type(x) ~= "number" then return tostring(x) end
  if x ~= x then return "nan" end
  if x == math.huge then return "inf" end
  if x == -math.huge then return "-inf" end
  if math.type(x) == "integer" then return string.format("%d", x) end
  return string.format("%." .. (digits or 6) .. "g", x)
end

-- "0.521 ± 0.0042 (n=3)": the row's recur value with its spread over seeds when it has one.
function format.recur(row)
  local v = row.recur
  if v == nil then return "-" end
  if type(v) ~= "number" then return tostring(v) end
  local s = format.number(v, row.digits)
  if row.sd then s = s .. " ± " .. format.number(row.sd, 2) end
  if row.n then s = s .. " (n=" .. format.number(row.n) .. ")" end
  return s
end

function format.target(t, digits)
  if t == nil then return "" end
  local n = function(x) return format.number(x, digits) end
  if t.near ~= nil then
    if t.rel then return n(t.near) .. " ± " .. format.number(100 * t.rel) .. "%" end
    return n(t.near) .. " ± " .. n(t.tol)
  end
  if t.range then return "[" .. n(t.range[1]) .. ", " .. n(t.range[2]) .. "]" end
  if t.max ~= nil then return "≤ " .. n(t.max) end
  if t.min ~= nil then return "≥ " .. n(t.min) end
  return "?"
end

-- The row's verdict: true/false, nil without a target (or without a number to judge).
function format.holds(t, v)
  if t == nil or type(v) ~= "number" or v ~= v then return nil end
  if t.near ~= nil then
    local tol = t.tol or (t.rel and t.rel * math.abs(t.near))
    return math.abs(v - t.near) <= tol
  end
  if t.range then return v >= t.range[1] and v <= t.range[2] end
  if t.max ~= nil then return v <= t.max end
  if t.min ~= nil then return v >= t.min end
  return nil
end

-- Checks a target's form; returns an error message or nil.
function format.check_target(t)
  if t == nil then return nil end
  if type(t) ~= "table" then return "target must be a table, got " .. type(t) end
  local function isnum(x) return type(x) == "number" and x == x end
  if t.near ~= nil then
    if not isnum(t.near) then return "target.near must be a number" end
    if not ((isnum(t.tol) and t.tol >= 0) or (isnum(t.rel) and t.rel >= 0)) then
      return "target {near = x} needs tol (absolute) or rel (relative), a number >= 0"
    end
    return nil
  end
  if t.range ~= nil then
    if type(t.range) ~= "table" or not isnum(t.range[1]) or not isnum(t.range[2]) or t.range[1] > t.range[2] then
      return "target.range must be {a, b} with a <= b"
    end
    return nil
  end
  if t.max ~= nil then return (not isnum(t.max)) and "target.max must be a number" or nil end
  if t.min ~= nil then return (not isnum(t.min)) and "target.min must be a number" or nil end
  return "target must be {near = x, tol = t} | {near = x, rel = r} | {max = x} | {min = x} | {range = {a, b}}"
end

function format.holds_text(h)
  if h == true then return "yes" end
  if h == false then return "NO" end
  return ""
end

format.columns = { "what", "recur", "post", "tag", "target", "holds", "note" }

-- The cells of one row (strings), in format.columns order.
function format.cells(row)
  return {
    row.what or "",
    format.recur(row),
    row.post ~= nil and format.number(row.post, row.digits) or "",
    row.tag or "",
    format.target(row.target, row.digits),
    format.holds_text(row.holds),
    row.note or "",
  }
end

local function width(s) return utf8.len(s) or #s end

-- The table as aligned plain text (what a script prints).
function format.text_table(t)
  local header = { "what", "recur (mean ± sd, n)", "post", "tag", "target", "holds", "note" }
  local rows = { header }
  for _, r in ipairs(t.rows) do rows[#rows + 1] = format.cells(r) end
  local w = {}
  for _, r in ipairs(rows) do
    for j, c in ipairs(r) do w[j] = math.max(w[j] or 0, width(c)) end
  end
  local out = { "== " .. (t.title or "table") .. " ==" }
  for i, r in ipairs(rows) do
    local cells = {}
    for j, c in ipairs(r) do cells[j] = c .. string.rep(" ", w[j] - width(c)) end
    out[#out + 1] = (table.concat(cells, " | "):gsub("%s+$", ""))
    if i == 1 then
      local rule = {}
      for j = 1, #w do rule[j] = string.rep("-", w[j]) end
      out[#out + 1] = table.concat(rule, "-+-")
    end
  end
  return table.concat(out, "\n")
end

local function md_cell(s) return (s:gsub("|", "\\|"):gsub("\n", " ")) end

function format.markdown_table(t)
  local out = {
    "| what | recur (mean ± sd, n) | post | tag | target | holds | note |",
    "|---|---|---|---|---|---|---|",
  }
  for _, r in ipairs(t.rows) do
    local cells = format.cells(r)
    if r.holds == false then cells[6] = "**NO**" end
    for j = 1, #cells do cells[j] = md_cell(cells[j]) end
    out[#out + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  return table.concat(out, "\n")
end

-- Shortest of %.15g, %.16g, %.17g that reads back exactly (JSON stays readable).
local function short_float(x)
  for _, d in ipairs({ 15, 16, 17 }) do
    local s = string.format("%." .. d .. "g", x)
    if tonumber(s) == x then
      if not s:find("[%.eEn]") then s = s .. ".0" end
      return s
    end
  end
end

format.short_float = short_float

-- A plain value as JSON, floats in their shortest exact form (0.1, not 0.10000000000000001).
function format.scalar(x)
  if math.type(x) == "float" and x == x and x ~= math.huge and x ~= -math.huge then return short_float(x) end
  return json.encode(x)
end

-- JSON with one key per line (sorted, as json.encode) and lists of plain values on one line,
-- so that committed results files diff well. The same data json.encode would write.
function format.json(v)
  local out = {}
  local function enc(x, ind)
    local t = type(x)
    if t == "number" and math.type(x) == "float" and x == x and x ~= math.huge and x ~= -math.huge then
      out[#out + 1] = short_float(x)
      return
    end
    if t ~= "table" or x == json.null then
      out[#out + 1] = json.encode(x)
      return
    end
    local n, count = #x, 0
    for _ in pairs(x) do count = count + 1 end
    if count == 0 then
      out[#out + 1] = "{}"
    elseif n == count then
      local flat = true
      for i = 1, n do
        if type(x[i]) == "table" and x[i] ~= json.null then flat = false break end
      end
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = flat and ", " or "," end
        if not flat then out[#out + 1] = "\n" .. ind .. "  " end
        enc(x[i], ind .. "  ")
      end
      out[#out + 1] = flat and "]" or ("\n" .. ind .. "]")
    else
      local keys = {}
      for k in pairs(x) do
        if type(k) ~= "string" then json.encode(x) end -- raises json's message
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        out[#out + 1] = (i > 1 and "," or "") .. "\n" .. ind .. "  " .. json.encode(k) .. ": "
        enc(x[k], ind .. "  ")
      end
      out[#out + 1] = "\n" .. ind .. "}"
    end
  end
  json.encode(v) -- checks everything (cycles, NaN, keys) with json's messages
  enc(v, "")
  return table.concat(out)
end

return format
