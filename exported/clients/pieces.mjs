// Copy attention's extended ids, for the JavaScript clients (s2s/search/copying.py in Python).
// With graphs.copy_extends, an output id V + j (V = vocab.target_size) names the j-th distinct
// source id of the line, in order of first occurrence, whose piece the target vocabulary lacks.
// Spelling it needs each model's id -> piece table, which the sentencepiece port does not
// expose, so it is read here from the .model file (a ModelProto: field 1 holds the pieces).
import { fields } from './protobuf.mjs';

// The pieces of a sentencepiece .model file (bytes), by id: each field 1 of the ModelProto is a
// SentencePiece message, whose own field 1 is the piece.
export function modelPieces(bytes) {
  const text = new TextDecoder();
  return [...fields(bytes)].filter((f) => f.field === 1 && f.wire === 2).map((f) => {
    const piece = [...fields(f.body)].find((g) => g.field === 1 && g.wire === 2);
    return piece ? text.decode(piece.body) : '';
  });
}

// (source ids of a line, sentencepiece pieces of the source and target models, unk id) ->
// the source ids that the extended ids V + 0, V + 1, ... name.
export function copiedIds(srcIds, sourcePieces, targetPieces, unk) {
  const inTarget = new Set(targetPieces);
  const copied = [];
  for (const id of srcIds) {
    const piece = sourcePieces[id];
    const missing = id === unk ? false : !inTarget.has(piece);
    if (missing && !copied.includes(id)) copied.push(id);
  }
  return copied;
}

// Target ids as text when some are extended ids: every id spelled with its piece, the word
// marker U+2581 read as a space (s2s.search.copying.copied_text); an extended id past the line's
// copied pieces is the unknown mark.
export function copiedText(ids, vocabSize, copied, sourcePieces, targetPieces) {
  const pieces = ids.map((id) => {
    if (id < vocabSize) return targetPieces[id];
    const j = id - vocabSize;
    return j < copied.length ? sourcePieces[copied[j]] : ' \u2047 ';
  });
  return pieces.join('').replaceAll('\u2581', ' ').replace(/^ /, '');
}

// (bundle.json, the target sentencepiece processor, [source pieces, target pieces] or null) ->
// spell(ids, srcIds): target ids as text, extended ids (graphs.copy_extends) with their pieces.
export function speller(bundle, target, tables) {
  const vocabSize = bundle.vocab.target_size;
  return (ids, srcIds) => {
    if (!tables || ids.every((id) => id < vocabSize)) return target.decodeIds(ids);
    const [sourcePieces, targetPieces] = tables;
    const copied = copiedIds(srcIds, sourcePieces, targetPieces, bundle.special_ids.unk);
    return copiedText(ids, vocabSize, copied, sourcePieces, targetPieces);
  };
}
