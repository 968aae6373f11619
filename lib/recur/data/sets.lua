-- Dataset loaders: IDX image sets (MNIST, Fashion-MNIST), text files, character corpora, the
-- Brown corpus (words, and sentences by genre) and first names by list. The files come from
-- `data/fetch NAME` (pinned, checksum-verified); a missing one is an error that names the
-- command. The data root is $RECUR_DATA, else "data" (relative to the working directory);
-- every loader also takes dir = ... (or path = ...).
local recur = require "recur"
local C = recur._data
local Vocab = require "recur.data.vocab"
local iter = require "recur.data.iter"

local U = require "recur.data.util"
local fail, check_opts = U.fail, U.check_opts

local M = {}

function M.root()
  local r = os.getenv("RECUR_DATA")
  if r and r ~= "" then return r end
  return "data"
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- The directory of a fetched dataset, checked for `files`; else an error naming the command.
local function dataset_dir(fn, name, dir, files)
  dir = dir or (M.root() .. "/" .. name)
  for _, f in ipairs(files) do
    local p = dir .. "/" .. f
    if not exists(p) then
      error(string.format("%s: %s not found (the %s dataset is not installed there); run: data/fetch %s",
        fn, p, name, name), 3)
    end
  end
  return dir
end

-- load_idx(path[, {scale = true|false}]): the IDX file's tensor in the file's shape; ubyte
-- images (2 or more dimensions) scaled to [0, 1] by default, labels raw. Plain or gzip.
function M.load_idx(path, opts)
  opts = check_opts("load_idx", opts, { scale = true })
  if type(path) ~= "string" then fail("load_idx: path must be a string, got %s", type(path)) end
  return C.load_idx(path, opts.scale)
end

local IDX_FILES = {
  mnist = { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte" },
  ["fashion-mnist"] = { "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz" },
}

local function part(x, y, flat)
  local n = x:size()[1]
  if y:dim() ~= 1 or y:size()[1] ~= n then
    error(string.format("images and labels disagree: %d images, %d labels", n, y:numel()), 4)
  end
  local xs = flat and x:view(n, -1) or x
  return { x = xs, y = y + 1, digits = y }
end

local function narrow_set(s, start, len)
  return { x = s.x:narrow(1, start, len), y = s.y:narrow(1, start, len),
    digits = s.digits:narrow(1, start, len) }
end

local function idx_set(fn, name, opts)
  opts = check_opts(fn, opts, { dir = true, split = true, flat = true })
  local files = IDX_FILES[name]
  local dir = dataset_dir(fn, name, opts.dir, files)
  local split = opts.split or "55k"
  if split ~= "55k" and split ~= "60k" then
    fail('%s: split must be "55k" (55,000 train / 5,000 validation / 10,000 test) or "60k", got %s',
      fn, tostring(split))
  end
  local flat = opts.flat ~= false
  local train = part(C.load_idx(dir .. "/" .. files[1]), C.load_idx(dir .. "/" .. files[2]), flat)
  local test = part(C.load_idx(dir .. "/" .. files[3]), C.load_idx(dir .. "/" .. files[4]), flat)
  local out = { test = test, classes = 10 }
  if split == "60k" then
    out.train = train
  else
    local n = train.x:size()[1]
    if n <= 5000 then fail("%s: the training set has %d images; the 55k split needs more than 5,000", fn, n) end
    out.val = narrow_set(train, 1, 5000)
    out.train = narrow_set(train, 5001, n - 5000)
  end
  return out
end

-- mnist{dir = "data/mnist", split = "55k"|"60k", flat = true}
-- -> {train = {x = [N, 784] in [0, 1], y = [N] class 1..10 (digit + 1), digits = [N] 0..9},
--     val = {...} (55k split: the first 5,000 training images), test = {...}}
-- flat = false keeps x as [N, 28, 28]. The splits are views of one storage.
function M.mnist(opts) return idx_set("mnist", "mnist", opts) end
function M.fashion_mnist(opts) return idx_set("fashion_mnist", "fashion-mnist", opts) end

-- read_text(path) -> the file's bytes; an empty or missing file is an error.
function M.read_text(path, hint)
  if type(path) ~= "string" then fail("read_text: path must be a string, got %s", type(path)) end
  if hint ~= nil and type(hint) ~= "string" then fail("read_text: hint must be a string, got %s", type(hint)) end
  local f, err = io.open(path, "rb")
  if not f then
    error(string.format("read_text: cannot open %s%s", err or path, hint and ("; " .. hint) or ""), 2)
  end
  local s = f:read("a")
  f:close()
  if not s then fail("read_text: cannot read %s", path) end
  if #s == 0 then fail("read_text: %s is empty (0 bytes)", path) end
  return s
end

-- The splits of a token stream by fractions {train, val, test} (contiguous, in that order).
local function split_stream(fn, ids, fractions)
  local f = fractions or { 0.9, 0.1, 0 }
  if type(f) ~= "table" or #f ~= 3 then fail("%s: split must be {train, val, test} fractions", fn) end
  local sum = 0
  for i = 1, 3 do
    if type(f[i]) ~= "number" or f[i] < 0 then fail("%s: split[%d] must be a fraction >= 0", fn, i) end
    sum = sum + f[i]
  end
  if math.abs(sum - 1) > 1e-9 then fail("%s: the split fractions add up to %g, not 1", fn, sum) end
  local n = ids:numel()
  local nv = math.floor(n * f[2] + 0.5)
  local nt = math.floor(n * f[3] + 0.5)
  local ntr = n - nv - nt
  local function piece(s, len) return len > 0 and ids:narrow(1, s, len) or nil end
  return piece(1, ntr), piece(ntr + 1, nv), piece(ntr + nv + 1, nt)
end

-- char_corpus{path = FILE | text = STRING, mode = "byte"|"utf8", split = {0.9, 0.1, 0},
--             vocab = Vocab (reuse one, e.g. from a checkpoint), unknown = POLICY}
-- -> {vocab =, ids = the whole text's ids, train =, val =, test = (contiguous slices, nil if
--     empty), text = the string}. The vocabulary is built from the whole text.
function M.char_corpus(opts)
  local fn = "char_corpus"
  opts = check_opts(fn, opts, { path = true, text = true, mode = true, split = true, vocab = true,
    unknown = true, hint = true })
  local text = opts.text
  if text == nil then
    if type(opts.path) ~= "string" then fail("%s: give path = FILE or text = STRING", fn) end
    text = M.read_text(opts.path, opts.hint)
  elseif type(text) ~= "string" then
    fail("%s: text must be a string, got %s", fn, type(text))
  end
  if #text == 0 then fail("%s: the text is empty", fn) end
  local vocab = opts.vocab or Vocab.build(text, { mode = opts.mode or "byte" })
  local ids = vocab:encode(text, opts.unknown and { unknown = opts.unknown } or nil)
  local train, val, test = split_stream(fn, ids, opts.split)
  return { vocab = vocab, ids = ids, train = train, val = val, test = test, text = text }
end

local function named_text(fn, name, file, opts)
  opts = check_opts(fn, opts, { dir = true, mode = true, split = true, vocab = true, unknown = true })
  local dir = dataset_dir(fn, name, opts.dir, { file })
  return M.char_corpus { path = dir .. "/" .. file, mode = opts.mode, split = opts.split,
    vocab = opts.vocab, unknown = opts.unknown }
end

-- moby_dick{dir =, mode = "byte", split =}: 1.2 MB, UTF-8 (byte mode by default)
function M.moby_dick(opts) return named_text("moby_dick", "moby-dick", "moby-dick.txt", opts) end
-- shakespeare{dir =, ...}: Folger complete works, 5.3 MB ASCII
function M.shakespeare(opts) return named_text("shakespeare", "shakespeare", "shakespeare.txt", opts) end
-- tiny_shakespeare{path = FILE, ...}: on neither registry, so the path is required.
function M.tiny_shakespeare(opts)
  local fn = "tiny_shakespeare"
  opts = check_opts(fn, opts, { path = true, mode = true, split = true, vocab = true, unknown = true })
  if type(opts.path) ~= "string" then
    fail("%s: pass path = FILE (tiny-shakespeare, karpathy/char-rnn's input.txt, is on neither "
      .. "npm nor Debian; data/fetch shakespeare installs the complete works instead)", fn)
  end
  return M.char_corpus { path = opts.path, mode = opts.mode, split = opts.split,
    vocab = opts.vocab, unknown = opts.unknown,
    hint = "tiny-shakespeare is on neither registry: point --data at a copy" }
end

-- ---------------------------------------------------------------------------------------
-- Brown corpus. Tokens are `word/tag`; a word is lower-cased, and a token made only of digits
-- and . , : / - (with at least one digit) becomes <#>. The split is by file, fixed: within each
-- genre (cats.txt, files in name order) the 9th, 19th, ... file goes to validation, the
-- 10th, 20th, ... to test, the rest to training (about 80/10/10).

local function is_number(w)
  return w:find("%d") ~= nil and w:find("^[%d%.,:/%-]+$") ~= nil
end
M._brown_normalize = function(tok)
  local w = tok:match("^(.*)/[^/]*$") or tok
  w = w:lower()
  if is_number(w) then return "<#>" end
  return w
end

-- Parses the corpus: genres (sorted names) and, per split, a list of {genre, words}.
local function brown_parse(fn, dir)
  dir = dataset_dir(fn, "brown", dir, { "cats.txt" })
  local files, genre_of = {}, {}
  for line in io.lines(dir .. "/cats.txt") do
    local f, g = line:match("^(%S+)%s+(%S+)")
    if f then files[#files + 1] = f; genre_of[f] = g end
  end
  if #files == 0 then fail("%s: %s/cats.txt lists no files; run: data/fetch brown", fn, dir) end
  table.sort(files, Vocab.bytes_lt)
  local names, gid, seen_in_genre = {}, {}, {}
  for _, f in ipairs(files) do
    local g = genre_of[f]
    if not gid[g] then gid[g] = true; names[#names + 1] = g end
  end
  table.sort(names, Vocab.bytes_lt)
  for i, g in ipairs(names) do gid[g] = i end
  local splits = { train = {}, val = {}, test = {} }
  -- the loop inlines M._brown_normalize (kept for tests) for speed
  local lower, gmatch, find = string.lower, string.gmatch, string.find
  for _, f in ipairs(files) do
    local g = genre_of[f]
    local k = (seen_in_genre[g] or 0) + 1
    seen_in_genre[g] = k
    local which = k % 10 == 9 and "val" or k % 10 == 0 and "test" or "train"
    local out = splits[which]
    local path = dir .. "/" .. f
    if not exists(path) then
      error(string.format("%s: %s not found (the brown dataset is incomplete); run: data/fetch brown", fn, path), 3)
    end
    local fh = io.open(path, "rb")
    local text = fh:read("a")
    fh:close()
    for line in gmatch(lower(text), "[^\n]+") do
      local words, n = nil, 0
      -- word/tag: the greedy capture ends at the last slash ("and/or/cc" -> "and/or")
      for w in gmatch(line, "(%S+)/%S+") do
        if find(w, "%d") and find(w, "^[%d%.,:/%-]+$") then w = "<#>" end
        n = n + 1
        if n == 1 then words = {} end
        words[n] = w
      end
      if words then out[#out + 1] = { gid[g], words } end
    end
  end
  return names, splits
end

local function word_vocab(sentences, extra)
  local all = {}
  for i, s in ipairs(sentences) do all[i] = s[2] end
  if extra then all[#all + 1] = extra end
  return Vocab.build(all, { mode = "word", max_size = 10000, unk = "<unk>" })
end

-- brown_words{dir = "data/brown", vocab = nil}
-- -> {vocab (10,000 words: <unk> then the 9,999 most frequent training words, <eos> among
--     them), train =, val =, test = (1-D id tensors: each split's sentences in order, each
--     followed by <eos>)}. The PTB stand-in for word-level language models.
function M.brown_words(opts)
  local fn = "brown_words"
  opts = check_opts(fn, opts, { dir = true, vocab = true })
  local _, splits = brown_parse(fn, opts.dir)
  local function stream(list)
    local words, n = {}, 0
    for _, s in ipairs(list) do
      for _, w in ipairs(s[2]) do n = n + 1; words[n] = w end
      n = n + 1
      words[n] = "<eos>"
    end
    return words
  end
  local train_words = stream(splits.train)
  local vocab = opts.vocab or Vocab.build(train_words, { mode = "word", max_size = 10000, unk = "<unk>" })
  return {
    vocab = vocab,
    train = vocab:encode(train_words),
    val = vocab:encode(stream(splits.val)),
    test = vocab:encode(stream(splits.test)),
  }
end

local function ragged_from(vocab, list)
  local seqs, labels = {}, {}
  local index, unk = vocab.index, vocab.replacement_id
  for i, s in ipairs(list) do
    local ids = {}
    for j, w in ipairs(s[2]) do ids[j] = index[w] or unk end
    seqs[i] = ids
    labels[i] = s[1]
  end
  return iter.ragged(seqs, labels)
end

-- brown_genres{dir = "data/brown", vocab = nil, max_length = nil}
-- -> {train =, val =, test = (ragged sets: tokens, starts, lengths, y = genre 1..15),
--     classes = {the 15 genre names, sorted; y indexes it}, vocab (words as in brown_words,
--     without <eos>)}. max_length drops longer sentences.
function M.brown_genres(opts)
  local fn = "brown_genres"
  opts = check_opts(fn, opts, { dir = true, vocab = true, max_length = true })
  local classes, splits = brown_parse(fn, opts.dir)
  if opts.max_length then
    local m = opts.max_length
    if math.type(m) ~= "integer" or m < 1 then fail("%s: max_length must be a positive integer", fn) end
    for k, list in pairs(splits) do
      local kept = {}
      for _, s in ipairs(list) do
        if #s[2] <= m then kept[#kept + 1] = s end
      end
      splits[k] = kept
    end
  end
  local vocab = opts.vocab or word_vocab(splits.train)
  return {
    vocab = vocab, classes = classes,
    train = ragged_from(vocab, splits.train),
    val = ragged_from(vocab, splits.val),
    test = ragged_from(vocab, splits.test),
  }
end

-- names{dir = "data/names"}
-- -> {train =, val =, test = (ragged sets of character ids, y = 1 female, 2 male),
--     classes = {"female", "male"}, vocab (UTF-8 characters of all names)}
-- Fixed split: all (name, list) pairs sorted by name then list; every 10th from the 9th on is
-- validation, every 10th from the 10th on is test. Names on both lists appear once per list.
function M.names(opts)
  local fn = "names"
  opts = check_opts(fn, opts, { dir = true })
  local dir = dataset_dir(fn, "names", opts.dir, { "female.txt", "male.txt" })
  local pairs_ = {}
  for label, file in ipairs({ "female.txt", "male.txt" }) do
    for line in io.lines(dir .. "/" .. file) do
      local name = line:gsub("\r$", ""):match("^%s*(.-)%s*$")
      if name ~= "" then pairs_[#pairs_ + 1] = { name, label } end
    end
  end
  if #pairs_ == 0 then fail("%s: %s holds no names; run: data/fetch names", fn, dir) end
  table.sort(pairs_, function(a, b)
    if a[1] ~= b[1] then return Vocab.bytes_lt(a[1], b[1]) end
    return a[2] < b[2]
  end)
  local all = {}
  for i, p in ipairs(pairs_) do all[i] = p[1] end
  local vocab = Vocab.build(all, { mode = "utf8" })
  local parts = { train = { {}, {} }, val = { {}, {} }, test = { {}, {} } }
  for i, p in ipairs(pairs_) do
    local which = i % 10 == 9 and "val" or i % 10 == 0 and "test" or "train"
    local t = parts[which]
    t[1][#t[1] + 1] = vocab:encode(p[1])
    t[2][#t[2] + 1] = p[2]
  end
  local out = { vocab = vocab, classes = { "female", "male" } }
  for k, t in pairs(parts) do out[k] = iter.ragged(t[1], t[2]) end
  return out
end

return M
