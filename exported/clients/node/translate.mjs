#!/usr/bin/env node
// Translate stdin, one line at a time, with an s2s bundle folder and nothing else:
//   node translate.mjs BUNDLE_DIR [--variant NAME] < input.txt > output.txt
// The bundle's search graph (encoder + beam search in one ONNX graph) does all the decoding, with
// the decoding settings it was written with (bundle.json's decode): onnxruntime-node feeds only a
// graph's true inputs, not the overridable initializers that hold those settings.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { SentencePieceProcessor } from '@sctg/sentencepiece-js';
import { copiedIds, copiedText, modelPieces } from '../pieces.mjs';
import { bestOfBatch } from '../search.mjs';

const { positionals, values: args } = parseArgs({
  allowPositionals: true,
  options: { variant: { type: 'string' } },
});
if (positionals.length !== 1) {
  console.error('usage: node translate.mjs BUNDLE_DIR [--variant NAME] < input.txt');
  process.exit(2);
}
const dir = positionals[0];
const bundle = JSON.parse(readFileSync(join(dir, 'bundle.json'), 'utf8'));
const { unk } = bundle.special_ids;
const { batch_size: batchSize, max_src_len: maxSrcLen } = bundle.decode;

// Graphs: fp32 when the bundle has them, else its first variant.
const variants = bundle.graphs.variants;
const variant = args.variant ?? ('fp32' in variants ? 'fp32' : Object.keys(variants)[0]);
if (!variants[variant]?.search) {
  console.error(`${dir}: no search graph for variant ${variant} (variants: ${Object.keys(variants).join(', ')})`);
  process.exit(1);
}
// From a file path, onnxruntime-node finds the variant's external weights file beside the graph.
// (Log level 3: the graph's overridable search options draw a warning at every load.)
const session = await ort.InferenceSession.create(join(dir, variants[variant].search), { logSeverityLevel: 3 });

// Sentencepiece models: the source one splits the input, the target one spells the output.
async function pieces(file) {
  const sp = new SentencePieceProcessor();
  await sp.load(join(dir, file));
  return sp;
}
const source = await pieces(bundle.vocab.source);
const target = bundle.vocab.target === bundle.vocab.source ? source : await pieces(bundle.vocab.target);
const vocabSize = bundle.vocab.target_size;
// Ids >= vocabSize name copied source pieces (graphs.copy_extends): spelled from the models' pieces.
const tables = bundle.graphs.copy_extends
  ? [bundle.vocab.source, bundle.vocab.target].map((file) => modelPieces(readFileSync(join(dir, file))))
  : null;
function detokenize(ids, srcIds) {
  if (!tables || ids.every((id) => id < vocabSize)) return target.decodeIds(ids);
  const [sourcePieces, targetPieces] = tables;
  return copiedText(ids, vocabSize, copiedIds(srcIds, sourcePieces, targetPieces, unk), sourcePieces, targetPieces);
}

// Like the Python runtime: empty lines stay empty; the others go longest first (ties in input
// order) in batches of decode.batch_size; the output keeps the input's order.
const lines = readFileSync(0, 'utf8').split(/\r?\n/);
if (lines.at(-1) === '') lines.pop();
const ids = lines.map((line) => {
  const pieceIds = source.encodeIds(line);
  return maxSrcLen > 0 ? pieceIds.slice(0, maxSrcLen) : pieceIds;
});
const todo = lines.map((_, i) => i).filter((i) => lines[i].trim() !== '');
todo.sort((a, b) => ids[b].length - ids[a].length);
const output = lines.map(() => '');
for (let start = 0; start < todo.length; start += batchSize) {
  const chunk = todo.slice(start, start + batchSize);
  const best = await bestOfBatch(ort, session, chunk.map((i) => ids[i]), bundle.special_ids);
  chunk.forEach((i, k) => (output[i] = detokenize(best[k], ids[i])));
}
process.stdout.write(output.map((line) => line + '\n').join(''));
