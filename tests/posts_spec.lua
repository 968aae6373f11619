-- Every post script (scripts/posts/*.lua) in its --smoke profile, so that none rots: it must
-- exit 0 and write a results file with at least one table holding a row with a recur number;
-- then tools/report.lua turns those results into a report that names every post. A new
-- script needs no edit here. The smoke runs check that a script works, not that it reproduces.
local H = require "tests.helpers"
local json = require "recur.json"
local q, sh = H.q, H.sh

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local ROOT = sh("pwd"):match("[^\n]+")
if not BIN:find("^/") then BIN = ROOT .. "/" .. BIN end

local dir = H.tmpdir("recur_posts_")
teardown(function() H.rm_rf(dir) end)

local scripts = {}
do
  local p = assert(io.popen("ls -1 scripts/posts/*.lua 2>/dev/null"))
  for f in p:lines() do scripts[#scripts + 1] = f end
  p:close()
end

local results = {} -- post stem -> decoded results file

describe("post scripts --smoke", function()
  for _, f in ipairs(scripts) do
    local stem = f:match("([%w_%-]+)%.lua$")
    it(f .. " --smoke writes a results file with recur numbers", function()
      local out_file = dir .. "/results/" .. stem .. ".json"
      local out, code = sh("timeout 600 " .. q(BIN) .. " " .. q(f) .. " --smoke --out " .. q(out_file)
        .. " --figures " .. q(dir .. "/img") .. " </dev/null")
      assert(code == 0, f .. " --smoke: exit status " .. tostring(code) .. "\n" .. out)
      local text = io.open(out_file) and H.read_file(out_file)
      assert(text, f .. " --smoke wrote no " .. out_file .. "\n" .. out)
      local r = json.decode(text)
      assert.equal("recur-results 1", r.format)
      assert.equal("smoke", r.profile)
      assert.is_string(r.title)
      local numeric = 0
      for _, t in ipairs(r.tables or {}) do
        for _, row in ipairs(t.rows or {}) do
          if type(row.recur) == "number" then numeric = numeric + 1 end
        end
      end
      assert(numeric >= 1, f .. ": no table row with a recur number")
      results[r.post] = r
    end)
  end

  it("the report of the smoke results names every post", function()
    local out_md = dir .. "/report.md"
    local out, code = sh(q(BIN) .. " tools/report.lua --results " .. q(dir .. "/results") .. " --committed "
      .. q(dir .. "/none") .. " --out " .. q(out_md) .. " --img " .. q(dir .. "/report_img"))
    assert(code == 0, out)
    local md = H.read_file(out_md)
    H.has(md, "# Reproductions of the R2RT posts", "| tag |")
    local n = 0
    for post, r in pairs(results) do
      n = n + 1
      H.has(md, r.title, "results/" .. post .. ".json", "smoke (a test run")
    end
    assert.equal(#scripts, n) -- every script ran and gave its results
  end)
end)
