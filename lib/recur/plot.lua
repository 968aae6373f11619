-- recur.plot: PNG figures through gnuplot (pngcairo when this gnuplot has it, else png).
--
--   plot.lines{file, title, xlabel, ylabel, logx, logy, series = {{name, x, y}, ...}}
--   plot.histograms{file, title, xlabel, ylabel, bins = 30, density = false, kde = false,
--                   series = {{name, values}, ...}}   -- one range and bin width for all series
--   plot.images{file, title, cols = 10, images = {{h, w, pixels (row-major, 0..1)} | 2-D tensor
--               | a 3-D tensor [n, h, w]}}
--   plot.available() -> true, or false and why
--
-- Each returns true, or false plus a message when gnuplot is missing or fails (the caller
-- still has its numbers); bad arguments raise. The PNG is written beside `file` and renamed
-- onto it, so a failed or interrupted plot leaves no half-written figure.
local stats = require "recur.experiment.stats"

local plot = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- a gnuplot string literal (single quotes: no escapes but '' for ')
local function gq(s) return "'" .. tostring(s):gsub("'", "''") .. "'" end

local function sh_ok(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

-- Looked up on every call (PATH may change between calls, as in the tests).
function plot.available()
  if sh_ok("command -v gnuplot >/dev/null 2>&1") then return true end
  return false, "gnuplot is not on PATH (install gnuplot-nox, e.g. `make deps`): no figure written"
end

local function terminal()
  if sh_ok("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") then return "pngcairo" end
  return "png"
end

local function tmpdir()
  local p = io.popen("mktemp -d 2>/dev/null")
  local d = p and p:read("l")
  if p then p:close() end
  return d
end

local function write(path, s)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:write(s)
  f:close()
  return true
end

local function num(x)
  if x ~= x then return "NaN" end
  if x == math.huge then return "Inf" end
  if x == -math.huge then return "-Inf" end
  return string.format("%.9g", x)
end

local function check_file(fname, o)
  if type(o) ~= "table" then error("plot." .. fname .. ": expected a table of options, got " .. type(o), 3) end
  if type(o.file) ~= "string" or o.file == "" then
    error("plot." .. fname .. ": file must be a path string, got " .. tostring(o.file), 3)
  end
end

local function check_series(fname, series, fields)
  if type(series) ~= "table" or #series == 0 then
    error("plot." .. fname .. ": series must be a non-empty list, got " .. (type(series) == "table" and "an empty table" or type(series)), 3)
  end
  for i, s in ipairs(series) do
    if type(s) ~= "table" then error(string.format("plot.%s: series[%d] is a %s, not a table", fname, i, type(s)), 3) end
    for _, f in ipairs(fields) do
      if type(s[f]) ~= "table" then
        error(string.format("plot.%s: series[%d].%s must be a list of numbers, got %s", fname, i, f, type(s[f])), 3)
      end
      for j = 1, #s[f] do
        if type(s[f][j]) ~= "number" then
          error(string.format("plot.%s: series[%d].%s[%d] is a %s, not a number", fname, i, f, j, type(s[f][j])), 3)
        end
      end
    end
  end
end

-- Runs the gnuplot script (the data files it reads are in dir), output into o.file atomically.
local function render(o, dir, header, body, size)
  local ok, why = plot.available()
  if not ok then return false, why end
  local term = terminal()
  local out = o.file .. ".tmp.png"
  local lines = {
    string.format("set terminal %s size %d,%d", term, size[1], size[2]),
    "set termoption noenhanced",
    "set output " .. gq(out),
  }
  if o.title then lines[#lines + 1] = "set title " .. gq(o.title) end
  for _, l in ipairs(header) do lines[#lines + 1] = l end
  lines[#lines + 1] = body
  lines[#lines + 1] = "unset output"
  local script = dir .. "/plot.gp"
  assert(write(script, table.concat(lines, "\n") .. "\n"))
  local log = dir .. "/log"
  local good = sh_ok("gnuplot " .. q(script) .. " >" .. q(log) .. " 2>&1")
  local f = io.open(log)
  local msg = f and f:read("a") or ""
  if f then f:close() end
  if not good then
    os.remove(out)
    return false, "gnuplot failed for " .. o.file .. ": " .. msg
  end
  local renamed, err = os.rename(out, o.file)
  if not renamed then
    os.remove(out)
    return false, "cannot write " .. o.file .. ": " .. tostring(err)
  end
  return true
end

local function with_dir(o, fn)
  local ok, why = plot.available()
  if not ok then return false, why end
  local dir = tmpdir()
  if not dir then return false, "plot: cannot make a temporary directory" end
  local r = table.pack(pcall(fn, dir))
  sh_ok("rm -rf " .. q(dir))
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

local function axes(o, header)
  if o.xlabel then header[#header + 1] = "set xlabel " .. gq(o.xlabel) end
  if o.ylabel then header[#header + 1] = "set ylabel " .. gq(o.ylabel) end
  if o.logx then header[#header + 1] = "set logscale x" end
  if o.logy then header[#header + 1] = "set logscale y" end
  header[#header + 1] = "set key outside right top"
  header[#header + 1] = "set grid"
end

function plot.lines(o)
  check_file("lines", o)
  check_series("lines", o.series, { "x", "y" })
  for i, s in ipairs(o.series) do
    if #s.x ~= #s.y then
      error(string.format("plot.lines: series[%d] has %d x and %d y values", i, #s.x, #s.y), 2)
    end
  end
  return with_dir(o, function(dir)
    local data = {}
    for _, s in ipairs(o.series) do
      for j = 1, #s.x do
        -- a non-positive value on a log axis has no place: left out, not plotted at -inf
        local skip = (o.logx and s.x[j] <= 0) or (o.logy and s.y[j] <= 0)
        if not skip then data[#data + 1] = num(s.x[j]) .. " " .. num(s.y[j]) end
      end
      data[#data + 1] = "\n"
    end
    assert(write(dir .. "/data", table.concat(data, "\n")))
    local header = {}
    axes(o, header)
    local parts = {}
    -- gnuplot's colours repeat after 8 series: each further group of 8 gets its own dash
    -- pattern and point shape, so no two series look the same
    local POINTS = { 7, 5, 9, 11, 13 }
    for i, s in ipairs(o.series) do
      local group = (i - 1) // 8 % #POINTS
      parts[#parts + 1] = string.format("%s index %d with linespoints pt %d ps %s lw 1.5 dt %d title %s",
        i == 1 and gq(dir .. "/data") or "''", i - 1, POINTS[group + 1], group == 0 and "0.4" or "0.6",
        group + 1, gq(s.name or ("series " .. i)))
    end
    return render(o, dir, header, "plot " .. table.concat(parts, ", "), { 900, 540 })
  end)
end

function plot.histograms(o)
  check_file("histograms", o)
  check_series("histograms", o.series, { "values" })
  local bins = o.bins or 30
  local all = {}
  for _, s in ipairs(o.series) do
    if #s.values == 0 then error("plot.histograms: a series has no values", 2) end
    table.move(s.values, 1, #s.values, #all + 1, all)
  end
  local lo, hi = o.min, o.max
  for _, v in ipairs(all) do
    lo, hi = math.min(lo or v, v), math.max(hi or v, v)
  end
  return with_dir(o, function(dir)
    local data = {}
    for _, s in ipairs(o.series) do
      local h = stats.histogram(s.values, { bins = bins, min = lo, max = hi })
      local width = h.edges[2] - h.edges[1]
      local scale = o.density and 1 / (#s.values * width) or 1
      for b = 1, bins do data[#data + 1] = num(h.edges[b]) .. " " .. num(h.counts[b] * scale) end
      data[#data + 1] = num(h.edges[bins + 1]) .. " " .. num(h.counts[bins] * scale)
      data[#data + 1] = "\n"
      if o.kde then
        local k = stats.kde(s.values, { points = 200, min = lo, max = hi })
        for j = 1, #k.x do data[#data + 1] = num(k.x[j]) .. " " .. num(k.y[j] * (o.density and 1 or #s.values * width)) end
        data[#data + 1] = "\n"
      end
    end
    assert(write(dir .. "/data", table.concat(data, "\n")))
    local header = {}
    o.ylabel = o.ylabel or (o.density and "density" or "count")
    axes(o, header)
    local parts, block = {}, 0
    for i, s in ipairs(o.series) do
      local name = s.name or ("series " .. i)
      parts[#parts + 1] = string.format("%s index %d with steps lw 2 lc %d title %s",
        block == 0 and gq(dir .. "/data") or "''", block, i, gq(name))
      block = block + 1
      if o.kde then
        parts[#parts + 1] = string.format("'' index %d with lines dt 2 lw 1.5 lc %d title %s", block, i, gq(name .. " (KDE)"))
        block = block + 1
      end
    end
    return render(o, dir, header, "plot " .. table.concat(parts, ", "), { 900, 540 })
  end)
end

-- {h, w, pixels} from a table or a 2-D tensor; a 3-D tensor is a list of them.
local function image_list(images)
  local out = {}
  local function add(img, i)
    if type(img) == "userdata" and img.size then
      local size = img:size()
      if #size == 3 then
        for k = 1, size[1] do add(img[k], i) end
        return
      end
      if #size ~= 2 then
        error(string.format("plot.images: images[%d] is a tensor of %d dimensions, expected 2 (h, w) or 3 (n, h, w)", i, #size), 4)
      end
      local rows, pixels = img:totable(), {}
      for r = 1, size[1] do table.move(rows[r], 1, size[2], #pixels + 1, pixels) end
      out[#out + 1] = { h = size[1], w = size[2], pixels = pixels }
    elseif type(img) == "table" then
      local h, w = img.h, img.w
      if math.type(h) ~= "integer" or math.type(w) ~= "integer" or h < 1 or w < 1 then
        error(string.format("plot.images: images[%d] needs positive integer h and w", i), 4)
      end
      if type(img.pixels) ~= "table" or #img.pixels ~= h * w then
        error(string.format("plot.images: images[%d] has %s pixels, expected h * w = %d", i,
          type(img.pixels) == "table" and tostring(#img.pixels) or "no", h * w), 4)
      end
      out[#out + 1] = img
    else
      error(string.format("plot.images: images[%d] is a %s, not a table or tensor", i, type(img)), 4)
    end
  end
  if type(images) == "userdata" then
    add(images, 1)
  else
    if type(images) ~= "table" or #images == 0 then error("plot.images: images must be a non-empty list", 3) end
    for i, img in ipairs(images) do add(img, i) end
  end
  return out
end

function plot.images(o)
  check_file("images", o)
  local images = image_list(o.images)
  local cols = math.min(o.cols or 10, #images)
  local rows = (#images + cols - 1) // cols
  local ch, cw = 0, 0
  for _, img in ipairs(images) do ch, cw = math.max(ch, img.h), math.max(cw, img.w) end
  -- one matrix: cells of ch x cw separated by a 1-pixel white line
  local H, W = rows * (ch + 1) - 1, cols * (cw + 1) - 1
  local m = {}
  for r = 1, H do
    local row = {}
    for c = 1, W do row[c] = 1 end
    m[r] = row
  end
  for k, img in ipairs(images) do
    local r0, c0 = ((k - 1) // cols) * (ch + 1), ((k - 1) % cols) * (cw + 1)
    for y = 1, img.h do
      for x = 1, img.w do
        -- 0 = white paper, 1 = black ink, as MNIST is drawn
        m[r0 + y][c0 + x] = 1 - img.pixels[(y - 1) * img.w + x]
      end
    end
  end
  return with_dir(o, function(dir)
    local lines = {}
    for r = 1, H do
      local row = {}
      for c = 1, W do row[c] = num(m[r][c]) end
      lines[r] = table.concat(row, " ")
    end
    assert(write(dir .. "/data", table.concat(lines, "\n") .. "\n"))
    local header = {
      "set palette gray", "unset colorbox", "set cbrange [0:1]", "unset key", "unset tics",
      "unset border", "set size ratio -1", "set yrange [] reverse",
      string.format("set xrange [-0.5:%g]", W - 0.5), string.format("set yrange [%g:-0.5]", H - 0.5),
      "set margins 1,1,1," .. (o.title and 3 or 1),
    }
    local scale = math.max(1, math.min(6, 900 // math.max(W, H)))
    return render(o, dir, header, "plot " .. gq(dir .. "/data") .. " matrix with image",
      { W * scale + 40, H * scale + (o.title and 60 or 40) })
  end)
end

return plot
