/**
 * How a lead tells the standby's thread of its lease without waking it: a record appended to a ring in
 * shared memory, which the thread drains on its own timer (thread.ts). A message would cost both
 * threads a wake-up per lead (measured: a third of the throughput of a process leading thousands of
 * short keys); a record costs the leader's thread a few stores. One writer (the leader's thread), one
 * reader (the standby's).
 *
 * Layout: BigInt64 [0] WRITE and [1] READ, byte offsets that only grow (taken modulo the capacity);
 * then the records: a Uint32 length, then the payload. A record never wraps: where one does not fit before
 * the end, a zero length says "go back to the start".
 */
const WRITE = 0;
const READ = 1;
const HEADER = 16;
/** Where a record's Uint32 fields start: after its length and its id (a Float64). */
const FIELDS = 12;

export interface LeaseRecord {
  id: number;
  /** The cell's slot in the pool. */
  slot: number;
  generation: number;
  leaseMs: number;
  key: string;
  leaseKey: string;
  leaseValue: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function newRing(capacity: number): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER + capacity);
}

/** Appends `record`; false when the ring has no room for it (the caller sends a message instead). */
export function append(ring: SharedArrayBuffer, record: LeaseRecord): boolean {
  const header = new BigInt64Array(ring, 0, 2);
  const capacity = ring.byteLength - HEADER;
  const key = encoder.encode(record.key);
  const leaseKey = encoder.encode(record.leaseKey);
  const value = encoder.encode(record.leaseValue);
  // length, then id (8 bytes: ids pass 2^32), slot, generation, leaseMs and the three strings'
  // lengths, then their bytes.
  const size = 4 + 8 + 6 * 4 + key.length + leaseKey.length + value.length;
  const written = Number(Atomics.load(header, WRITE));
  const read = Number(Atomics.load(header, READ));
  let at = written % capacity;
  // A record that does not fit before the end starts over at the beginning, after a zero length.
  const skip = at + size > capacity ? capacity - at : 0;
  if (size > capacity || written + skip + size - read > capacity) return false;
  const data = new DataView(ring, HEADER);
  if (skip > 0) {
    if (skip >= 4) data.setUint32(at, 0);
    at = 0;
  }
  data.setUint32(at, size);
  data.setFloat64(at + 4, record.id);
  const fields = [record.slot, record.generation, record.leaseMs, key.length, leaseKey.length, value.length];
  for (let i = 0; i < fields.length; i++) data.setUint32(at + FIELDS + i * 4, fields[i]!);
  const bytes = new Uint8Array(ring, HEADER);
  let offset = at + FIELDS + fields.length * 4;
  for (const part of [key, leaseKey, value]) {
    bytes.set(part, offset);
    offset += part.length;
  }
  // Published last: the reader sees the record whole, or not at all.
  Atomics.store(header, WRITE, BigInt(written + skip + size));
  return true;
}

/** Every record appended since the last drain, in order. */
export function drain(ring: SharedArrayBuffer): LeaseRecord[] {
  const header = new BigInt64Array(ring, 0, 2);
  const capacity = ring.byteLength - HEADER;
  const written = Number(Atomics.load(header, WRITE));
  let read = Number(Atomics.load(header, READ));
  const data = new DataView(ring, HEADER);
  const bytes = new Uint8Array(ring, HEADER);
  const records: LeaseRecord[] = [];
  while (read < written) {
    const at = read % capacity;
    const size = capacity - at < 4 ? 0 : data.getUint32(at);
    if (size === 0) {
      read += capacity - at;
      continue;
    }
    const field = (i: number) => data.getUint32(at + FIELDS + i * 4);
    const lengths = [field(3), field(4), field(5)];
    let offset = at + FIELDS + 6 * 4;
    const [key, leaseKey, leaseValue] = lengths.map((length) => {
      // A copy: the bytes may be written over once READ moves past them.
      const text = decoder.decode(bytes.slice(offset, offset + length));
      offset += length;
      return text;
    }) as [string, string, string];
    records.push({
      id: data.getFloat64(at + 4),
      slot: field(0),
      generation: field(1),
      leaseMs: field(2),
      key,
      leaseKey,
      leaseValue,
    });
    read += size;
  }
  Atomics.store(header, READ, BigInt(read));
  return records;
}
