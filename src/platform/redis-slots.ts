/**
 * Redis Cluster's key slots, computed here: the metering store groups its script calls per slot
 * and names one usage stream per slot (modules/metering/redis/keys.ts), and pipelines on a
 * cluster are split by the node that serves each key (redis.ts).
 */

const SLOTS = 16_384;
const CRC_TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let crc = i << 8;
  for (let j = 0; j < 8; j++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  CRC_TABLE[i] = crc;
}

export const SLOT_COUNT = SLOTS;

/** CRC16-XMODEM of the string's UTF-8 bytes, modulo 16384: Redis Cluster's key slot. */
export function slotOf(tag: string): number {
  let crc = 0;
  for (const byte of Buffer.from(tag, 'utf8'))
    crc = ((crc << 8) ^ CRC_TABLE[((crc >> 8) ^ byte) & 0xff]!) & 0xffff;
  return crc % SLOTS;
}

/**
 * The slot of a key as Redis Cluster finds it: the part between the first `{` and the next `}`
 * when that is not empty (the hash tag), else the whole key.
 */
export function slotOfKey(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  return slotOf(close > open + 1 ? key.slice(open + 1, close) : key);
}
