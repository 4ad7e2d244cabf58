// Copy attention's extended ids, for the JavaScript clients (s2s/search/copying.py in Python).
// With graphs.copy_extends, an output id V + j (V = vocab.target_size) names the j-th distinct
// source id of the line, in order of first occurrence, whose piece the target vocabulary lacks.
// Spelling it needs each model's id -> piece table, which the sentencepiece port does not
// expose, so it is read here from the .model file (a ModelProto: field 1 holds the pieces).

// The pieces of a sentencepiece .model file (bytes), by id.
export function modelPieces(bytes) {
  const pieces = [];
  const text = new TextDecoder();
  let at = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = bytes[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  const skip = (wire) => {
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 2) {
      const size = varint();
      at += size;
    }
    else if (wire === 5) at += 4;
    else throw new Error(`sentencepiece model: unexpected protobuf wire type ${wire}`);
  };
  while (at < bytes.length) {
    const key = varint();
    if (key >> 3 === 1 && (key & 7) === 2) { // a SentencePiece message: its field 1 is the piece
      const size = varint(); // read before `at`: the length's own bytes come first
      const end = at + size;
      let piece = '';
      while (at < end) {
        const inner = varint();
        if (inner >> 3 === 1 && (inner & 7) === 2) {
          const length = varint();
          piece = text.decode(bytes.subarray(at, at + length));
          at += length;
        } else skip(inner & 7);
      }
      pieces.push(piece);
    } else skip(key & 7);
  }
  return pieces;
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
