-- recur.data: datasets, vocabularies and batch iterators. See docs/data.md.
--
--   loaders    load_idx, mnist, fashion_mnist, read_text, char_corpus, moby_dick, shakespeare,
--              tiny_shakespeare, brown_words, brown_genres, names, root      (data/sets.lua)
--   Vocab      Vocab.build, :encode, :decode, :size, :to_table, Vocab.from_table (data/vocab.lua)
--   iterators  batches, lm_batches, ragged, padded_batches, bucketed_batches  (data/iter.lua)
local data = {}

data.Vocab = require "recur.data.vocab"
for k, v in pairs(require "recur.data.sets") do data[k] = v end
for k, v in pairs(require "recur.data.iter") do data[k] = v end

return data
