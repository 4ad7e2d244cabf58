// Just enough of the protobuf wire format for the JavaScript clients to read a sentencepiece
// model's pieces (pieces.mjs) and to take the defaults out of a search graph (settings.mjs).

export function readVarint(bytes, at) {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * scale; // arithmetic, not bit shifts: lengths may pass 2^31
    if (byte < 0x80) return [value, at];
    scale *= 128;
  }
}

export function writeVarint(value) {
  const out = [];
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Uint8Array.from(out);
}

// The fields of one message: { field, wire, start, end, body, value }: body the payload of a
// length-delimited field, value that of a varint, [start, end) the whole field with its tag.
export function* fields(bytes) {
  let at = 0;
  while (at < bytes.length) {
    const start = at;
    let tag;
    [tag, at] = readVarint(bytes, at);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    let body = null;
    let value = null;
    if (wire === 0) [value, at] = readVarint(bytes, at);
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      let length;
      [length, at] = readVarint(bytes, at);
      body = bytes.subarray(at, at + length);
      at += length;
    } else throw new Error(`unexpected protobuf wire type ${wire} at byte ${start}`);
    yield { field, wire, start, end: at, body, value };
  }
}

export function concat(parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
