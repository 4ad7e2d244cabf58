// The search graph's decoding settings (beam, n_best, length_penalty, max_len_ratio, ...) are
// graph inputs whose defaults, the bundle's, are stored as initializers of the same name. The
// Python runtime overrides them by feeding them; onnxruntime's JavaScript bindings list only a
// graph's inputs without a default and silently drop any other feed. So a client that wants to
// set them takes those defaults out of the graph's bytes before creating its session
// (`withSettingsAsInputs`) and then feeds every setting (`settingFeeds`), from bundle.json's
// decode unless the user chose another value.

import { concat, fields, writeVarint } from './protobuf.mjs';

// ONNX protobuf field numbers: ModelProto.graph; GraphProto.initializer and .input;
// TensorProto.data_type and .name; ValueInfoProto.name.
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const TENSOR_DATA_TYPE = 2;
const TENSOR_NAME = 8;
const VALUE_INFO_NAME = 1;
const TYPES = { 1: 'float32', 7: 'int64', 11: 'float64' }; // TensorProto.DataType -> ort tensor type

const text = (body) => new TextDecoder().decode(body);

// model bytes -> { bytes: the model without the defaults of its inputs, settings: name -> ort
// tensor type of each such input }
export function withSettingsAsInputs(model) {
  model = model instanceof Uint8Array ? model : new Uint8Array(model);
  const settings = {};
  const parts = [];
  for (const top of fields(model)) {
    if (top.field !== MODEL_GRAPH) {
      parts.push(model.subarray(top.start, top.end));
      continue;
    }
    const graph = [...fields(top.body)];
    const inputs = new Set(graph.filter((f) => f.field === GRAPH_INPUT)
      .map((f) => text([...fields(f.body)].find((g) => g.field === VALUE_INFO_NAME).body)));
    const kept = [];
    for (const f of graph) {
      if (f.field === GRAPH_INITIALIZER) {
        const tensor = [...fields(f.body)];
        const name = text(tensor.find((g) => g.field === TENSOR_NAME)?.body ?? new Uint8Array());
        if (inputs.has(name)) {
          const type = tensor.find((g) => g.field === TENSOR_DATA_TYPE)?.value;
          if (!TYPES[type]) throw new Error(`setting ${name}: tensor data type ${type} is not supported`);
          settings[name] = TYPES[type];
          continue;
        }
      }
      kept.push(top.body.subarray(f.start, f.end));
    }
    const body = concat(kept);
    parts.push(writeVarint(MODEL_GRAPH * 8 + 2), writeVarint(body.length), body);
  }
  return { bytes: concat(parts), settings };
}

// One [1] tensor per setting of the graph: values[name] where given, else decode[name]
// (bundle.json's decode holds every setting's default).
export function settingFeeds(ort, settings, decode, values = {}) {
  const feeds = {};
  for (const [name, type] of Object.entries(settings)) {
    const given = values[name] ?? decode[name];
    const value = Number(given);
    if (given === undefined || given === null || given === '' || Number.isNaN(value)) {
      throw new Error(`setting ${name}: expected a number, got ${JSON.stringify(given ?? null)}`);
    }
    if (type === 'int64' && !Number.isInteger(value)) {
      throw new Error(`setting ${name}: expected an integer, got ${JSON.stringify(given)}`);
    }
    feeds[name] = type === 'int64'
      ? new ort.Tensor('int64', BigInt64Array.from([BigInt(value)]), [1])
      : new ort.Tensor(type, (type === 'float32' ? Float32Array : Float64Array).from([value]), [1]);
  }
  return feeds;
}
