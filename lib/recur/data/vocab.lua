-- recur.data.Vocab: vocabularies for text, by bytes, by UTF-8 characters or by words.
--
-- Character vocabularies ("byte" and "utf8") hold the distinct symbols of a corpus sorted by
-- value (byte value or code point), so the same corpus always gives the same ids, whatever
-- order the text comes in. Ids are 1-based: id k is the k-th smallest symbol. Encoding and
-- decoding run in C (a 5 MB text encodes in about 0.1 s).
--
-- Word vocabularies ("word") hold the most frequent words, sorted by count (descending) and
-- then by the word's bytes, after an optional unknown word `unk` (id 1).
--
-- Symbols outside the vocabulary follow an explicit policy, chosen when the vocabulary is
-- built and overridable per call:
--   "error"   (default for characters) an error naming the symbol and its byte offset
--   "skip"    drop the symbol
--   "replace" use the id of `replacement` (a symbol of the vocabulary; added to it at build
--             time if the corpus lacks it). Word vocabularies with `unk` replace by default.
-- Invalid UTF-8 in "utf8" mode is always an error with the byte offset.
--
-- A vocabulary serializes to a plain table of strings and integers (vocab:to_table()) that
-- JSON can hold, and comes back with Vocab.from_table(t).
local recur = require "recur"
local C = recur._data
local U = require "recur.data.util"
local fail, check_opts = U.fail, U.check_opts

local Vocab = {}
Vocab.__index = Vocab
Vocab.__name = "recur.data.Vocab"

local MODES = { byte = true, utf8 = true, word = true }
local POLICIES = { error = true, skip = true, replace = true }
local FORMAT = "recur.vocab"

local function check_policy(fn, p)
  if p ~= nil and not POLICIES[p] then
    fail('%s: unknown must be "error", "skip" or "replace", got %s', fn, tostring(p))
  end
  return p
end

-- The code of a one-symbol string in a character mode, or nil and a reason.
local function code_of(mode, s)
  if type(s) ~= "string" then return nil, "not a string" end
  if mode == "byte" then
    if #s ~= 1 then return nil, "not a single byte" end
    return s:byte()
  end
  local ok, n = pcall(utf8.len, s)
  if not ok or n ~= 1 then return nil, "not a single UTF-8 character" end
  return utf8.codepoint(s)
end

local function symbol_of(mode, code)
  if mode == "byte" then return string.char(code) end
  return utf8.char(code)
end

local function new_char(mode, codes_tensor, unknown, replacement)
  local self = setmetatable({ mode = mode, codes = codes_tensor, unknown = unknown or "error" }, Vocab)
  self._n = codes_tensor:numel()
  if replacement ~= nil then
    self.replacement = replacement
    self.replacement_id = self:id(replacement)
  end
  return self
end

local function new_word(words, unk, unknown, counts)
  local self = setmetatable({ mode = "word", words = words, index = {}, unk = unk }, Vocab)
  for i, w in ipairs(words) do self.index[w] = i end
  self._n = #words
  self.counts = counts
  self.unknown = unknown or (unk and "replace" or "error")
  if unk then
    self.replacement = unk
    self.replacement_id = self.index[unk]
  end
  return self
end

-- Byte-wise string order (Lua's < follows the C library's locale collation, which a host
-- program may have changed; ids and fixed splits must not depend on it).
local byte = string.byte
function Vocab.bytes_lt(a, b)
  if type(a) ~= "string" or type(b) ~= "string" then
    fail("Vocab.bytes_lt: compares two strings, got %s and %s", type(a), type(b))
  end
  if a == b then return false end
  local n = #a < #b and #a or #b
  for i = 1, n do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Splits a string on whitespace into a list of words.
local function split_words(s)
  local out = {}
  for w in s:gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- Vocab.build(corpus, {mode = "byte"|"utf8"|"word", unknown = POLICY, replacement = SYMBOL,
--                      max_size = N, unk = "<unk>", min_count = 1})
-- corpus: a string, or a list of strings (characters modes: concatenated; word mode: each
-- string split on whitespace, or give a list of word lists).
function Vocab.build(corpus, opts)
  local fn = "Vocab.build"
  opts = check_opts(fn, opts, { mode = true, unknown = true, replacement = true, max_size = true,
    unk = true, min_count = true })
  local mode = opts.mode or "utf8"
  if not MODES[mode] then fail('%s: mode must be "byte", "utf8" or "word", got %s', fn, tostring(mode)) end
  local unknown = check_policy(fn, opts.unknown)
  if type(corpus) ~= "string" and type(corpus) ~= "table" then
    fail("%s: corpus must be a string or a list of strings, got %s", fn, type(corpus))
  end
  if mode ~= "word" then
    if opts.max_size or opts.unk or opts.min_count then
      fail("%s: max_size, unk and min_count are for word vocabularies (mode = \"word\")", fn)
    end
    local text = corpus
    if type(corpus) == "table" then
      local parts = {}
      for i, s in ipairs(corpus) do
        if type(s) ~= "string" then fail("%s: corpus[%d] must be a string, got %s", fn, i, type(s)) end
        parts[i] = s
      end
      text = table.concat(parts)
    end
    local rep = opts.replacement
    if rep ~= nil then
      local code, why = code_of(mode, rep)
      if not code then fail("%s: replacement %q is %s", fn, tostring(rep), why) end
      text = text .. rep -- guarantees the replacement is in the vocabulary
    end
    if #text == 0 then fail("%s: the corpus is empty", fn) end
    if unknown == "replace" and rep == nil then
      fail('%s: unknown = "replace" needs replacement = SYMBOL (a character for unknown ones)', fn)
    end
    return new_char(mode, C.text_symbols(text, mode), unknown, rep)
  end
  -- word mode
  local max_size = opts.max_size
  if max_size ~= nil and (math.type(max_size) ~= "integer" or max_size < 1) then
    fail("%s: max_size must be a positive integer, got %s", fn, tostring(max_size))
  end
  local min_count = opts.min_count or 1
  local unk = opts.unk
  if unk ~= nil and type(unk) ~= "string" then fail("%s: unk must be a string, got %s", fn, type(unk)) end
  if opts.replacement ~= nil then fail("%s: word vocabularies replace unknown words by unk", fn) end
  if unknown == "replace" and not unk then
    fail('%s: unknown = "replace" needs unk = WORD (e.g. "<unk>")', fn)
  end
  local counts = {}
  local function add(w)
    if type(w) ~= "string" then fail("%s: words must be strings, got %s", fn, type(w)) end
    counts[w] = (counts[w] or 0) + 1
  end
  if type(corpus) == "string" then
    for w in corpus:gmatch("%S+") do add(w) end
  else
    for _, item in ipairs(corpus) do
      if type(item) == "table" then
        for _, w in ipairs(item) do add(w) end
      elseif type(item) == "string" and item:find("%s") then
        for w in item:gmatch("%S+") do add(w) end
      else
        add(item)
      end
    end
  end
  local list = {}
  for w, c in pairs(counts) do
    if c >= min_count and w ~= unk then list[#list + 1] = w end
  end
  if #list == 0 then fail("%s: the corpus has no words", fn) end
  local bytes_lt = Vocab.bytes_lt
  table.sort(list, function(a, b)
    local ca, cb = counts[a], counts[b]
    if ca ~= cb then return ca > cb end
    return bytes_lt(a, b)
  end)
  local words = {}
  if unk then words[1] = unk end
  local limit = max_size or math.huge
  for _, w in ipairs(list) do
    if #words >= limit then break end
    words[#words + 1] = w
  end
  local kept = {}
  for _, w in ipairs(words) do kept[w] = counts[w] or 0 end
  return new_word(words, unk, unknown, kept)
end

function Vocab:size() return self._n end
Vocab.__len = Vocab.size

function Vocab:__tostring()
  return string.format("Vocab(%s, %d symbols, unknown = %s)", self.mode, self._n, self.unknown)
end

-- The id of one symbol (a character, byte or word), or nil.
function Vocab:id(sym)
  if self.mode == "word" then return self.index[sym] end
  local code = code_of(self.mode, sym)
  if not code then return nil end
  local lo, hi = 1, self._n
  local codes = self.codes
  while lo <= hi do
    local mid = (lo + hi) // 2
    local v = codes:get(mid)
    if v == code then return mid end
    if v < code then lo = mid + 1 else hi = mid - 1 end
  end
  return nil
end

-- The symbol of one id.
function Vocab:symbol(id)
  if not U.is_integral(id) then
    fail("symbol: id must be an integer, got %s", tostring(id))
  end
  id = math.tointeger(id)
  if id < 1 or id > self._n then fail("symbol: id %d is outside the vocabulary (1..%d)", id, self._n) end
  if self.mode == "word" then return self.words[id] end
  return symbol_of(self.mode, math.tointeger(self.codes:get(id)))
end

-- Every symbol in id order.
function Vocab:symbols()
  if self.mode == "word" then return table.move(self.words, 1, self._n, 1, {}) end
  local out = {}
  for i, c in ipairs(self.codes:totable()) do out[i] = symbol_of(self.mode, math.tointeger(c)) end
  return out
end

local function resolve_policy(self, fn, opts)
  opts = check_opts(fn, opts, { unknown = true, replacement = true })
  local unknown = check_policy(fn, opts.unknown) or self.unknown
  local rep_id = self.replacement_id
  if opts.replacement ~= nil then
    rep_id = self:id(opts.replacement)
    if not rep_id then
      fail("%s: the replacement %q is not in the vocabulary", fn, tostring(opts.replacement))
    end
  end
  if unknown == "replace" and not rep_id then
    fail('%s: unknown = "replace" needs a replacement: build the vocabulary with replacement = '
      .. 'SYMBOL (or unk = WORD) or pass {unknown = "replace", replacement = SYMBOL}', fn)
  end
  return unknown, rep_id
end

-- vocab:encode(text[, {unknown = POLICY, replacement = SYMBOL}]) -> 1-D tensor of ids.
-- Word mode: text is a string (split on whitespace) or a list of words.
function Vocab:encode(text, opts)
  local unknown, rep_id = resolve_policy(self, "encode", opts)
  if self.mode ~= "word" then
    if type(text) ~= "string" then fail("encode: text must be a string, got %s", type(text)) end
    return C.text_encode(text, self.mode, self.codes, unknown, rep_id or 0)
  end
  local words = text
  if type(text) == "string" then
    words = split_words(text)
  elseif type(text) ~= "table" then
    fail("encode: text must be a string or a list of words, got %s", type(text))
  end
  local ids, index, n = {}, self.index, 0
  for i, w in ipairs(words) do
    local id = index[w]
    if id then
      n = n + 1
      ids[n] = id
    elseif unknown == "replace" then
      n = n + 1
      ids[n] = rep_id
    elseif unknown == "error" then
      fail("encode: word %d (%q) is not in the vocabulary (%d words); pass {unknown = \"skip\"} or "
        .. "build it with unk = WORD", i, tostring(w), self._n)
    end
  end
  if n == 0 then return recur.zeros(0) end
  return recur.tensor(ids)
end

local function as_ids(fn, ids)
  if recur.is_tensor(ids) then return ids end
  if type(ids) == "table" then
    if #ids == 0 then return recur.zeros(0) end
    return recur.tensor(ids)
  end
  if math.type(ids) == "integer" then return recur.tensor({ ids }) end
  fail("%s: ids must be a tensor or a list of integers, got %s", fn, type(ids))
end

-- vocab:decode(ids) -> string (word mode: the words joined by `sep`, default " ").
function Vocab:decode(ids, sep)
  ids = as_ids("decode", ids)
  if self.mode ~= "word" then return C.text_decode(ids, self.mode, self.codes) end
  return table.concat(self:words_of(ids), sep or " ")
end

-- Word mode: the list of words of ids.
function Vocab:words_of(ids)
  if self.mode ~= "word" then
    fail("words_of: a %s vocabulary has no words (use decode)", tostring(self.mode))
  end
  ids = as_ids("words_of", ids)
  local out, words, n = {}, self.words, self._n
  for i, v in ipairs(ids:flatten():totable()) do
    local id = math.tointeger(v)
    if not id or id < 1 or id > n then
      fail("decode: id %s at position %d is not a vocabulary id (1..%d)", tostring(v), i, n)
    end
    out[i] = words[id]
  end
  return out
end

-- A plain table (strings, integers, booleans) that JSON can hold.
function Vocab:to_table()
  local t = { format = FORMAT, version = 1, mode = self.mode, unknown = self.unknown }
  if self.mode == "word" then
    t.words = table.move(self.words, 1, self._n, 1, {})
    t.unk = self.unk
  else
    local codes = {}
    for i, c in ipairs(self.codes:totable()) do codes[i] = math.tointeger(c) end
    t.codes = codes
    t.replacement = self.replacement
  end
  return t
end

function Vocab.from_table(t)
  local fn = "Vocab.from_table"
  if type(t) ~= "table" then fail("%s: expected a table from vocab:to_table(), got %s", fn, type(t)) end
  if t.format ~= FORMAT then fail("%s: not a vocabulary table (format is %s, expected %q)", fn, tostring(t.format), FORMAT) end
  if t.version ~= 1 then fail("%s: unsupported version %s (this recur reads version 1)", fn, tostring(t.version)) end
  if not MODES[t.mode] then fail("%s: bad mode %s", fn, tostring(t.mode)) end
  check_policy(fn, t.unknown)
  if t.mode == "word" then
    if type(t.words) ~= "table" or #t.words == 0 then fail("%s: words must be a non-empty list", fn) end
    local seen = {}
    for i, w in ipairs(t.words) do
      if type(w) ~= "string" then fail("%s: words[%d] is not a string", fn, i) end
      if seen[w] then fail("%s: word %q appears twice", fn, w) end
      seen[w] = true
    end
    if t.unk ~= nil and not seen[t.unk] then fail("%s: unk %q is not among the words", fn, tostring(t.unk)) end
    return new_word(table.move(t.words, 1, #t.words, 1, {}), t.unk, t.unknown)
  end
  if type(t.codes) ~= "table" or #t.codes == 0 then fail("%s: codes must be a non-empty list", fn) end
  local hi = t.mode == "byte" and 255 or 0x10FFFF
  for i, c in ipairs(t.codes) do
    if not U.is_integral(c) then
      fail("%s: codes[%d] is not an integer", fn, i)
    end
    if c < 0 or c > hi or (i > 1 and c <= t.codes[i - 1]) or (c >= 0xD800 and c <= 0xDFFF and t.mode == "utf8") then
      fail("%s: codes[%d] = %s is out of range or out of order", fn, i, tostring(c))
    end
  end
  local v = new_char(t.mode, recur.tensor(t.codes), t.unknown)
  if t.replacement ~= nil then
    local id = v:id(t.replacement)
    if not id then fail("%s: replacement %q is not in the vocabulary", fn, tostring(t.replacement)) end
    v.replacement, v.replacement_id = t.replacement, id
  end
  return v
end

-- Checked methods (recur._methods): v.encode("abc") says so at the caller's line.
require("recur._methods").wrap_all(Vocab, "Vocab", function(v) return getmetatable(v) == Vocab end,
  "a vocabulary", "vocab", Vocab)

return Vocab
