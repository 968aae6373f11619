-- recur.data: IDX loading (plain, gzip, every type, corrupted and truncated files), the MNIST
-- loader's splits, vocabularies (byte, UTF-8, word; unknown policies; invalid UTF-8; tables),
-- text files, Brown and names loaders on small fixtures, and the iterators. Every fixture is
-- made here; nothing needs the network or data/fetch.
local recur = require "recur"
local data = recur.data
local T = recur.tensor

local H = require "tests.helpers"
local err_of, fails_with, flat, near = H.err_of, H.fails_with, H.flat, H.near_abs
local write = H.write_file

local tmpdir
local function tmp(name) return tmpdir .. "/" .. name end

-- gzip through the gzip program (Debian essential), no timestamp (-n)
local function gzip(s)
  local src = tmp("gzip-src")
  write(src, s)
  local p = assert(io.popen("gzip -c -n " .. src))
  local out = p:read("a")
  p:close()
  return out
end

local FMT = { [0x08] = "B", [0x09] = "b", [0x0B] = ">i2", [0x0C] = ">i4", [0x0D] = ">f", [0x0E] = ">d" }
local function idx_bytes(typ, dims, values)
  local parts = { string.pack(">BBBB", 0, 0, typ, #dims) }
  for _, d in ipairs(dims) do parts[#parts + 1] = string.pack(">I4", d) end
  for _, v in ipairs(values) do parts[#parts + 1] = string.pack(FMT[typ], v) end
  return table.concat(parts)
end

setup(function() tmpdir = H.tmpdir() end)
teardown(function() H.rm_rf(tmpdir) end)

describe("load_idx", function()
  it("reads ubyte images scaled to [0, 1] and labels raw", function()
    write(tmp("img"), idx_bytes(0x08, { 2, 2, 3 }, { 0, 51, 255, 102, 1, 254, 10, 20, 30, 40, 50, 60 }))
    write(tmp("lab"), idx_bytes(0x08, { 4 }, { 5, 0, 4, 255 }))
    local x = data.load_idx(tmp("img"))
    assert.same({ 2, 2, 3 }, x:size())
    near({ 0, 0.2, 1, 0.4, 1 / 255, 254 / 255, 10 / 255, 20 / 255, 30 / 255, 40 / 255, 50 / 255, 60 / 255 }, flat(x))
    local y = data.load_idx(tmp("lab"))
    assert.same({ 4 }, y:size())
    assert.same({ 5, 0, 4, 255 }, flat(y))
    assert.same({ 0, 51, 255 }, { table.unpack(flat(data.load_idx(tmp("img"), { scale = false })), 1, 3) })
    near({ 5 / 255, 0, 4 / 255, 1 }, flat(data.load_idx(tmp("lab"), { scale = true })))
  end)

  it("reads every IDX type (big-endian)", function()
    local cases = {
      { 0x09, { -128, -1, 0, 127 } },
      { 0x0B, { -32768, -2, 300, 32767 } },
      { 0x0C, { -2147483648, -5, 70000, 2147483647 } },
      { 0x0D, { -1.5, 0.25, 3e10, 1e-3 } },
      { 0x0E, { -2.5, 0.125, 1e30, 7 } },
    }
    for _, c in ipairs(cases) do
      local p = tmp("t" .. c[1])
      write(p, idx_bytes(c[1], { 2, 2 }, c[2]))
      local x = data.load_idx(p) -- not ubyte: never scaled by default
      assert.same({ 2, 2 }, x:size())
      local want = {}
      for i, v in ipairs(c[2]) do want[i] = string.unpack("f", string.pack("f", v)) end
      near(want, flat(x), 0)
    end
  end)

  it("reads gzip files (detected by magic, whatever the name)", function()
    local raw = idx_bytes(0x08, { 3, 2 }, { 0, 255, 51, 102, 153, 204 })
    write(tmp("g.gz"), gzip(raw))
    write(tmp("g-no-ext"), gzip(raw))
    near({ 0, 1, 0.2, 0.4, 0.6, 0.8 }, flat(data.load_idx(tmp("g.gz"))))
    near({ 0, 1, 0.2, 0.4, 0.6, 0.8 }, flat(data.load_idx(tmp("g-no-ext"))))
  end)

  it("reads a zero-item file and a big one across read chunks", function()
    write(tmp("zero"), idx_bytes(0x08, { 0, 28, 28 }, {}))
    assert.same({ 0, 28, 28 }, data.load_idx(tmp("zero")):size())
    -- 3 MB of pixels: spans several 1 MB chunks, plain and gzip
    local n, rows = 1000, 3000
    local parts = { string.pack(">BBBBI4I4", 0, 0, 8, 2, n, rows) }
    local row = {}
    for j = 1, rows do row[j] = string.char(j % 256) end
    local r = table.concat(row)
    for i = 1, n do parts[#parts + 1] = r end
    local raw = table.concat(parts)
    write(tmp("big"), raw)
    write(tmp("big.gz"), gzip(raw))
    for _, p in ipairs({ tmp("big"), tmp("big.gz") }) do
      local x = data.load_idx(p, { scale = false })
      assert.same({ n, rows }, x:size())
      assert.equal(x:sum():item(), n * x:select(1, 1):sum():item())
      assert.equal(255, x:get(n, 255))
      assert.equal(0, x:get(n, 256))
      assert.equal(185, x:get(n, rows - 255)) -- column j holds j % 256
    end
  end)

  it("rejects missing, empty, foreign, truncated and overlong files with clear messages", function()
    fails_with(function() data.load_idx(tmp("nope")) end, "load_idx: cannot open", "nope", "No such file")
    fails_with(function() data.load_idx(tmpdir) end, "is a directory")
    write(tmp("empty"), "")
    fails_with(function() data.load_idx(tmp("empty")) end, "is empty (0 bytes)")
    write(tmp("short"), "\0\0")
    fails_with(function() data.load_idx(tmp("short")) end, "truncated", "2 bytes")
    write(tmp("zip"), "PK\3\4 not idx at all")
    fails_with(function() data.load_idx(tmp("zip")) end, "not an IDX file", "50 4b 03 04")
    write(tmp("type"), string.pack(">BBBBI4", 0, 0, 7, 1, 1) .. "x")
    fails_with(function() data.load_idx(tmp("type")) end, "unknown IDX data type 0x07")
    write(tmp("dims0"), string.pack(">BBBB", 0, 0, 8, 0))
    fails_with(function() data.load_idx(tmp("dims0")) end, "declares 0 dimensions")
    write(tmp("dims9"), string.pack(">BBBB", 0, 0, 8, 9))
    fails_with(function() data.load_idx(tmp("dims9")) end, "declares 9 dimensions", "1 to 8")
    local good = idx_bytes(0x08, { 60, 28, 28 }, {})
    write(tmp("hdr"), good:sub(1, 10))
    fails_with(function() data.load_idx(tmp("hdr")) end, "truncated inside the header", "10 bytes", "has 16")
    local full = idx_bytes(0x08, { 3, 2, 2 }, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 })
    write(tmp("trunc"), full:sub(1, #full - 1))
    fails_with(function() data.load_idx(tmp("trunc")) end,
      "is truncated", "3 x 2 x 2 ubyte = 12 bytes of data", "16-byte header", "28 bytes in all", "has 27 bytes")
    write(tmp("long"), full .. "xyz")
    fails_with(function() data.load_idx(tmp("long")) end, "has 3 bytes past the end of the data")
    write(tmp("i32trunc"), idx_bytes(0x0C, { 2 }, { 1, 2 }):sub(1, 15))
    fails_with(function() data.load_idx(tmp("i32trunc")) end, "2 int32 = 8 bytes of data")
    -- a huge header on a small plain file is refused before anything is allocated
    write(tmp("huge"), string.pack(">BBBBI4I4I4", 0, 0, 8, 3, 4000000000, 4000000000, 28))
    fails_with(function() data.load_idx(tmp("huge")) end, "load_idx")
  end)

  it("rejects truncated, overlong and corrupt gzip files", function()
    local full = idx_bytes(0x08, { 50, 20 }, (function()
      local v = {}
      for i = 1, 1000 do v[i] = (i * 7) % 256 end
      return v
    end)())
    local gz = gzip(full)
    write(tmp("gtrunc.gz"), gz:sub(1, #gz - 12)) -- cut inside the deflate stream
    fails_with(function() data.load_idx(tmp("gtrunc.gz")) end, "load_idx", "gtrunc.gz")
    local msg = err_of(function() data.load_idx(tmp("gtrunc.gz")) end)
    assert(msg:find("truncated", 1, true) or msg:find("corrupt", 1, true), msg)
    write(tmp("gshort.gz"), gzip(full:sub(1, #full - 5))) -- complete gzip, short data
    fails_with(function() data.load_idx(tmp("gshort.gz")) end,
      "is truncated", "50 x 20 ubyte = 1000 bytes", "decompressed stream ends after 995")
    write(tmp("glong.gz"), gzip(full .. "abc"))
    fails_with(function() data.load_idx(tmp("glong.gz")) end, "3 bytes past the end")
    local bad = gz:sub(1, 30) .. string.char((gz:byte(31) + 85) % 256) .. gz:sub(32)
    write(tmp("gbad.gz"), bad)
    fails_with(function() data.load_idx(tmp("gbad.gz")) end, "load_idx", "gbad.gz")
    write(tmp("gempty.gz"), gzip(""))
    fails_with(function() data.load_idx(tmp("gempty.gz")) end, "is empty")
    -- a tiny gzip whose header claims gigabytes is refused before allocating
    write(tmp("ghuge.gz"), gzip(string.pack(">BBBBI4I4", 0, 0, 8, 2, 100000, 100000)))
    fails_with(function() data.load_idx(tmp("ghuge.gz")) end, "more than a", "gzip file can hold")
  end)

  it("parses from a string and checks its arguments", function()
    local s = idx_bytes(0x08, { 2 }, { 7, 9 })
    assert.same({ 7, 9 }, flat(recur._data.parse_idx(s, "mem")))
    fails_with(function() recur._data.parse_idx(s:sub(1, 9), "mem") end, "'mem' is truncated")
    fails_with(function() data.load_idx(42) end, "load_idx: path must be a string")
    fails_with(function() data.load_idx(tmp("img"), { scale = 1 }) end, "scale", "boolean")
    fails_with(function() data.load_idx(tmp("img"), { bogus = 1 }) end, "unknown option bogus")
  end)
end)

-- A tiny MNIST-shaped set: n training images of 2x2 whose pixel values encode the index.
local function write_mnist(dir, n_train, n_test, gz)
  os.execute("mkdir -p " .. dir)
  local function imgs(n, base)
    local v = {}
    for i = 1, n do for k = 1, 4 do v[#v + 1] = (base + i * 4 + k) % 256 end end
    return idx_bytes(0x08, { n, 2, 2 }, v)
  end
  local function labels(n, base)
    local v = {}
    for i = 1, n do v[i] = (base + i) % 10 end
    return idx_bytes(0x08, { n }, v)
  end
  local files = {
    ["train-images-idx3-ubyte"] = imgs(n_train, 0), ["train-labels-idx1-ubyte"] = labels(n_train, 0),
    ["t10k-images-idx3-ubyte"] = imgs(n_test, 7), ["t10k-labels-idx1-ubyte"] = labels(n_test, 3),
  }
  for name, bytes in pairs(files) do
    if gz then write(dir .. "/" .. name .. ".gz", gzip(bytes)) else write(dir .. "/" .. name, bytes) end
  end
end

describe("mnist loaders", function()
  it("split 55k: validation is the first 5,000 training images, labels are digit + 1", function()
    local dir = tmp("mnist")
    write_mnist(dir, 5003, 4, false)
    local m = data.mnist { dir = dir }
    assert.same({ 3, 4 }, m.train.x:size())
    assert.same({ 5000, 4 }, m.val.x:size())
    assert.same({ 4, 4 }, m.test.x:size())
    -- train[1] is image 5001: pixels (5001*4 + k) % 256 / 255
    near({ (20004 + 1) % 256 / 255, (20004 + 2) % 256 / 255, (20004 + 3) % 256 / 255, (20004 + 4) % 256 / 255 },
      flat(m.train.x:select(1, 1)))
    near({ 5 / 255, 6 / 255, 7 / 255, 8 / 255 }, flat(m.val.x:select(1, 1)))
    assert.same({ 1, 2, 3 }, flat(m.train.digits)) -- label of image i is i % 10
    assert.same({ 2, 3, 4 }, flat(m.train.y))
    assert.same({ 1, 2 }, { m.val.digits:get(1), m.val.y:get(1) })
    assert.same({ 0, 1 }, { m.val.digits:get(5000), m.val.y:get(5000) })
    assert.same({ 4, 5, 6, 7 }, flat(m.test.digits))
    assert.same({ 5, 6, 7, 8 }, flat(m.test.y))
    local m60 = data.mnist { dir = dir, split = "60k", flat = false }
    assert.is_nil(m60.val)
    assert.same({ 5003, 2, 2 }, m60.train.x:size())
  end)

  it("fashion_mnist reads the gzipped files", function()
    local dir = tmp("fashion")
    write_mnist(dir, 5001, 2, true)
    local f = data.fashion_mnist { dir = dir }
    assert.same({ 1, 4 }, f.train.x:size())
    assert.same({ 1 }, flat(f.train.digits))
    assert.same({ 5, 6 }, flat(f.test.y))
  end)

  it("missing files name the fetch command; bad options are refused", function()
    fails_with(function() data.mnist { dir = tmp("none") } end,
      "mnist: " .. tmp("none") .. "/train-images-idx3-ubyte not found", "run: data/fetch mnist")
    fails_with(function() data.fashion_mnist { dir = tmp("none") } end, "run: data/fetch fashion-mnist")
    fails_with(function() data.mnist { dir = tmp("mnist"), split = "50k" } end, 'split must be "55k"')
    local dir = tmp("small")
    write_mnist(dir, 10, 2, false)
    fails_with(function() data.mnist { dir = dir } end, "training set has 10 images")
    write(dir .. "/train-labels-idx1-ubyte", idx_bytes(0x08, { 9 }, { 1, 2, 3, 4, 5, 6, 7, 8, 9 }))
    fails_with(function() data.mnist { dir = dir, split = "60k" } end, "10 images, 9 labels")
  end)
end)

describe("Vocab (characters)", function()
  it("byte mode: sorted distinct bytes, 1-based ids, exact round trip", function()
    local v = data.Vocab.build("hello", { mode = "byte" })
    assert.equal(4, v:size())
    assert.same({ "e", "h", "l", "o" }, v:symbols())
    assert.same({ 2, 1, 3, 3, 4 }, flat(v:encode("hello")))
    assert.equal("hello", v:decode(v:encode("hello")))
    assert.equal("oleh", v:decode({ 4, 3, 1, 2 }))
    assert.equal(3, v:id("l"))
    assert.equal("o", v:symbol(4))
    -- bytes need not be UTF-8
    local b = data.Vocab.build("\xff\x00a\xc3", { mode = "byte" })
    assert.same({ 1, 4, 2, 3 }, flat(b:encode("\x00\xff\x61\xc3")))
    assert.equal("\xc3\xff", b:decode({ 3, 4 }))
  end)

  it("utf8 mode: characters sorted by code point", function()
    local s = "h\xc3\xa9llo \xe2\x82\xac\xf0\x9f\x98\x80" -- "héllo €😀"
    local v = data.Vocab.build(s, { mode = "utf8" })
    assert.same({ " ", "h", "l", "o", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80" },
      v:symbols())
    assert.same({ 2, 5, 3, 3, 4, 1, 6, 7 }, flat(v:encode(s)))
    assert.equal(s, v:decode(v:encode(s)))
    assert.equal(7, v:size())
    -- the order of the text does not matter: the same symbols give the same vocabulary
    assert.same(v:symbols(), data.Vocab.build({ "\xf0\x9f\x98\x80lo", "\xe2\x82\xac h\xc3\xa9" }):symbols())
  end)

  it("unknown characters: error with offset, skip, or replace", function()
    local v = data.Vocab.build("abc", { mode = "utf8" })
    fails_with(function() v:encode("abzc") end,
      "encode: character 'z' (U+007A) at byte offset 2 (0-based; string position 3)",
      "not in the vocabulary (3 symbols)", 'unknown = "skip"')
    fails_with(function() v:encode("a\xc3\xa9") end, "character '\xc3\xa9' (U+00E9) at byte offset 1")
    fails_with(function() v:encode("a\n") end, "character U+000A at byte offset 1")
    assert.same({ 1, 3 }, flat(v:encode("a\xc3\xa9zc", { unknown = "skip" })))
    assert.same({}, flat(v:encode("zzz", { unknown = "skip" })))
    assert.same({ 1, 2, 2, 3 }, flat(v:encode("a\xc3\xa9zc", { unknown = "replace", replacement = "b" })))
    fails_with(function() v:encode("z", { unknown = "replace" }) end, "needs a replacement")
    fails_with(function() v:encode("z", { unknown = "replace", replacement = "q" }) end,
      'the replacement "q" is not in the vocabulary')
    -- a replacement given at build time joins the vocabulary and becomes the default
    local r = data.Vocab.build("abc", { mode = "utf8", unknown = "replace", replacement = "?" })
    assert.same({ "?", "a", "b", "c" }, r:symbols())
    assert.same({ 2, 1, 4 }, flat(r:encode("a\xe2\x82\xacc")))
    fails_with(function() r:encode("az", { unknown = "error" }) end, "'z'")
    local b = data.Vocab.build("ab", { mode = "byte" })
    fails_with(function() b:encode("a\xe9") end, "byte 0xE9 at byte offset 1")
    fails_with(function() data.Vocab.build("ab", { unknown = "replace" }) end, "needs replacement = SYMBOL")
    fails_with(function() data.Vocab.build("ab", { replacement = "xy" }) end, "not a single UTF-8 character")
    fails_with(function() v:encode("a", { unknown = "drop" }) end, 'unknown must be "error", "skip" or "replace"')
  end)

  it("invalid UTF-8 is an error with the byte offset, in building and encoding", function()
    local cases = {
      { "ab\xc3", 2, "cut short by the end" },
      { "\x80abc", 0, "continuation byte with no lead" },
      { "ab\xc0\xaf", 2, "overlong lead byte" },
      { "a\xe0\x80\xaf", 1, "overlong encoding" },
      { "xy\xed\xa0\x80", 2, "surrogate" },
      { "\xf4\x90\x80\x80", 0, "past U+10FFFF" },
      { "abc\xe2\x82z", 3, "cut short" },
      { "\xff", 0, "never occurs in UTF-8" },
    }
    local v = data.Vocab.build("abcxyz", { mode = "utf8" })
    for _, c in ipairs(cases) do
      local want = string.format("invalid UTF-8 at byte offset %d (0-based; string position %d)", c[2], c[2] + 1)
      fails_with(function() data.Vocab.build(c[1], { mode = "utf8" }) end, want, c[3])
      fails_with(function() v:encode(c[1]) end, want, c[3])
      fails_with(function() v:encode(c[1], { unknown = "skip" }) end, want)
    end
  end)

  it("decode checks ids", function()
    local v = data.Vocab.build("abc", { mode = "byte" })
    fails_with(function() v:decode({ 1, 4 }) end, "decode: id 4 at position 2 is not a vocabulary id (1..3)")
    fails_with(function() v:decode(T({ 0 })) end, "id 0 at position 1")
    fails_with(function() v:decode(T({ 1.5 })) end, "id 1.5")
    fails_with(function() v:decode("abc") end, "ids must be a tensor or a list")
    assert.equal("", v:decode({}))
    assert.equal("cb", v:decode(T({ { 3, 1 }, { 2, 2 } }):narrow(2, 1, 1))) -- any shape, read in order
  end)

  it("serializes to a plain table and back", function()
    for _, mode in ipairs({ "byte", "utf8" }) do
      local v = data.Vocab.build("z\xc3\xa9a b", { mode = mode, unknown = "replace", replacement = "_" })
      local t = v:to_table()
      assert.equal("recur.vocab", t.format)
      assert.equal(mode, t.mode)
      for _, c in ipairs(t.codes) do assert.equal("integer", math.type(c)) end
      local w = data.Vocab.from_table(t)
      assert.same(v:symbols(), w:symbols())
      assert.equal("replace", w.unknown)
      assert.same(flat(v:encode("ab\xc3\xa9?")), flat(w:encode("ab\xc3\xa9?")))
    end
    fails_with(function() data.Vocab.from_table({}) end, "not a vocabulary table")
    fails_with(function() data.Vocab.from_table({ format = "recur.vocab", version = 2 }) end, "unsupported version 2")
    fails_with(function()
      data.Vocab.from_table({ format = "recur.vocab", version = 1, mode = "byte", unknown = "error", codes = { 5, 3 } })
    end, "codes[2] = 3 is out of range or out of order")
    fails_with(function()
      data.Vocab.from_table({ format = "recur.vocab", version = 1, mode = "byte", unknown = "error", codes = { 300 } })
    end, "codes[1] = 300")
  end)

  -- (its speed is measured in bench/, not here)
  it("encodes 5 MB and decodes it back", function()
    local pieces = {}
    for i = 1, 5 * 1024 do pieces[i] = string.rep(string.char(97 + i % 26), 1000) .. "\xc3\xa9\n" end
    local text = table.concat(pieces)
    local v = data.Vocab.build(text, { mode = "utf8" })
    local ids = v:encode(text)
    assert.equal(5 * 1024 * 1002, ids:numel())
    assert.equal(text, v:decode(ids))
  end)
end)

describe("Vocab (words)", function()
  it("orders by count then bytes, keeps max_size with unk first", function()
    local v = data.Vocab.build("b a c a b a d e", { mode = "word", max_size = 4, unk = "<unk>" })
    assert.same({ "<unk>", "a", "b", "c" }, v:symbols())
    assert.same({ 2, 3, 4, 1, 1 }, flat(v:encode("a b c d zz")))
    assert.same({ 2, 1 }, flat(v:encode({ "a", "q" })))
    assert.equal("a b <unk>", v:decode({ 2, 3, 1 }))
    assert.same({ "c", "a" }, v:words_of(T({ 4, 2 })))
    local t = v:to_table()
    local w = data.Vocab.from_table(t)
    assert.same(v:symbols(), w:symbols())
    assert.same(flat(v:encode("a b c d")), flat(w:encode("a b c d")))
    local strict = data.Vocab.build({ { "x", "y" }, { "y" } }, { mode = "word" })
    assert.same({ "y", "x" }, strict:symbols())
    fails_with(function() strict:encode("x z") end, 'encode: word 2 ("z") is not in the vocabulary (2 words)')
    assert.same({ 2 }, flat(strict:encode("x z", { unknown = "skip" })))
    fails_with(function() data.Vocab.build("", { mode = "word" }) end, "the corpus has no words")
    fails_with(function() data.Vocab.build("a", { mode = "word", max_size = 0 }) end, "max_size must be a positive integer")
    fails_with(function() data.Vocab.build("a", { mode = "bpe" }) end, 'mode must be "byte", "utf8" or "word"')
    fails_with(function() data.Vocab.build("", { mode = "byte" }) end, "the corpus is empty")
    fails_with(function() data.Vocab.build(5) end, "corpus must be a string or a list")
  end)
end)

describe("text files", function()
  it("read_text and char_corpus: contents, splits, errors on empty and missing files", function()
    write(tmp("t.txt"), "abcdefghij")
    local c = data.char_corpus { path = tmp("t.txt"), mode = "byte", split = { 0.6, 0.2, 0.2 } }
    assert.equal(10, c.vocab:size())
    assert.same({ 1, 2, 3, 4, 5, 6 }, flat(c.train))
    assert.same({ 7, 8 }, flat(c.val))
    assert.same({ 9, 10 }, flat(c.test))
    local d = data.char_corpus { text = "aabbaabbaa" } -- default split: 90% / 10% / none
    assert.same({ 9, 1 }, { d.train:numel(), d.val:numel() })
    assert.is_nil(d.test)
    write(tmp("empty.txt"), "")
    fails_with(function() data.read_text(tmp("empty.txt")) end, "read_text:", "empty.txt is empty (0 bytes)")
    fails_with(function() data.char_corpus { path = tmp("empty.txt") } end, "is empty")
    fails_with(function() data.read_text(tmp("missing.txt")) end, "read_text: cannot open", "missing.txt")
    fails_with(function() data.tiny_shakespeare {} end, "pass path = FILE", "data/fetch shakespeare")
    fails_with(function() data.tiny_shakespeare { path = tmp("missing.txt") } end, "--data")
    fails_with(function() data.moby_dick { dir = tmp("none") } end, "run: data/fetch moby-dick")
    fails_with(function() data.shakespeare { dir = tmp("none") } end, "run: data/fetch shakespeare")
    fails_with(function() data.char_corpus { text = "ab", split = { 0.5, 0.2, 0.2 } } end, "add up to 0.9")
  end)
end)

describe("Brown and names loaders (fixtures)", function()
  it("brown: lower case, numbers to <#>, <eos>, split by file within each genre", function()
    local dir = tmp("brown")
    os.execute("mkdir -p " .. dir)
    local cats = {}
    for i = 1, 10 do
      local f = string.format("ca%02d", i)
      cats[#cats + 1] = f .. " news"
      write(dir .. "/" .. f, string.format("\n\n\tThe/at Jury/nn said/vbd %d/cd ./.\n\n\tFile/nn %d/cd-hl\n", 1950 + i, i))
    end
    cats[#cats + 1] = "cb01 editorial"
    write(dir .. "/cb01", "\tA/at 3.5/cd 1,000/cd 1960's/cd A/at-tl and/or/cc ./.\n")
    write(dir .. "/cats.txt", table.concat(cats, "\n") .. "\n")
    local w = data.brown_words { dir = dir }
    -- train: ca01..ca08 (2 sentences each) + cb01; val: ca09; test: ca10
    local train = w.vocab:words_of(w.train)
    assert.same({ "the", "jury", "said", "<#>", ".", "<eos>", "file", "<#>", "<eos>" }, { table.unpack(train, 1, 9) })
    assert.same({ "a", "<#>", "<#>", "1960's", "a", "and/or", ".", "<eos>" }, { table.unpack(train, #train - 7) })
    assert.equal("<unk>", w.vocab:symbol(1))
    assert.equal("<#>", w.vocab:symbol(2)) -- the most frequent training word
    assert.same({ "the", "jury", "said", "<#>", ".", "<eos>", "file", "<#>", "<eos>" }, w.vocab:words_of(w.val))
    assert.equal(9, w.test:numel())
    local g = data.brown_genres { dir = dir }
    assert.same({ "editorial", "news" }, g.classes)
    assert.equal(17, g.train.n)
    assert.equal(2, g.val.n)
    assert.same({ 5, 2 }, flat(g.val.lengths))
    assert.same({ 2, 2 }, flat(g.val.y))
    assert.equal(1, g.train.y:get(17))
    local g3 = data.brown_genres { dir = dir, max_length = 2 }
    assert.same({ 2 }, flat(g3.val.lengths))
    fails_with(function() data.brown_words { dir = tmp("none") } end, "run: data/fetch brown")
    os.remove(dir .. "/ca03")
    fails_with(function() data.brown_words { dir = dir } end, "ca03 not found", "run: data/fetch brown")
  end)

  it("names: fixed split of (name, list) pairs sorted by name", function()
    local dir = tmp("names")
    os.execute("mkdir -p " .. dir)
    local fem, mal = {}, {}
    for i = 1, 12 do fem[i] = "F" .. string.char(96 + i) end
    for i = 1, 8 do mal[i] = "M" .. string.char(96 + i) end
    mal[9] = "Fa" -- on both lists
    write(dir .. "/female.txt", table.concat(fem, "\n") .. "\n")
    write(dir .. "/male.txt", table.concat(mal, "\r\n") .. "\r\n")
    local n = data.names { dir = dir }
    -- sorted pairs: Fa/1 Fa/2 Fb ... Fl Ma ... Mh (21); 9th and 19th -> val, 10th and 20th -> test
    assert.equal(17, n.train.n)
    assert.equal(2, n.val.n)
    assert.equal(2, n.test.n)
    assert.same({ 1, 2, 1 }, { table.unpack(flat(n.train.y), 1, 3) }) -- Fa/female, Fa/male, Fb
    assert.equal("Fa", n.vocab:decode(n.train.tokens:narrow(1, 3, 2)))
    assert.equal("Fh", n.vocab:decode(n.val.tokens:narrow(1, 1, 2)))
    assert.equal("Mf", n.vocab:decode(n.val.tokens:narrow(1, 3, 2)))
    assert.same({ "female", "male" }, n.classes)
    fails_with(function() data.names { dir = tmp("none") } end, "run: data/fetch names")
  end)
end)

describe("batches", function()
  local function set_of(n)
    local x, y = {}, {}
    for i = 1, n do x[i] = { i, -i }; y[i] = i end
    return { x = T(x), y = T(y) }
  end

  it("shuffled: every example once per epoch, repeatable with recur.seed", function()
    local set = set_of(10)
    recur.seed(5)
    local seen, sizes, rows = {}, {}, {}
    for x, y, idx, info in data.batches(set, { batch = 4 }) do
      sizes[#sizes + 1] = y:numel()
      assert.same(flat(idx), flat(y))
      assert.same(flat(x:select(2, 1)), flat(y))
      for _, v in ipairs(flat(y)) do seen[#seen + 1] = v end
      rows[#rows + 1] = info.epoch_end
    end
    assert.same({ 4, 4, 2 }, sizes)
    assert.same({ false, false, true }, rows)
    table.sort(seen)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, seen)
    recur.seed(5)
    local first = data.batches(set, { batch = 4 })()
    recur.seed(5)
    assert.same(flat(first), flat(data.batches(set, { batch = 4 })()))
    local it = data.batches(set, { batch = 4, drop_last = true, epochs = 2 })
    local count = 0
    for _ in it do count = count + 1 end
    assert.equal(4, count)
    assert.equal(2, it.steps_per_epoch)
  end)

  it("fixed order expresses First Convergence Bias's (50*i) % 1000", function()
    local set = set_of(20)
    local starts = {}
    for _, y, _, info in data.batches(set, { batch = 5, shuffle = false, steps = 10 }) do
      starts[#starts + 1] = y:get(1)
      assert.same({ y:get(1), y:get(1) + 1, y:get(1) + 2, y:get(1) + 3, y:get(1) + 4 }, flat(y))
      assert.equal(y:get(1) == 1, info.epoch_start)
    end
    assert.same({ 1, 6, 11, 16, 1, 6, 11, 16, 1, 6 }, starts) -- (5*i) % 20, 1-based
    -- wrap-around when the batch does not divide the set
    local ys = {}
    for _, y in data.batches(set_of(7), { batch = 3, shuffle = false, steps = 4 }) do ys[#ys + 1] = flat(y) end
    assert.same({ { 1, 2, 3 }, { 4, 5, 6 }, { 7, 1, 2 }, { 3, 4, 5 } }, ys)
    ys = {}
    for _, y in data.batches(set_of(7), { batch = 3, shuffle = false, start = 6 }) do ys[#ys + 1] = flat(y) end
    assert.same({ { 6, 7, 1 }, { 2, 3, 4 }, { 5 } }, ys)
    ys = {}
    for _, y in data.batches(set_of(7), { batch = 2, shuffle = false, order = { 7, 5, 3, 1 }, steps = 3 }) do
      ys[#ys + 1] = flat(y)
    end
    assert.same({ { 7, 5 }, { 3, 1 }, { 7, 5 } }, ys)
    local it = data.batches(set_of(4), { batch = 2, shuffle = false })
    assert.same({ 1, 2 }, flat(select(2, it())))
    it:reset()
    assert.same({ 1, 2 }, flat(select(2, it())))
  end)

  it("refuses sets smaller than a batch and bad options", function()
    fails_with(function() data.batches(set_of(3), { batch = 5 }) end,
      "batches: the set has 3 examples, fewer than one batch of 5")
    fails_with(function() data.batches(set_of(3), {}) end, "option batch is required")
    fails_with(function() data.batches(set_of(3), { batch = 0 }) end, "batch must be a positive integer")
    fails_with(function() data.batches({ x = T({ 1, 2 }), y = T({ 1 }) }, { batch = 1 }) end, "2 examples but set.y has 1")
    fails_with(function() data.batches(set_of(3), { batch = 1, start = 2 }) end, "pass shuffle = false")
    fails_with(function() data.batches(set_of(3), { batch = 1, shuffle = false, order = { 4 } }) end, "indices in 1..3")
    fails_with(function() data.batches(set_of(3), { batch = 1, shuffle = false, order = { 1.5 } }) end, "integer indices")
    fails_with(function() data.batches(set_of(3), { batch = 1, steps = 2, epochs = 1 }) end, "not both")
    fails_with(function() data.batches(set_of(3), { batch = 1, bogus = 1 }) end, "unknown option bogus")
  end)
end)

describe("lm_batches", function()
  it("cuts the stream into batch rows and yields [T, B] windows in order", function()
    local ids = recur.arange(1, 24) -- 23 tokens; batch 2 -> rows of 11; (11 - 1) // 3 = 3 windows
    local it = data.lm_batches(ids, { batch = 2, steps = 3, epochs = 2 })
    assert.equal(3, it.steps_per_epoch)
    local xs, ys, flags = {}, {}, {}
    for x, y, info in it do
      assert.same({ 3, 2 }, x:size())
      xs[#xs + 1] = x:totable()
      ys[#ys + 1] = y:totable()
      flags[#flags + 1] = { info.epoch, info.step, info.epoch_start, info.epoch_end }
    end
    assert.equal(6, #xs)
    assert.same({ { 1, 12 }, { 2, 13 }, { 3, 14 } }, xs[1])
    assert.same({ { 2, 13 }, { 3, 14 }, { 4, 15 } }, ys[1])
    assert.same({ { 7, 18 }, { 8, 19 }, { 9, 20 } }, xs[3])
    assert.same({ { 8, 19 }, { 9, 20 }, { 10, 21 } }, ys[3])
    assert.same(xs[1], xs[4])
    assert.same({ { 1, 1, true, false }, { 1, 2, false, false }, { 1, 3, false, true },
      { 2, 1, true, false }, { 2, 2, false, false }, { 2, 3, false, true } }, flags)
  end)

  it("start resumes at a window, by number or {epoch, step}, and reset goes back to it", function()
    local ids = recur.arange(1, 24) -- 3 windows per epoch, as above
    local function walk(it)
      local r = {}
      for x, _, info in it do r[#r + 1] = { x:totable()[1][1], info.epoch, info.step, info.epoch_start } end
      return r
    end
    local full = walk(data.lm_batches(ids, { batch = 2, steps = 3, epochs = 2 }))
    assert.equal(6, #full)
    for k = 1, 7 do -- every start, by number and as {epoch, step} (step past the epoch rolls over)
      local want = table.move(full, k, 6, 1, {})
      assert.same(want, walk(data.lm_batches(ids, { batch = 2, steps = 3, epochs = 2, start = k })))
      local e, s = (k - 1) // 3 + 1, (k - 1) % 3 + 1
      assert.same(want, walk(data.lm_batches(ids, { batch = 2, steps = 3, epochs = 2, start = { epoch = e, step = s } })))
    end
    -- a run saved after window 3 of epoch 1 resumes with step 3 + 1: epoch 2's first window
    local it = data.lm_batches(ids, { batch = 2, steps = 3, epochs = 2, start = { epoch = 1, step = 4 } })
    local x, _, info = it()
    assert.same({ 1, 2, 1, true }, { x:totable()[1][1], info.epoch, info.step, info.epoch_start })
    assert.same({ { 1, 2, 1, true }, { 4, 2, 2, false }, { 7, 2, 3, false } }, walk(it:reset()))
    assert.equal(7, full[3][1]) -- window 3 starts at token 7 (see above)
    fails_with(function() data.lm_batches(ids, { batch = 2, steps = 3, epochs = 2, start = 8 }) end,
      "lm_batches: start is window 8, past the end: 2 epochs of 3 windows")
    fails_with(function() data.lm_batches(ids, { batch = 2, steps = 3, start = 0 }) end,
      "option start must be a positive integer, got 0")
    fails_with(function() data.lm_batches(ids, { batch = 2, steps = 3, start = { epoch = 1 } }) end,
      "option start.step is required")
    fails_with(function() data.lm_batches(ids, { batch = 2, steps = 3, start = { epoch = 1, step = 1, x = 1 } }) end,
      "lm_batches start: unknown option x")
  end)

  it("refuses streams too short for one window", function()
    fails_with(function() data.lm_batches(recur.arange(1, 8), { batch = 2, steps = 3 }) end,
      "lm_batches: the token stream has 7 tokens, too short for batch 2 x steps 3",
      "at least batch * (steps + 1) = 8 tokens")
    assert.equal(1, data.lm_batches(recur.arange(1, 9), { batch = 2, steps = 3 }).steps_per_epoch)
    fails_with(function() data.lm_batches(recur.zeros(0), { batch = 1, steps = 1 }) end, "token stream is empty")
    fails_with(function() data.lm_batches(recur.zeros(2, 2), { batch = 1, steps = 1 }) end, "1-D tensor")
    fails_with(function() data.lm_batches(recur.arange(1, 9), { batch = 2 }) end, "option steps is required")
  end)
end)

describe("variable-length batches", function()
  it("ragged + padded_batches: pads to the batch's longest, counts padding", function()
    local set = data.ragged({ { 5 }, { 6, 7, 8 }, { 9, 10 } }, { 1, 2, 3 })
    assert.same({ 1, 2, 5 }, flat(set.starts))
    local x, y, lengths, info = data.padded_batches(set, { batch = 3, shuffle = false, pad = 0 })()
    assert.same({ { 5, 6, 9 }, { 0, 7, 10 }, { 0, 8, 0 } }, x:totable())
    assert.same({ 1, 2, 3 }, flat(y))
    assert.same({ 1, 3, 2 }, flat(lengths))
    assert.equal(3, info.padding)
    local xb = data.padded_batches(set, { batch = 2, shuffle = false, batch_first = true })()
    assert.same({ { 5, 1, 1 }, { 6, 7, 8 } }, xb:totable())
    local n, pads = 0, 0
    recur.seed(3)
    for _, yy, ll, inf in data.padded_batches(set, { batch = 2 }) do
      n = n + yy:numel()
      local m = ll:max():item()
      local p = 0
      for _, l in ipairs(flat(ll)) do p = p + m - l end
      assert.equal(p, inf.padding)
      pads = pads + p
    end
    assert.equal(3, n)
  end)

  it("bucketed_batches: batches come from one length bucket, every example once", function()
    local seqs, labels = {}, {}
    for i = 1, 24 do
      local len = (i * 7) % 12 + 1 -- lengths 1..12, twice each
      local s = {}
      for k = 1, len do s[k] = i end
      seqs[i], labels[i] = s, i
    end
    local set = data.ragged(seqs, labels)
    recur.seed(11)
    local it = data.bucketed_batches(set, { batch = 4, num_buckets = 3, epochs = 2 })
    assert.equal(6, it.steps_per_epoch)
    local seen, total_pad = {}, 0
    for x, y, lengths, info in it do
      local ls = flat(lengths)
      local lo, hi = math.min(table.unpack(ls)), math.max(table.unpack(ls))
      -- 3 buckets of 8 sorted by length: 1-4, 5-8, 9-12
      assert.equal((lo - 1) // 4, (hi - 1) // 4)
      assert.same({ hi, 4 }, x:size())
      for k, v in ipairs(flat(y)) do
        seen[#seen + 1] = v
        assert.equal(v, x:get(1, k)) -- tokens of sequence v are all v
      end
      total_pad = total_pad + info.padding
    end
    table.sort(seen)
    assert.equal(48, #seen)
    for i = 1, 24 do assert.same({ i, i }, { seen[2 * i - 1], seen[2 * i] }) end
    assert(total_pad <= 2 * 6 * 4 * 3, "padding " .. total_pad)
  end)

  it("refuses sets smaller than a batch, empty sets and bad sets", function()
    local set = data.ragged({ { 1 }, { 2 } })
    fails_with(function() data.padded_batches(set, { batch = 3 }) end,
      "padded_batches: the set has 2 examples, fewer than one batch of 3")
    fails_with(function() data.bucketed_batches(set, { batch = 3 }) end, "bucketed_batches: the set has 2 examples")
    fails_with(function() data.bucketed_batches(set, { batch = 1, num_buckets = 3 }) end, "num_buckets 3 is more than the 2")
    fails_with(function() data.ragged({}) end, "ragged: the set has no sequences")
    fails_with(function() data.padded_batches({ x = T({ 1 }) }, { batch = 1 }) end, "must be a ragged set")
    fails_with(function() data.ragged({ { 1 } }, { 1, 2 }) end, "1 sequences but 2 labels")
    fails_with(function() recur._data.pad_batch(set.tokens, set.starts, set.lengths, T({ 3 }), 0) end,
      "pad_batch: index 3 at position 1 is not a sequence of the set (1..2)")
    fails_with(function() recur._data.pad_batch(set.tokens, set.starts, T({ 1, 5 }), T({ 2 }), 0) end,
      "sequence 2 (start 2, length 5) does not lie inside the 2 tokens")
  end)
end)

describe("C entry points", function()
  it("check their arguments and never crash", function()
    local C = recur._data
    local args = { nil, 1, "x", {}, T({ 1 }), true }
    for name, f in pairs(C) do
      for _, a in ipairs(args) do
        for _, b in ipairs(args) do
          local ok, e = pcall(f, a, b, b, a, 1)
          if not ok then assert.equal("string", type(e)) end
        end
      end
    end
    fails_with(function() C.text_encode("a", "latin1", T({ 97 }), "error") end, 'mode) must be "byte" or "utf8"')
    fails_with(function() C.text_encode("a", "byte", T({ 98, 97 }), "error") end, "not a byte in increasing order")
    fails_with(function() C.text_encode("a", "byte", T({ 97 }), "replace", 2) end, "replacement id 2 is outside")
  end)
end)
