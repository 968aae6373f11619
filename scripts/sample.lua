-- Generates text from a checkpoint written by scripts/train_charrnn.lua.
--
--   build/recur scripts/sample.lua --checkpoint FILE [--length 500] [--temperature 1]
--                                  [--top-k 0] [--prime TEXT] [--seed N]
--
-- One character at a time at batch 1, inside recur.no_grad (the fused cells then run
-- matrix-vector kernels and record nothing). The prime text is encoded with the checkpoint's
-- vocabulary (UTF-8 code points for a utf8 model); a character the vocabulary lacks is
-- reported by name and position. Run it from the project root (docs/architecture.md, "Scripts
-- and the module path").
local recur = require("recur")
local Args = require("scripts.args")
local CharRNN = require("models.charrnn")

local spec = {
  name = "recur scripts/sample.lua",
  about = "Generates text from a character model trained by scripts/train_charrnn.lua.",
  { "checkpoint", "file", nil, "the checkpoint to load" },
  { "length", "int", 500, "characters to generate" },
  { "temperature", "number", 1.0, "softmax temperature (0 = always the most likely)" },
  { "top-k", "int", 0, "sample only among the k most likely characters (0 = all)" },
  { "prime", "text", nil, "text to start from (the model reads it first; printed too)" },
  { "seed", "int", nil, "random seed (default: from the clock)" },
  { "threads", "int", 1, "threads (2: each layer's next recurrent product on a second core, "
    .. "the same text about 1.4-2x faster for a 2-layer LSTM of 128-512 units)" },
  { "stats", "flag", false, "print the generation speed to stderr" },
}

local a = Args.parse(arg, spec)
local die = Args.die
if not a.checkpoint then die("--checkpoint FILE is required; try --help") end
if a.length < 0 then die("--length must be >= 0, got " .. a.length) end
if not (a.temperature >= 0) then die("--temperature must be >= 0, got " .. a.temperature) end
if a.top_k < 0 then die("--top-k must be >= 0, got " .. a.top_k) end
if a.threads < 1 then die("--threads must be >= 1, got " .. a.threads) end
recur.threads(a.threads)

-- the model's weights, the vocabulary and the configuration; the optimizer's state stays on disk
local ok, ck = pcall(CharRNN.load_checkpoint, a.checkpoint, { optimizer = false })
if not ok then die("cannot load the checkpoint: " .. tostring(ck)) end
local meta = ck.meta
if type(meta) ~= "table" or meta.kind ~= "charrnn" then
  die(a.checkpoint .. " is not a char-RNN checkpoint (written by scripts/train_charrnn.lua)")
end
local vocab = recur.data.Vocab.from_table(meta.vocab)
local model = CharRNN.new(meta.config)
local okl, lerr = pcall(model.load_state_dict, model, ck.model or {})
if not okl then die("the checkpoint does not fit its model: " .. tostring(lerr)) end
recur.seed(a.seed or (os.time() * 1000 + math.floor(os.clock() * 1e6)) % 2147483647)

local prime = {}
if a.prime and #a.prime > 0 then
  local okp, ids = pcall(vocab.encode, vocab, a.prime)
  if not okp then
    local msg = tostring(ids):gsub("^.-encode: ", ""):gsub("; pass {unknown.*$", "")
    die("--prime: " .. msg .. "\nthe model knows these characters: " ..
      vocab:decode(recur.arange(1, vocab:size())):gsub("\n", "\\n"))
  end
  prime = ids:totable()
end

-- stream whole characters: a utf8 vocabulary decodes per id; a byte vocabulary may split a
-- multi-byte character, so its output is buffered until it forms whole UTF-8 sequences
local pending = ""
local function emit(s, final)
  pending = pending .. s
  local cut = #pending
  if not final then
    -- hold back an incomplete UTF-8 sequence at the end
    local i = #pending
    local back = 0
    while i >= 1 and back < 4 do
      local b = pending:byte(i)
      if b < 0x80 then break end
      if b >= 0xC0 then
        local need = b >= 0xF0 and 4 or b >= 0xE0 and 3 or 2
        if #pending - i + 1 < need then cut = i - 1 end
        break
      end
      i, back = i - 1, back + 1
    end
  end
  io.stdout:write(pending:sub(1, cut))
  pending = pending:sub(cut + 1)
end

if a.prime then emit(a.prime) end
local t0 = recur.now()
local one = recur.tensor { 1 }
model:sample {
  length = a.length, temperature = a.temperature, top_k = a.top_k, prime = prime,
  on_id = function(id)
    one:set(id, 1)
    emit(vocab:decode(one))
  end,
}
emit("", true)
io.stdout:write("\n")
io.stdout:flush()
local dt = recur.now() - t0
if a.stats then
  io.stderr:write(string.format("%d characters in %.2f s (%.0f chars/s)\n", a.length, dt,
    a.length / math.max(dt, 1e-9)))
end
