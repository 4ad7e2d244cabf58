#!/usr/bin/env node
// Translate stdin, one line at a time, with an s2s bundle folder and nothing else:
//   node translate.mjs BUNDLE_DIR [--variant NAME] [--beam N] [--length-penalty X] ... < input.txt
// The bundle's search graph (encoder + beam search in one ONNX graph) does all the decoding.
// Decoding settings not given keep bundle.json's decode (settings.mjs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { SentencePieceProcessor } from '@sctg/sentencepiece-js';
import { modelPieces, speller } from '../pieces.mjs';
import { translateLines } from '../search.mjs';
import { settingFeeds, withSettingsAsInputs } from '../settings.mjs';

// the search graph's settings, as flags: --beam, --length-penalty, --max-len-ratio, ...
const SETTINGS = ['beam', 'length_penalty', 'max_len_ratio', 'max_len_offset', 'min_len', 'max_len',
  'no_repeat_ngram', 'coverage_penalty'];
const flag = (name) => name.replaceAll('_', '-');
let positionals, args;
try {
  ({ positionals, values: args } = parseArgs({
    allowPositionals: true,
    options: Object.fromEntries([['variant', { type: 'string' }], ...SETTINGS.map((n) => [flag(n), { type: 'string' }])]),
  }));
} catch (error) {
  console.error(error.message);
  positionals = [];
}
if (positionals.length !== 1) {
  console.error(`usage: node translate.mjs BUNDLE_DIR [--variant NAME] ${SETTINGS.map((n) => `[--${flag(n)} V]`).join(' ')}`
    + ' < input.txt');
  process.exit(2);
}
const dir = positionals[0];
const bundle = JSON.parse(readFileSync(join(dir, 'bundle.json'), 'utf8'));

// Graphs: fp32 when the bundle has them, else its first variant.
const variants = bundle.graphs.variants;
const variant = args.variant ?? ('fp32' in variants ? 'fp32' : Object.keys(variants)[0]);
if (!variants[variant]?.search) {
  console.error(`${dir}: no search graph for variant ${variant} (variants: ${Object.keys(variants).join(', ')})`);
  process.exit(1);
}
// The graph's bytes with its settings as inputs, and the external weights file it reads.
const { bytes, settings } = withSettingsAsInputs(readFileSync(join(dir, variants[variant].search)));
const weights = variants[variant].weights;
const session = await ort.InferenceSession.create(bytes, {
  logSeverityLevel: 3, // onnxruntime's optimizer warns about names in the graph's loop at every load
  externalData: weights ? [{ path: weights, data: readFileSync(join(dir, weights)) }] : undefined,
});
let feeds;
try {
  const chosen = Object.fromEntries(SETTINGS.filter((n) => args[flag(n)] !== undefined).map((n) => [n, args[flag(n)]]));
  for (const name of Object.keys(chosen)) {
    if (!(name in settings)) throw new Error(`--${flag(name)}: not a setting of this search graph`);
  }
  feeds = settingFeeds(ort, settings, bundle.decode, chosen);
} catch (error) {
  console.error(error.message);
  process.exit(2);
}

// Sentencepiece models: the source one splits the input, the target one spells the output.
async function pieces(file) {
  const sp = new SentencePieceProcessor();
  await sp.load(join(dir, file));
  return sp;
}
const source = await pieces(bundle.vocab.source);
const target = bundle.vocab.target === bundle.vocab.source ? source : await pieces(bundle.vocab.target);
// Ids >= vocab.target_size name copied source pieces (graphs.copy_extends): spelled from the models' pieces.
const tables = bundle.graphs.copy_extends
  ? [bundle.vocab.source, bundle.vocab.target].map((file) => modelPieces(readFileSync(join(dir, file))))
  : null;

const lines = readFileSync(0, 'utf8').split(/\r?\n/);
if (lines.at(-1) === '') lines.pop();
const output = await translateLines(ort, session, bundle, lines, (line) => source.encodeIds(line),
  speller(bundle, target, tables), feeds);
process.stdout.write(output.map((line) => line + '\n').join(''));
