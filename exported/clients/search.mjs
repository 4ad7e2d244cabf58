// Lines through a bundle's search graph, shared by the JavaScript clients. `ort` is the
// onnxruntime module (onnxruntime-node or onnxruntime-web), `session` the search graph's session.

// Lines -> their translations, batched as the Python runtime does: empty lines stay empty; the
// others go longest first (ties in input order) in batches of decode.batch_size; the output
// keeps the input's order. `encode(line)` gives its source ids, `spell(ids, srcIds)` the text
// of target ids; `settings` as for bestOfBatch.
export async function translateLines(ort, session, bundle, lines, encode, spell, settings = {}) {
  const { batch_size: batchSize, max_src_len: maxSrcLen } = bundle.decode;
  const ids = lines.map((line) => encode(line).slice(0, maxSrcLen > 0 ? maxSrcLen : undefined));
  const todo = lines.map((_, i) => i).filter((i) => lines[i].trim() !== '');
  todo.sort((a, b) => ids[b].length - ids[a].length);
  const output = lines.map(() => '');
  for (let start = 0; start < todo.length; start += batchSize) {
    const chunk = todo.slice(start, start + batchSize);
    const best = await bestOfBatch(ort, session, chunk.map((i) => ids[i]), bundle.special_ids, settings);
    chunk.forEach((i, k) => (output[i] = spell(best[k], ids[i])));
  }
  return output;
}

// Source id lists -> the best hypothesis of each, as target ids. `settings`: more feeds, the
// decoding settings (settings.mjs), or none for the graph's own defaults.
export async function bestOfBatch(ort, session, batch, { pad, eos }, settings = {}) {
  const int64 = (values, dims) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
  const width = Math.max(...batch.map((ids) => ids.length)) + 1;
  const src = new Array(batch.length * width).fill(pad);
  batch.forEach((ids, row) => [...ids, eos].forEach((id, col) => (src[row * width + col] = id)));
  const out = await session.run({
    ...settings,
    src: int64(src, [batch.length, width]),
    src_lengths: int64(batch.map((ids) => ids.length + 1), [batch.length]),
  });
  const [, nBest, steps] = out.tokens.dims;
  return batch.map((_, row) => {
    const start = row * nBest * steps; // hypothesis 0 of this row: the best one
    const length = Number(out.lengths.data[row * nBest]);
    return Array.from(out.tokens.data.subarray(start, start + length), Number);
  });
}
