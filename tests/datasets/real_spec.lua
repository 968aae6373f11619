-- Canonical figures of the real datasets that data/fetch installs. Not part of `make test`
-- (whose tests make their own fixtures and need no network): `make test-data` fetches the sets
-- (once) and runs this; a set that is missing is a failure, not a skip. The data root is
-- $RECUR_DATA or data/.
local recur = require "recur"
local data = recur.data

local function counts(t, k)
  local c = {}
  for i = 1, k do c[i] = 0 end
  for _, v in ipairs(t:totable()) do c[math.tointeger(v) + 1] = c[math.tointeger(v) + 1] + 1 end
  return c
end

describe("real datasets", function()
  it("MNIST: 60,000 / 10,000 images, first labels 5 0 4 1 9 2 1 3 1 4, 5,923 and 980 zeros", function()
    local s = data.mnist {} -- the 55k split: val = the first 5,000 training images
    assert.same({ 55000, 784 }, s.train.x:size())
    assert.same({ 5000, 784 }, s.val.x:size())
    assert.same({ 10000, 784 }, s.test.x:size())
    assert.equal(60000, s.train.x:size()[1] + s.val.x:size()[1])
    local first = {}
    for i = 1, 10 do first[i] = s.val.digits:get(i) end
    assert.same({ 5, 0, 4, 1, 9, 2, 1, 3, 1, 4 }, first)
    assert.equal(6, s.val.y:get(1))
    local c, v = counts(s.train.digits, 10), counts(s.val.digits, 10)
    for i = 1, 10 do c[i] = c[i] + v[i] end
    assert.same({ 5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949 }, c)
    assert.same({ 980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009 }, counts(s.test.digits, 10))
    assert.equal(0, s.train.x:min():item())
    assert.equal(1, s.train.x:max():item())
  end)

  it("Fashion-MNIST: 6,000 per class in training, 1,000 in test", function()
    local f = data.fashion_mnist { split = "60k" }
    assert.same({ 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000 }, counts(f.train.digits, 10))
    assert.same({ 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000 }, counts(f.test.digits, 10))
  end)

  it("Brown: 57,340 sentences in 15 genres, a 10,000-word vocabulary", function()
    local g = data.brown_genres {}
    assert.equal(57340, g.train.n + g.val.n + g.test.n)
    assert.equal(15, #g.classes)
    assert.equal(10000, g.vocab:size())
    -- 1,161,192 tokens
    assert.equal(1161192, g.train.lengths:sum():item() + g.val.lengths:sum():item() + g.test.lengths:sum():item())
  end)

  it("names: 4,951 female and 3,898 male", function()
    local n = data.names {}
    local total, female = 0, 0
    for _, s in ipairs({ n.train, n.val, n.test }) do
      total = total + s.n
      female = female + s.y:eq(1):sum():item()
    end
    assert.equal(8849, total)
    assert.equal(4951, female)
  end)

  it("Moby Dick 1,204,997 bytes / 83 characters; Shakespeare without CR", function()
    local m = data.moby_dick { mode = "utf8" }
    assert.equal(1204997, #m.text)
    assert.equal(83, m.vocab:size()) -- as Python's len(set(text)); datasets.md's 93 is off
    assert.equal(1190317, m.ids:numel())
    local s = data.shakespeare {}
    assert.is_nil(s.text:find("\r", 1, true))
    assert.equal(5500748 - 182567, #s.text) -- one CR per line removed
  end)
end)
