-- The flat gradient buffer is lazy (lib/recur/nn/module.lua, top comment): a model used only
-- for inference (built, loaded, run under no_grad, stepped, sampled) holds no gradient memory;
-- the buffer appears when first needed (the first backward that reaches a parameter,
-- flat_parameters(), zero_grad(), an optimizer), one buffer over every parameter, each
-- parameter's .grad a view of it, backward accumulating straight into it.
local recur = require "recur"
local nn = recur.nn
local T = recur.tensor

local CharRNN = require "models.charrnn"

local function live()
  collectgarbage("collect")
  collectgarbage("collect")
  return recur.memory().live
end

local function tmpname(tag)
  return os.tmpname() .. "_" .. tag .. ".ckpt"
end

-- max |a - b| over two tensors of the same shape
local function maxdiff(a, b) return (a - b):abs():max():item() end

-- the slice of a 1-D tensor g holding parameter i's span (in parameter order)
local function span(m, g, i)
  local off = 0
  local ps = m:parameters()
  for k = 1, i - 1 do off = off + ps[k]:numel() end
  return g:narrow(1, off + 1, ps[i]:numel()):view(ps[i]:size())
end

local cfg = { vocab = 7, embed = 4, hidden = 6, layers = 2, cell = "lstm" }

describe("lazy gradient buffer", function()
  it("an inference-only CharRNN (build, load, forward under no_grad, step, sample) holds only its values", function()
    recur.seed(11)
    -- a trained model's checkpoint, with its optimizer state
    local a = CharRNN.new(cfg)
    local opt = recur.optim.Adam(a, { lr = 1e-2 })
    local x = T { { 1, 2 }, { 3, 4 }, { 5, 6 } }
    local y = T { { 2, 3 }, { 4, 5 }, { 6, 7 } }
    opt:zero_grad()
    a:loss(x, y):backward()
    opt:step()
    local path = tmpname("lazy")
    recur.save(path, { model = a, optimizer = opt })

    local before = live()
    local b = CharRNN.new(cfg)
    local n = b:num_parameters()
    -- built: exactly the value buffer (4 bytes a parameter), no gradient
    assert.are.equal(before + 4 * n, live())
    local ck = recur.load(path, { optimizer = false })
    os.remove(path)
    b:load_state_dict(ck.model)
    for i, p in ipairs(b:parameters()) do
      assert.is_nil(p.grad, b:named_parameters()[i][1])
      assert.are.equal(0, maxdiff(p, a:parameters()[i]))
    end
    local logits
    recur.no_grad(function()
      logits = b:forward(x)
      local l1 = b:step({ 3 })
      local l2 = b:step(T { 3 })
      assert.are.equal(0, maxdiff(l1, l2))
    end)
    assert.are.same({ 6, 7 }, logits:size())
    local ids = b:sample { length = 20 }
    assert.are.equal(20, #ids)
    ids = b:sample { length = 5, path = "lua" }
    assert.are.equal(5, #ids)
    -- the summary and the state dict do not make it either
    b:summary(nil, { print = false })
    local sd = b:state_dict()
    local k = 0
    for _, t in pairs(sd) do k = k + t:numel() end
    assert.are.equal(n, k)
    for _, p in ipairs(b:parameters()) do assert.is_nil(p.grad) end
    -- no gradient buffer exists: asking for it now allocates exactly n floats
    ck, logits, sd = nil, nil, nil
    local now = live()
    local _, g = b:flat_parameters()
    assert.are.equal(n, g:numel())
    assert.are.equal(now + 4 * n, live())
    assert.are.equal(0, g:abs():sum():item())
  end)

  it("the first backward makes one flat buffer and accumulates straight into it", function()
    recur.seed(5)
    local m = CharRNN.new(cfg)
    local n = m:num_parameters()
    local x = T { { 1, 2 }, { 3, 4 } }
    local y = T { { 2, 3 }, { 4, 5 } }
    for _, p in ipairs(m:parameters()) do assert.is_nil(p.grad) end
    m:loss(x, y):backward()
    local named = m:named_parameters()
    local got = {}
    for i, np in ipairs(named) do
      assert.is_not_nil(np[2].grad, np[1])
      got[i] = np[2].grad:clone()
    end
    local base = live()
    -- asking for it now returns the buffer backward wrote: no copy, no new memory
    local _, g = m:flat_parameters()
    assert.are.equal(n, g:numel())
    assert.are.equal(base, live())
    for i = 1, #named do assert.are.equal(0, maxdiff(span(m, g, i), got[i]), named[i][1]) end
    -- writes through g are the parameters' gradients (views, not copies)
    recur.no_grad(function() g:fill_(0.25) end)
    for _, np in ipairs(named) do assert.are.equal(0.25, np[2].grad:max():item()) end
    -- the next backward adds into the same memory: 0.25 + the same gradients as before
    m:loss(x, y):backward()
    for i = 1, #named do
      assert.is_true(maxdiff(span(m, g, i), got[i] + 0.25) < 1e-6, named[i][1])
    end
    -- zero_grad zeros g in place, the views stay
    m:zero_grad()
    assert.are.equal(0, g:abs():sum():item())
    m:loss(x, y):backward()
    for i = 1, #named do
      assert.is_true(maxdiff(named[i][2].grad, got[i]) < 1e-6, named[i][1])
      assert.are.equal(0, maxdiff(span(m, g, i), named[i][2].grad))
    end
  end)

  it("an optimizer built over a parameter list attaches every slot; a dropped gradient's span reads as zeros", function()
    recur.seed(2)
    local m = nn.Sequential { nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1) }
    local ps = m:parameters()
    for _, p in ipairs(ps) do assert.is_nil(p.grad) end
    local opt = recur.optim.SGD(ps, { lr = 0.1 })
    for _, p in ipairs(ps) do assert.are.equal(0, p.grad:abs():sum():item()) end
    -- the buffer exists already: asking for it allocates nothing
    local base = live()
    local _, g = m:flat_parameters()
    assert.are.equal(base, live())
    assert.are.equal(6 + 2 + 2 + 1, g:numel())
    local x = T { { 1, -1, 0.5 } }
    m(x):sum():backward()
    -- d/d(bias of the last layer) of the sum is 1
    assert.are.equal(1, g:get(11))
    ps[4].grad = nil -- dropped by hand: its span of g reads as zeros
    assert.are.equal(0, g:get(11))
    assert.is_true(g:abs():sum():item() > 0)
    m(x):sum():backward() -- the same span again
    assert.are.equal(1, g:get(11))
    assert.are.equal(1, ps[4].grad:get(1))
    opt:step()
  end)

  it("gradients made before the model was packed are copied into the buffer", function()
    local l = nn.Linear(2, 1, { weight_init = 0.5, bias_init = 0 })
    -- nothing asked l for its parameters yet: autograd makes gradients of its own
    local x = T { { 1, 3 } }
    l(x):sum():backward()
    assert.are.same({ { 1, 3 } }, l.weight.grad:totable())
    local _, g = l:flat_parameters()
    assert.are.same({ 1, 3, 1 }, g:totable())
    -- from now on they are views of the buffer
    l(x):sum():backward()
    assert.are.same({ 2, 6, 2 }, g:totable())
    assert.are.same({ { 2, 6 } }, l.weight.grad:totable())
  end)

  it("p.grad = t on a packed parameter copies t into its span of the buffer", function()
    local l = nn.Linear(2, 1, { weight_init = 0.5, bias_init = 0 })
    local ps = l:parameters() -- packed, no gradient buffer yet
    assert.is_nil(ps[1].grad)
    local t = T { { 3, 4 } }
    l.weight.grad = t -- makes the buffer: the weight's span holds t's values
    assert.is_false(t == l.weight.grad) -- a view of the buffer, not t
    assert.is_nil(l.bias.grad)
    local _, g = l:flat_parameters()
    assert.are.same({ 3, 4, 0 }, g:totable())
    g:set(5, 1) -- the gradient is the span (t:set(value, index...))
    assert.are.same({ { 5, 4 } }, l.weight.grad:totable())
    l.weight.grad = t -- the buffer exists: seen at once, without asking the module again
    assert.are.same({ 3, 4, 0 }, g:totable())
    t:fill_(9) -- t is not kept: the gradient does not follow it
    assert.are.same({ { 3, 4 } }, l.weight.grad:totable())
    l.bias.grad = T { 7 }
    assert.are.same({ 3, 4, 7 }, g:totable())
    -- the gradient stays the span: the buffer sees backward accumulate on top of it
    l(T { { 1, 3 } }):sum():backward()
    assert.are.same({ 4, 7, 8 }, g:totable())
    assert.are.same({ { 4, 7 } }, span(l, g, 1):totable())
    -- a view of the same buffer overlapping the span: read before written
    l.weight.grad = g:narrow(1, 2, 2):view(1, 2)
    assert.are.same({ 7, 8, 8 }, g:totable())
    l.weight.grad = l.weight.grad -- itself: nothing changes
    assert.are.same({ 7, 8, 8 }, g:totable())
    -- the shape must match; nothing changes on error
    local ok, e = pcall(function() l.weight.grad = T { 1, 2 } end)
    assert.is_false(ok)
    assert.truthy(e:find("grad: shape [2] does not match the tensor's shape [1, 2]", 1, true), e)
    assert.are.same({ 7, 8, 8 }, g:totable())
    -- p.grad = nil as before: the span reads as zeros, .grad is nil, backward reattaches it
    l.weight.grad = nil
    assert.is_nil(l.weight.grad)
    assert.are.same({ 0, 0, 8 }, g:totable())
    l(T { { 1, 3 } }):sum():backward()
    assert.are.same({ 1, 3, 9 }, g:totable())
    -- a tensor that is not packed keeps the tensor it is given
    local x = T { 1, 2 }:requires_grad(true)
    local gx = T { 5, 6 }
    x.grad = gx
    assert.is_true(gx == x.grad)
  end)
end)
