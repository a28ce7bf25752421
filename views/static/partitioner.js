// Which partition of `orders` an order id lands on: Kafka's default partitioner,
// murmur2 over the id's UTF-8 bytes, made positive, modulo the partition count
// (the same as streams/erasable_keys.py:partition_for and every Kafka producer).

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

export function murmur2(bytes) {
  const length = bytes.length;
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  switch (length & 3) {
    case 3:
      h ^= bytes[whole + 2] << 16;
    // falls through
    case 2:
      h ^= bytes[whole + 1] << 8;
    // falls through
    case 1:
      h ^= bytes[whole];
      h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

export function partitionFor(key, partitions) {
  const hashed = murmur2(new TextEncoder().encode(key));
  return (hashed & 0x7fffffff) % partitions;
}
