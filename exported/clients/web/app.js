// Translate in the browser with an s2s bundle folder: its search graph (encoder + beam search in
// one ONNX graph) on onnxruntime-web's wasm backend, its sentencepiece model(s) for the text.
// ?bundle=URL names the bundle folder, relative to this page.
import * as ort from 'onnxruntime-web';
import { SentencePieceProcessor } from '@sctg/sentencepiece-js';
import { modelPieces, speller } from '../pieces.mjs';
import { translateLines } from '../search.mjs';
import { settingFeeds, withSettingsAsInputs } from '../settings.mjs';

const $ = (id) => document.getElementById(id);
const status = (text) => ($('status').textContent = text);

// One thread needs no cross-origin isolation; the .wasm files are served beside ort's module.
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL('./node_modules/onnxruntime-web/dist/', import.meta.url).href;

const bundleUrl = new URL(new URLSearchParams(location.search).get('bundle') ?? '../../multi30k-en-de/', location.href);
if (!bundleUrl.pathname.endsWith('/')) bundleUrl.pathname += '/';
const file = (name) => new URL(name, bundleUrl).href;

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

async function loadPieces(name) {
  const sp = new SentencePieceProcessor();
  const bytes = new Uint8Array(await (await fetchOk(file(name))).arrayBuffer());
  // the port's load() reads a file with Node's fs; in a page, hand it the fetched bytes
  await sp._loadModel(bytes);
  sp.pieces = () => modelPieces(bytes); // id -> piece, for copied source pieces
  return sp;
}

async function load() {
  const bundle = await (await fetchOk(file('bundle.json'))).json();
  const variants = bundle.graphs.variants;
  const variant = 'fp32' in variants ? 'fp32' : Object.keys(variants)[0];
  const graphs = variants[variant];
  if (!graphs.search) throw new Error(`${bundleUrl}: no search graph in variant ${variant}`);
  // the graph with its decoding settings as inputs (settings.mjs): the page sets the beam
  const { bytes, settings } = withSettingsAsInputs(await (await fetchOk(file(graphs.search))).arrayBuffer());
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ['wasm'],
    logSeverityLevel: 3, // onnxruntime's optimizer warns about names in the graph's loop at every load
    // the graph's tensors live in one external-data file beside it
    externalData: graphs.weights ? [{ path: graphs.weights, data: file(graphs.weights) }] : undefined,
  });
  $('beam').value = bundle.decode.beam;
  const source = await loadPieces(bundle.vocab.source);
  const target = bundle.vocab.target === bundle.vocab.source ? source : await loadPieces(bundle.vocab.target);
  const name = bundleUrl.pathname.split('/').at(-2);
  $('model').textContent = `Model: ${name} (${bundle.model_family}, ${variant})`;
  // ids >= vocab.target_size name copied source pieces (graphs.copy_extends)
  const tables = bundle.graphs.copy_extends ? [source.pieces(), target.pieces()] : null;
  return { bundle, session, settings, source, target, tables };
}

async function translate(model, lines, chosen) {
  const feeds = settingFeeds(ort, model.settings, model.bundle.decode, chosen);
  return translateLines(ort, model.session, model.bundle, lines, (line) => model.source.encodeIds(line),
    speller(model.bundle, model.target, model.tables), feeds);
}

try {
  const started = performance.now();
  const model = await load();
  status(`Ready (loaded in ${Math.round(performance.now() - started)} ms).`);
  $('translate').disabled = false;
  $('translate').addEventListener('click', async () => {
    $('translate').disabled = true;
    status('Translating…');
    try {
      const began = performance.now();
      const lines = $('source').value.split('\n');
      $('translation').textContent = (await translate(model, lines, { beam: $('beam').value })).join('\n');
      status(`Done in ${Math.round(performance.now() - began)} ms.`);
    } catch (error) {
      status(`Error: ${error.message ?? error}`);
    }
    $('translate').disabled = false;
  });
} catch (error) {
  status(`Error: ${error.message ?? error}`);
}
