-- Checkpoints: recur.save / recur.load in safetensors. Round trip (model, optimizer state, RNG,
-- metadata), the file read by numpy and PyTorch, a corrupted file refused in every way the
-- format can break (and nothing restored), atomic writes (a failed save and a killed writer
-- leave the old file whole), exact resume across processes with dropout and shuffling.
local recur = require "recur"
local nn = recur.nn
local json = require "recur.json"
local T = recur.tensor

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local PY = "/usr/bin/python3"

local H = require "tests.helpers"
local q, err_of, has, read_all, write_all = H.q, H.err_of, H.has, H.read_file, H.write_file

local tmpdir
local function tmp(name) return tmpdir .. "/" .. name end

-- a safetensors file from a header table (encoded here) or a raw header string, and raw data
local function st_file(p, header, data)
  local h = type(header) == "string" and header or json.encode(header)
  write_all(p, string.pack("<I8", #h) .. h .. (data or ""))
end
local function f32(...)
  local t = { ... }
  local s = {}
  for i, v in ipairs(t) do s[i] = string.pack("<f", v) end
  return table.concat(s)
end

local function model()
  return nn.Sequential { nn.Linear(4, 5), nn.Tanh(), nn.LayerNorm(5), nn.Dropout(0.2), nn.Linear(5, 3) }
end

local function train_steps(m, opt, n)
  for _ = 1, n do
    opt:zero_grad()
    nn.cross_entropy(m(recur.randn(6, 4)), recur.randint(1, 3, 6)):backward()
    opt:step()
  end
end

local function same(a, b)
  assert.same(a:size(), b:size())
  assert.same(a:totable(), b:totable())
end

setup(function() tmpdir = H.tmpdir("recur_ckpt_") end)
teardown(function() H.rm_rf(tmpdir) end)

describe("save and load", function()
  it("round-trip a model, its optimizer, the RNG and metadata", function()
    recur.seed(1)
    local m = model()
    local opt = recur.optim.Adam(m, { lr = 1e-2 })
    train_steps(m, opt, 3)
    local meta = { epoch = 3, name = "run \"1\"", lr = 0.001, nested = { list = { 1, 2.5, "x" }, flag = true } }
    recur.save(tmp("a.safetensors"), { model = m, optimizer = opt, meta = meta })
    local next_draw = recur.rand(3):totable()

    recur.seed(99)
    local m2 = model()
    local opt2 = recur.optim.Adam(m2, { lr = 1e-2 })
    local ck = recur.load(tmp("a.safetensors"), { model = m2, optimizer = opt2 })
    for name, t in pairs(m:state_dict()) do same(t, m2:state_dict()[name]) end
    assert.same(meta, ck.meta)
    assert.equal(3, ck.step)
    assert.equal("Adam", ck.optimizer.name)
    local s1, s2 = opt:state(), opt2:state()
    assert.equal(s1.step, s2.step)
    for i = 1, #s1.params do
      same(s1.params[i].exp_avg, s2.params[i].exp_avg)
      same(s1.params[i].exp_avg_sq, s2.params[i].exp_avg_sq)
      assert.equal(s1.params[i].step, s2.params[i].step)
    end
    assert.same(next_draw, recur.rand(3):totable()) -- the RNG is back where it was saved
    assert.same({ "1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias" },
      (function() local n = {} for i, x in ipairs(m2:named_parameters()) do n[i] = x[1] end return n end)())
    -- read alone: nothing is restored, the state comes back as tensors
    local r = recur.load(tmp("a.safetensors"))
    same(m[1].weight, r.model["1.weight"])
    assert.equal("recur-checkpoint-1", r.metadata.format)
    assert.equal(48, #r.rng_state)
  end)

  it("optimizer = false reads the model and the extras, not the optimizer's tensors", function()
    recur.seed(2)
    local m = model()
    local opt = recur.optim.Adam(m, { lr = 1e-2 })
    train_steps(m, opt, 3)
    local perm = T { 3, 1, 2 }
    recur.save(tmp("noopt.safetensors"), { model = m, optimizer = opt, tensors = { perm = perm } })
    local model_bytes = 0
    for _, nt in ipairs(m:named_state()) do model_bytes = model_bytes + 4 * nt[2]:numel() end
    assert.equal(4 * (20 + 5 + 5 + 5 + 15 + 3), model_bytes)
    collectgarbage() collectgarbage()
    local live0 = recur.memory().live
    local ck = recur.load(tmp("noopt.safetensors"), { optimizer = false })
    -- exactly the model's tensors and the extra were read: no Adam moments (2 per parameter)
    assert.equal(live0 + model_bytes + 12, recur.memory().live)
    assert.is_nil(ck.optimizer)
    assert.equal(3, ck.step)
    same(perm, ck.tensors.perm)
    for name, t in pairs(m:state_dict()) do same(t, ck.model[name]) end
    local listed = 0
    for _, n in ipairs(ck.names) do if n:match("^optimizer%.") then listed = listed + 1 end end
    assert.equal(12, listed) -- 6 parameters x (exp_avg, exp_avg_sq), named but not read
    assert.equal("F32", ck.dtypes["optimizer.1.exp_avg"])
    -- the full read has them; restoring a model with optimizer = false works as without it
    assert.equal(12, (function()
      local k = 0
      for _, ps in ipairs(recur.load(tmp("noopt.safetensors")).optimizer.params) do
        for _, v in pairs(ps) do if recur.is_tensor(v) then k = k + 1 end end
      end
      return k
    end)())
    local m2 = model()
    recur.load(tmp("noopt.safetensors"), { model = m2, optimizer = false })
    for name, t in pairs(m:state_dict()) do same(t, m2:state_dict()[name]) end
  end)

  it("writes the safetensors layout: 8-byte length, JSON header padded to 8, raw float32", function()
    local m = nn.Linear(2, 2)
    m:load_state_dict { weight = T { { 1, 2 }, { 3, 4 } }, bias = T { -1, 0.5 } }
    recur.save(tmp("layout.safetensors"), { model = m, rng = false, tensors = { perm = T { 3, 1, 2 } } })
    local s = read_all(tmp("layout.safetensors"))
    local n = string.unpack("<I8", s)
    assert.equal(0, n % 8)
    assert.equal(8 + n + 4 * (4 + 2 + 3), #s)
    local h = json.decode(s:sub(9, 8 + n))
    assert.same({ dtype = "F32", shape = { 2, 2 }, data_offsets = { 0, 16 } }, h["model.weight"])
    assert.same({ 2 }, h["model.bias"].shape)
    assert.same({ 3 }, h["extra.perm"].shape)
    assert.is_nil(h.__metadata__["recur.rng_state"])
    assert.equal(1, string.unpack("<f", s, 9 + n))
    assert.equal(0.5, string.unpack("<f", s, 9 + n + 16 + 4))
    assert.same({ 3, 1, 2 }, recur.load(tmp("layout.safetensors")).tensors.perm:totable())
  end)

  it("is read by numpy", function()
    assert(os.execute(PY .. " -c 'import numpy' 2>/dev/null"),
      "no " .. PY .. " with numpy (python3-numpy: make deps)")
    recur.seed(7)
    local m = model()
    local opt = recur.optim.SGD(m, { lr = 0.1, momentum = 0.9 })
    train_steps(m, opt, 2)
    recur.save(tmp("py.safetensors"), { model = m, optimizer = opt, meta = { note = "für PyTorch" } })
    local out = H.sh(PY .. " tests/fixtures/read_safetensors.py " .. q(tmp("py.safetensors")))
    local ok, r = pcall(json.decode, out)
    assert(ok, "python said: " .. out)
    local ck = recur.load(tmp("py.safetensors"))
    assert.same(ck.names, r.names)
    assert.equal(2 * 6, #r.names) -- 6 parameters and 6 momentum buffers
    for name, t in pairs(ck.model) do
      local full = "model." .. name
      assert.same(t:size(), r.shapes[full])
      local s = 0
      for _, v in ipairs(t:reshape(t:numel()):totable()) do s = s + v end
      assert.is_true(math.abs(s - r.sums[full]) < 1e-9, full)
    end
    assert.same({ note = "für PyTorch" }, json.decode(r.metadata["recur.meta"]))
  end)

  it("reads the other safetensors dtypes, converted to float32", function()
    local data = string.pack("<d", -1.5) .. string.pack("<i8", -7) .. string.pack("<i4", 123456)
      .. string.pack("<I2", 0x3C00) .. string.pack("<I2", 0xC000) -- f16: 1, bf16: -2
      .. string.pack("<I1", 255) .. string.pack("<i1", -3) .. string.pack("<I1", 1) .. string.pack("<i2", -300)
    local h = json.encode {
      d = { dtype = "F64", shape = { 1 }, data_offsets = { 0, 8 } },
      l = { dtype = "I64", shape = { 0 }, data_offsets = { 8, 16 } },
      i = { dtype = "I32", shape = { 1, 1 }, data_offsets = { 16, 20 } },
      h = { dtype = "F16", shape = { 1 }, data_offsets = { 20, 22 } },
      b = { dtype = "BF16", shape = { 1 }, data_offsets = { 22, 24 } },
      u = { dtype = "U8", shape = { 1 }, data_offsets = { 24, 25 } },
      s = { dtype = "I8", shape = { 1 }, data_offsets = { 25, 26 } },
      o = { dtype = "BOOL", shape = { 1 }, data_offsets = { 26, 27 } },
      w = { dtype = "I16", shape = { 1 }, data_offsets = { 27, 29 } },
    }
    h = h:gsub('"shape":%[0%]', '"shape":[]') -- a 0-d tensor (an empty Lua table encodes as {})
    st_file(tmp("dtypes.safetensors"), h, data)
    local ck = recur.load(tmp("dtypes.safetensors"))
    local t = ck.tensors
    assert.same({ -1.5 }, t.d:totable())
    assert.equal(-7, t.l:item())
    assert.same({ { 123456 } }, t.i:totable())
    assert.same({ 1 }, t.h:totable())
    assert.same({ -2 }, t.b:totable())
    assert.same({ 255 }, t.u:totable())
    assert.same({ -3 }, t.s:totable())
    assert.same({ 1 }, t.o:totable())
    assert.same({ -300 }, t.w:totable())
    assert.equal("BF16", ck.dtypes.b)
  end)
end)

describe("load refuses a bad file", function()
  local good_header = { a = { dtype = "F32", shape = { 2 }, data_offsets = { 0, 8 } } }
  local function refused(p, want)
    local e = err_of(function() recur.load(p) end)
    has(e, "load: " .. p)
    has(e, want)
  end

  it("truncated anywhere", function()
    recur.save(tmp("t.safetensors"), { model = nn.Linear(3, 3) })
    local s = read_all(tmp("t.safetensors"))
    write_all(tmp("t1"), s:sub(1, 5))
    refused(tmp("t1"), "is truncated: 5 bytes, but a safetensors file starts with an 8-byte header length")
    write_all(tmp("t2"), s:sub(1, 40))
    refused(tmp("t2"), "is truncated: the header length is")
    write_all(tmp("t3"), s:sub(1, #s - 4))
    refused(tmp("t3"), "are out of range: the data section has")
    refused(tmp("t3"), "(a truncated file?)")
    write_all(tmp("t4"), "")
    refused(tmp("t4"), "is truncated: 0 bytes")
    has(err_of(function() recur.load(tmp("missing")) end), "load: cannot open " .. tmp("missing") .. ": No such file")
  end)

  it("a bad header length", function()
    write_all(tmp("h0"), string.pack("<I8", 0) .. "{}")
    refused(tmp("h0"), "bad header length 0")
    write_all(tmp("h1"), string.pack("<I8", 1 << 40) .. "{}")
    refused(tmp("h1"), "bad header length 1099511627776")
  end)

  it("invalid JSON", function()
    -- syntax: jansson's message and the byte where it stopped; structure: recur's
    for i, case in ipairs {
      { "{", "invalid header JSON at byte 1: string or '}' expected near end of file" },
      { "nope", "'[' or '{' expected near 'nope'" }, { '{"a":}', "unexpected token near '}'" },
      { "{} x", "end of file expected near 'x'" }, { '{"a":{"dtype":"F32",}}', "string or '}' expected near '}'" },
      { '{"a\1":{}}', "control character 0x1" }, { '{"\xff":{}}', "the header is not valid UTF-8" },
      { '{"a\\ud800":{}}', "invalid Unicode '\\uD800'" }, { '{"__metadata__":{"k":"a\\u0000"}}', "\\u0000 in a string" },
      { '{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,0]}}', "invalid token near '0'" },
      { '{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,0]}}', "too big integer" },
      { '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}', 'the shape of tensor "a": expected a non-negative integer' },
      { '{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}}', "expected an integer, got a fraction" },
      { '{"a":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,0]}}', "integer too large" },
      { '{"a":{"dtype":"F32","shape":[0],"data_offsets":[0]}}', 'the data_offsets of tensor "a": expected [begin, end]' },
      { '{"a":{"dtype":3,"shape":[0],"data_offsets":[0,0]}}', 'the dtype of tensor "a": expected a string' },
      { '{"__metadata__":{"k":1}}', "the value of metadata key \"k\" is not a string" },
      { '{"__metadata__":[]}', '"__metadata__" is not an object' }, { "[]", "the header is an array, not an object" },
      { '{"a": 1}', 'the entry of tensor "a" is not an object' },
      { '{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}', "invalid header JSON at byte 57: duplicate tensor name \"a\"" },
      { '{"__metadata__":{"k":"1","k":"2"}}', 'duplicate metadata key "k"' },
      { '{"__metadata__":{},"__metadata__":{}}', 'duplicate "__metadata__"' },
      { '{"a":{"dtype":"F32","shape":[0]}}', "the entry of tensor \"a\" lacks \"data_offsets\"" },
      { '{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1}}', "unexpected field \"x\"" },
      { '{"a":{"dtype":"F32","shape":[0],"shape":[0],"data_offsets":[0,0]}}', "duplicate field \"shape\" in the entry of \"a\"" },
    } do
      st_file(tmp("j" .. i), case[1])
      refused(tmp("j" .. i), case[2])
    end
  end)

  it("offsets out of range, overlapping or leaving holes; sizes that do not match", function()
    st_file(tmp("o1"), { a = { dtype = "F32", shape = { 100 }, data_offsets = { 0, 400 } } }, f32(1, 2))
    refused(tmp("o1"), 'data_offsets [0, 400] of tensor "a" are out of range: the data section has 8 bytes')
    st_file(tmp("o2"), { a = { dtype = "F32", shape = { 2 }, data_offsets = { 0, 8 } }, b = { dtype = "F32", shape = { 2 }, data_offsets = { 4, 12 } } }, f32(1, 2, 3))
    refused(tmp("o2"), "overlap")
    st_file(tmp("o3"), { a = { dtype = "F32", shape = { 1 }, data_offsets = { 0, 4 } }, b = { dtype = "F32", shape = { 1 }, data_offsets = { 8, 12 } } }, f32(1, 2, 3))
    refused(tmp("o3"), '4 bytes before tensor "b" belong to no tensor')
    st_file(tmp("o4"), good_header, f32(1, 2, 3))
    refused(tmp("o4"), "4 bytes after the last tensor belong to no tensor")
    st_file(tmp("o5"), { a = { dtype = "F32", shape = { 3 }, data_offsets = { 0, 8 } } }, f32(1, 2))
    refused(tmp("o5"), 'tensor "a" of dtype F32 and 3 elements needs 12 bytes but its data_offsets [0, 8] span 8')
    st_file(tmp("o6"), { a = { dtype = "F32", shape = { 2 }, data_offsets = { 8, 0 } } }, f32(1, 2))
    refused(tmp("o6"), "are reversed")
    st_file(tmp("o7"), { a = { dtype = "F32", shape = { 1, 1, 1, 1, 1, 1, 1, 1, 1 }, data_offsets = { 0, 4 } } }, f32(1))
    refused(tmp("o7"), 'the shape of tensor "a" has more than 8 dimensions')
    -- found by tests/c/fuzz_safetensors_header.c: this message named neither file nor tensor
    st_file(tmp("o8"), { a = { dtype = "F32", shape = { 1099511627777 }, data_offsets = { 0, 4 } } }, f32(1))
    refused(tmp("o8"), 'tensor "a": shape is too large (more than 2^40 elements)')
  end)

  it("an unknown dtype", function()
    st_file(tmp("d1"), { a = { dtype = "F17", shape = { 2 }, data_offsets = { 0, 8 } } }, f32(1, 2))
    refused(tmp("d1"), 'tensor "a" has unknown dtype "F17"')
    st_file(tmp("d2"), { a = { dtype = "F8_E4M3", shape = { 2 }, data_offsets = { 0, 2 } } }, "ab")
    refused(tmp("d2"), 'unknown dtype "F8_E4M3"')
  end)

  it("a shape that does not match the model: nothing is restored", function()
    local small = nn.Sequential { nn.Linear(2, 3) }
    recur.save(tmp("s.safetensors"), { model = small })
    local m = nn.Sequential { nn.Linear(3, 3) }
    local before = m[1].weight:clone()
    local e = err_of(function() recur.load(tmp("s.safetensors"), { model = m }) end)
    has(e, "'1.weight' has shape [3, 2] in the state but [3, 3] in the model")
    same(before, m[1].weight)
    e = err_of(function() recur.load(tmp("s.safetensors"), { model = nn.Sequential { nn.Linear(2, 3), nn.Linear(3, 1) } }) end)
    has(e, "missing '2.weight'")
  end)

  it("an optimizer that does not match: neither the model nor the RNG change", function()
    recur.seed(3)
    local m = nn.Linear(2, 2)
    local opt = recur.optim.Adam(m, { lr = 0.1 })
    train_steps(nn.Sequential { nn.Linear(4, 3) }, recur.optim.SGD(nn.Linear(1, 1), { lr = 0 }), 0)
    recur.save(tmp("o.safetensors"), { model = m, optimizer = opt })
    local m2 = nn.Linear(2, 2)
    local w = m2.weight:clone()
    local state = recur.rng_state()
    local e = err_of(function() recur.load(tmp("o.safetensors"), { model = m2, optimizer = recur.optim.SGD(m2, { lr = 0.1 }) }) end)
    has(e, "holds a Adam optimizer state, not SGD")
    same(w, m2.weight)
    assert.equal(state, recur.rng_state())
    e = err_of(function() recur.load(tmp("o.safetensors"), { model = m2, optimizer = recur.optim.Adam({ m2.weight }, { lr = 0.1 }) }) end)
    has(e, "the checkpoint's optimizer has 2 parameters, this one 1")
    same(w, m2.weight)
    e = err_of(function() recur.load(tmp("s.safetensors"), { optimizer = opt }) end)
    has(e, "holds no optimizer state")
  end)
end)

describe("atomic writes", function()
  local function listing() return (H.sh("ls -A " .. q(tmpdir))) end

  it("a failed save leaves the old file whole and no temporary file", function()
    local m = nn.Linear(2, 2)
    recur.save(tmp("keep.safetensors"), { model = m })
    local before = read_all(tmp("keep.safetensors"))
    has(err_of(function() recur.save(tmp("keep.safetensors"), { model = m, meta = { f = print } }) end), "save: meta cannot be stored")
    has(err_of(function() recur.save(tmp("keep.safetensors"), { model = m, tensors = { [""] = recur.ones(1) } }) end), "save: the keys of tensors must be non-empty strings")
    has(err_of(function() recur.save(tmp("nodir/x.safetensors"), { model = m }) end), "save: cannot create a temporary file next to")
    has(err_of(function() recur.save(tmp("keep.safetensors"), { modle = m }) end), "save: unknown option 'modle'")
    assert.equal(before, read_all(tmp("keep.safetensors")))
    assert.is_nil(listing():find("tmp%-"))
  end)

  it("a writer killed at any moment leaves a loadable file (old or new)", function()
    -- a child process rewrites a 4M-parameter checkpoint in a loop, alternating all-ones and
    -- all-twos; it is killed with SIGKILL after different delays
    local script = tmp("writer.lua")
    write_all(script, [[
      local recur = require "recur"
      local m = recur.nn.Linear(2048, 2048)
      local path = arg[1]
      local v = 1
      while true do
        recur.no_grad(function() m.weight:fill_(v) m.bias:fill_(v) end)
        recur.save(path, { model = m, meta = { v = v } })
        v = 3 - v
      end
    ]])
    local path = tmp("killed.safetensors")
    local m = nn.Linear(2048, 2048)
    recur.no_grad(function() m.weight:fill_(1) m.bias:fill_(1) end)
    recur.save(path, { model = m, meta = { v = 1 } })
    local slow = os.getenv("RECUR_SANITIZED") and 4 or 1
    for i, delay in ipairs { 0.15, 0.35, 0.5, 0.8 } do
      -- --foreground: timeout waits until the writer is gone (otherwise it kills its whole
      -- process group, itself first, and returns while the writer may still hold its lock)
      os.execute(string.format("timeout --foreground -s KILL %g %s %s %s >/dev/null 2>&1", delay * slow, q(BIN), q(script), q(path)))
      local ck = recur.load(path)
      local v = ck.meta.v
      assert.is_true(v == 1 or v == 2)
      assert.equal(v * 2048 * 2048, ck.model.weight:sum():item(), "run " .. i)
      assert.equal(v, ck.model.bias:min():item())
    end
    -- the writers' temporaries are gone after the loads
    assert.is_nil(listing():find("killed%.safetensors%.tmp%-"), H.sh("ls -la " .. q(tmpdir)))
  end)

  it("the next save or load removes the temporaries of killed writers, not a live writer's", function()
    local target = tmp("st.safetensors")
    local function put(name, bytes) write_all(tmp(name), bytes or "stale data") end
    -- a "live writer": a process holding an exclusive flock on its temporary file, as a writer
    -- does while it writes (flock(1) from util-linux); it lets go when its stdin closes
    put("st.safetensors.tmp-LiVe01")
    local ready = tmp("holder.ready")
    local holder = assert(io.popen("flock -x " .. q(tmp("st.safetensors.tmp-LiVe01"))
      .. " sh -c " .. q("touch " .. q(ready) .. "; exec cat >/dev/null"), "w"))
    local waited = 0
    while not io.open(ready, "r") do -- a safety bound only, never reached on a sane machine
      assert(waited < 600, "flock(1) did not take its lock")
      os.execute("sleep 0.1")
      waited = waited + 1
    end
    local stale = { "st.safetensors.tmp-AbC123", "st.safetensors.tmp-zzzzzz", "st.safetensors.tmp-000000" }
    for _, n in ipairs(stale) do put(n) end
    put("st.safetensors.tmp-emptyX", "") -- killed before its first byte: removed too
    local kept = {
      "st.safetensors.tmp-AbC12", "st.safetensors.tmp-AbC1234", "st.safetensors.tmp-Ab.123",
      "st.safetensors.tmp-Ab-123", "xst.safetensors.tmp-AbC123", "other.safetensors.tmp-AbC123",
      "st.safetensors.tmp-", "st.safetensors.tmpAbC1234", "st.safetensors.TMP-AbC123",
    }
    for _, n in ipairs(kept) do put(n) end
    os.execute("mkdir " .. q(tmp("st.safetensors.tmp-DiRect")))
    os.execute("ln -s " .. q(tmp("other.safetensors.tmp-AbC123")) .. " " .. q(tmp("st.safetensors.tmp-SyMlnk")))
    kept[#kept + 1] = "st.safetensors.tmp-DiRect"
    kept[#kept + 1] = "st.safetensors.tmp-SyMlnk"
    kept[#kept + 1] = "st.safetensors.tmp-LiVe01"
    local function exists(n) return os.execute("test -e " .. q(tmp(n)) .. " -o -L " .. q(tmp(n))) == true end
    recur.save(target, { model = nn.Linear(2, 2) })
    for _, n in ipairs(stale) do assert.is_false(exists(n), n .. " was left") end
    assert.is_false(exists("st.safetensors.tmp-emptyX"))
    for _, n in ipairs(kept) do assert.is_true(exists(n), n .. " was removed") end
    -- a load removes them too
    put(stale[1])
    recur.load(target)
    assert.is_false(exists(stale[1]))
    -- once the writer is gone, its temporary is stale
    holder:close()
    recur.load(target)
    assert.is_false(exists("st.safetensors.tmp-LiVe01"))
    for i = 1, #kept - 1 do assert.is_true(exists(kept[i]), kept[i] .. " was removed") end
  end)
end)

-- CRC-32 (zlib's, IEEE 802.3 polynomial), written out here so that the spec checks the
-- convention rather than the C code against itself
local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1 == 1) and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  CRC_TABLE[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = CRC_TABLE[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return string.format("%08x", c ~ 0xFFFFFFFF)
end

-- the file's header (decoded), its raw text and the offset of its data section (0-based)
local function header_of(s)
  local n = string.unpack("<I8", s)
  return json.decode(s:sub(9, 8 + n)), s:sub(9, 8 + n), 8 + n
end
local function flip(s, i, mask) -- byte i (1-based) xor mask
  return s:sub(1, i - 1) .. string.char(s:byte(i) ~ (mask or 1)) .. s:sub(i + 1)
end

describe("checksums", function()
  it("are CRC-32s of each tensor's bytes and of the header, in the metadata", function()
    local m = nn.Linear(2, 2)
    m:load_state_dict { weight = T { { 1, 2 }, { 3, 4 } }, bias = T { -1, 0.5 } }
    recur.save(tmp("crc.safetensors"), { model = m, meta = { v = 1 } })
    local s = read_all(tmp("crc.safetensors"))
    local h, raw, base = header_of(s)
    for _, name in ipairs { "model.weight", "model.bias" } do
      local o = h[name].data_offsets
      assert.equal(crc32(s:sub(base + o[1] + 1, base + o[2])), h.__metadata__["recur.crc32." .. name])
    end
    local hc = h.__metadata__["recur.header_crc32"]
    assert.matches("^%x%x%x%x%x%x%x%x$", hc)
    local i = assert(raw:find('"recur.header_crc32":"' .. hc .. '"', 1, true))
    local zeroed = raw:sub(1, i + 21) .. "00000000" .. raw:sub(i + 30)
    assert.equal(#raw, #zeroed)
    assert.equal(crc32(zeroed), hc)
    -- the reader checks them and keeps them out of ck.metadata
    local ck = recur.load(tmp("crc.safetensors"))
    assert.is_nil(ck.metadata["recur.header_crc32"])
    assert.is_nil(ck.metadata["recur.crc32.model.weight"])
    assert.equal("recur-checkpoint-1", ck.metadata.format)
    -- the names are reserved
    has(err_of(function() recur._safetensors.write(tmp("r"), {}, {}, { ["recur.crc32.x"] = "0" }) end),
      'save: metadata key "recur.crc32.x" is reserved')
    has(err_of(function() recur._safetensors.write(tmp("r"), {}, {}, { ["recur.header_crc32"] = "0" }) end),
      'save: metadata key "recur.header_crc32" is reserved')
  end)

  it("a flipped byte in any tensor's data is refused, naming the tensor and the file", function()
    recur.seed(3)
    local m = model()
    local opt = recur.optim.SGD(m, { lr = 0.1, momentum = 0.9 })
    train_steps(m, opt, 2)
    local p = tmp("flip.safetensors")
    recur.save(p, { model = m, optimizer = opt, tensors = { perm = T { 2, 1 } } })
    local s = read_all(p)
    local h, _, base = header_of(s)
    local names = 0
    for name, e in pairs(h) do
      if name ~= "__metadata__" then
        names = names + 1
        local o = e.data_offsets
        local bad = tmp("flipped.safetensors")
        write_all(bad, flip(s, base + (o[1] + o[2]) // 2 + 1, 0x10))
        local msg = err_of(function() recur.load(bad) end)
        has(msg, "load: " .. bad .. ": tensor \"" .. name .. "\" does not match its checksum", "the file is corrupted")
        -- a tensor that is not read (optimizer = false) is still checked
        has(err_of(function() recur.load(bad, { optimizer = false }) end), "tensor \"" .. name .. "\" does not match")
      end
    end
    assert.equal(6 + 6 + 1, names) -- 6 parameters, 6 momentum buffers, the extra
    recur.load(p, { optimizer = false }) -- the unflipped file loads
  end)

  it("a flipped byte anywhere in the header or its length is refused", function()
    local m = nn.Linear(2, 2)
    local p = tmp("hdr.safetensors")
    recur.save(p, { model = m, meta = { v = 1, name = "x" } })
    local s = read_all(p)
    local _, _, base = header_of(s)
    local bad = tmp("hdr_bad.safetensors")
    for i = 1, base do
      for _, mask in ipairs { 0x01, 0x20 } do
        write_all(bad, flip(s, i, mask))
        local ok, e = pcall(recur.load, bad)
        assert(not ok, string.format("byte %d xor 0x%02x was accepted", i, mask))
        has(tostring(e), "load: ")
        has(tostring(e), bad)
      end
    end
    -- the message says what happened when the JSON is still valid
    local i = s:find('\\"v\\":1', 1, true) -- in the JSON of recur.meta
    write_all(bad, flip(s, i + 6, 0x01)) -- "v":0
    has(err_of(function() recur.load(bad) end), "load: " .. bad .. ": the header does not match its checksum",
      "the file is corrupted")
    i = s:find('"dtype":"F32"', 1, true)
    write_all(bad, s:sub(1, i + 8) .. "I" .. s:sub(i + 10)) -- F32 -> I32
    has(err_of(function() recur.load(bad) end), "the header does not match its checksum")
  end)

  it("files without checksums (older ones, other writers) still load; half a set is refused", function()
    local hdr = {
      __metadata__ = { format = "recur-checkpoint-1", ["recur.version"] = "0.1" },
      ["model.weight"] = { dtype = "F32", shape = { 2 }, data_offsets = { 0, 8 } },
    }
    st_file(tmp("old.safetensors"), hdr, f32(1, 2))
    assert.same({ 1, 2 }, recur.load(tmp("old.safetensors")).model.weight:totable())
    hdr.__metadata__["recur.crc32.model.weight"] = crc32(f32(1, 2))
    st_file(tmp("half.safetensors"), hdr, f32(1, 2))
    has(err_of(function() recur.load(tmp("half.safetensors")) end),
      "load: " .. tmp("half.safetensors") .. ": tensor checksums without a header checksum")
  end)
end)

describe("recur checkpoints", function()
  it("refuse a dtype other than F32, naming the tensor and the dtype", function()
    for _, dt in ipairs { "I32", "F64", "F16", "BF16", "U8" } do
      local size = ({ I32 = 4, F64 = 8, F16 = 2, BF16 = 2, U8 = 1 })[dt]
      st_file(tmp("dt.safetensors"), {
        __metadata__ = { format = "recur-checkpoint-1", ["recur.version"] = "0.1" },
        ["model.a"] = { dtype = "F32", shape = { 2 }, data_offsets = { 0, 8 } },
        ["model.b"] = { dtype = dt, shape = { 2 }, data_offsets = { 8, 8 + 2 * size } },
      }, f32(1, 2) .. ("\0"):rep(2 * size))
      has(err_of(function() recur.load(tmp("dt.safetensors")) end),
        "load: " .. tmp("dt.safetensors") .. ": tensor \"model.b\" has dtype " .. dt
        .. ": a recur checkpoint holds F32 tensors only")
    end
  end)

  it("refuse a format they do not know", function()
    local function file(meta)
      st_file(tmp("fmt.safetensors"), {
        __metadata__ = meta,
        ["model.a"] = { dtype = "F32", shape = { 1 }, data_offsets = { 0, 4 } },
      }, f32(1))
      return tmp("fmt.safetensors")
    end
    for _, f in ipairs { "recur-checkpoint-2", "recur-checkpoint-10", "recur-checkpoint-", "recur" } do
      has(err_of(function() recur.load(file { format = f }) end),
        "load: " .. tmp("fmt.safetensors") .. ": format \"" .. f .. "\" is not one this recur reads (recur-checkpoint-1")
    end
    -- recur's metadata without its format line (a flipped byte in the key)
    has(err_of(function() recur.load(file { formab = "recur-checkpoint-1", ["recur.version"] = "0.1" }) end),
      "has recur metadata but no format")
    -- other writers' safetensors files keep loading
    assert.equal(1, recur.load(file { format = "pt" }).model.a:item())
    assert.equal(1, recur.load(file {}).model.a:item())
  end)
end)

describe("exact resume", function()
  -- 20 steps straight vs 10 steps, save, load in a fresh process, 10 more: bit-identical.
  -- The model has dropout; the data is reshuffled every epoch (4 batches of 4), and the
  -- checkpoint falls in the middle of epoch 3, so the permutation and the position are saved.
  local script = [[
    local recur = require "recur"
    local nn = recur.nn
    local mode, a, b, c = ...
    recur.seed(1)
    local X, Y = recur.randn(16, 6), recur.randint(1, 3, 16)
    recur.seed(2)
    local m = nn.Sequential { nn.Linear(6, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 3) }
    local opt = recur.optim.Adam(m, { lr = recur.optim.schedules.steps { 0.01, { 12, 0.003 } } })
    local perm, pos, step = nil, 4, 0
    local function run(n)
      for _ = 1, n do
        if pos == 4 then perm, pos = recur.randperm(16), 0 end
        local idx = perm:narrow(1, pos * 4 + 1, 4)
        pos = pos + 1
        opt:zero_grad()
        nn.cross_entropy(m(X:index_select(1, idx)), Y:index_select(1, idx)):backward()
        opt:step()
        step = step + 1
      end
    end
    if mode == "straight" then
      run(tonumber(a))
      recur.save(b, { model = m, rng = false })
    elseif mode == "first" then
      run(tonumber(a))
      recur.save(b, { model = m, optimizer = opt, meta = { pos = pos, step = step }, tensors = { perm = perm } })
    else -- resume ckpt n out
      local ck = recur.load(a, { model = m, optimizer = opt })
      perm, pos, step = ck.tensors.perm, ck.meta.pos, ck.meta.step
      run(tonumber(b))
      recur.save(c, { model = m, rng = false })
    end
  ]]
  it("20 steps straight = 10 steps, save, load in a new process, 10 steps", function()
    local sp = tmp("resume.lua")
    write_all(sp, script)
    local function run(...)
      local args = {}
      for i, v in ipairs { ... } do args[i] = q(v) end
      local cmd = q(BIN) .. " " .. q(sp) .. " " .. table.concat(args, " ")
      local out, code = H.sh(cmd)
      assert(code == 0, cmd .. ": " .. out)
    end
    run("straight", "20", tmp("straight.st"))
    run("first", "10", tmp("half.st"))
    run("resume", tmp("half.st"), "10", tmp("resumed.st"))
    run("straight", "19", tmp("nineteen.st"))
    local a = recur.load(tmp("straight.st")).model
    local b = recur.load(tmp("resumed.st")).model
    local c = recur.load(tmp("nineteen.st")).model
    local differs = false
    for name, t in pairs(a) do
      assert.same(t:totable(), b[name]:totable(), name) -- bit for bit
      if not differs then differs = (t - c[name]):abs():sum():item() > 0 end
    end
    assert.is_true(differs) -- the comparison can fail: 19 steps are not 20
  end)
end)

describe("recur.json", function()
  it("round-trips and refuses what JSON cannot hold", function()
    local v = { a = 1, b = { 1, 2, { c = "x\n\"y\"" } }, d = -2.5e-7, e = true, f = {}, g = 2 ^ 53 }
    assert.same(v, json.decode(json.encode(v)))
    assert.equal('{"a":[1,2.5],"b":"\\u0001"}', json.encode { a = { 1, 2.5 }, b = "\1" })
    assert.equal(0.1, json.decode(json.encode(0.1)))
    assert.equal("integer", math.type(json.decode("12")))
    assert.equal("float", math.type(json.decode("12.0")))
    assert.equal("é😀", json.decode('"\\u00e9\\ud83d\\ude00"'))
    has(err_of(function() json.encode { x = 0 / 0 } end), "json.encode: value.x is not a finite number")
    local cyc = {}
    cyc.self = cyc
    has(err_of(function() json.encode(cyc) end), "contains a cycle")
    has(err_of(function() json.encode { [1] = 1, x = 2 } end), "mixes non-string keys")
    has(err_of(function() json.decode("[1,]") end), "json.decode: unexpected character")
    has(err_of(function() json.decode('{"a":1,"a":2}') end), 'duplicate key "a"')
    has(err_of(function() json.decode("01") end), "unexpected data after the value")
    has(err_of(function() json.decode("[1e400]") end), "json.decode: number out of range at byte 2")
    has(err_of(function() json.decode('"\\ud800"') end), "unpaired surrogate")
    assert.equal(json.null, json.decode("[null]")[1])
  end)
end)
