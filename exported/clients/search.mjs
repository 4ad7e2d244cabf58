// One batch through a bundle's search graph, shared by the JavaScript clients. `ort` is the
// onnxruntime module (onnxruntime-node or onnxruntime-web), `session` the search graph's session.

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
