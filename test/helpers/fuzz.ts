/**
 * Small tools for the fuzz and abuse tests: a seeded PRNG (a failing run replays with
 * FUZZ_SEED=<seed>), byte mutations, MQTT framing by hand (for what mqtt-packet will not
 * generate), a bounded worker pool and readings of a process from /proc.
 */
import fs from 'node:fs';
import { varint } from './mqtt';

/** FUZZ_SEED from the environment, else a fresh one (printed by the suite so it can be replayed). */
export function fuzzSeed(): number {
  const env = process.env.FUZZ_SEED;
  if (env && /^\d+$/.test(env.trim())) return Number(env.trim()) >>> 0;
  return (Date.now() ^ (process.pid << 12)) >>> 0;
}

/** FNV-1a: derives independent streams from one seed and a label. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32: small, fast, good enough to pick fuzz inputs, and fully determined by its seed. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** An independent stream for one part of the suite (same seed and label: same stream). */
  fork(label: string): Rng {
    return new Rng((this.seed ^ hash32(label)) >>> 0);
  }

  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  float(): number {
    return this.u32() / 4294967296;
  }

  /** 0 <= n < max */
  int(max: number): number {
    return max <= 1 ? 0 : Math.floor(this.float() * max);
  }

  /** lo <= n <= hi */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  bool(p = 0.5): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Picks by weight: [[weight, value], ...]. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    const total = items.reduce((n, [w]) => n + w, 0);
    let x = this.float() * total;
    for (const [w, v] of items) {
      x -= w;
      if (x < 0) return v;
    }
    return items[items.length - 1][1];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** A length skewed towards small values: mostly under 32, sometimes up to `max`. */
  size(max: number): number {
    const r = this.float();
    if (r < 0.5) return this.int(Math.min(max, 32) + 1);
    if (r < 0.85) return this.int(Math.min(max, 512) + 1);
    return this.int(max + 1);
  }

  /** Printable ASCII. */
  ascii(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(0x20 + this.int(0x5f));
    return s;
  }
}

export const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x20, 0x40, 0x3f, 0x23, 0x2b, 0x2f];

/** Random edits: bit flips, interesting bytes, inserts, deletes, duplicates, truncation. */
export function mutate(input: Buffer, rng: Rng, rounds = rng.range(1, 4)): Buffer {
  let b = Buffer.from(input);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(8)) {
      case 0:
        if (b.length) b[Math.min(at, b.length - 1)] ^= 1 << rng.int(8);
        break;
      case 1:
        if (b.length) b[Math.min(at, b.length - 1)] = rng.pick(INTERESTING_BYTES);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.range(1, 16)), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 16)))]);
        break;
      case 4: {
        const len = rng.range(1, 64);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      case 5:
        b = b.subarray(0, at);
        break;
      case 6:
        if (b.length) b[Math.min(at, b.length - 1)] = rng.u32() & 0xff;
        break;
      default:
        if (b.length > 1) {
          const i = Math.min(at, b.length - 2);
          b.writeUInt16BE(rng.pick([0, 1, 0x7fff, 0x8000, 0xffff, 0xfffe]), i);
        }
    }
  }
  return b;
}

// ---- MQTT framing by hand ----------------------------------------------------------------------

export { varint } from './mqtt';

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff, 0);
  return b;
}

/** A length-prefixed string (the prefix wraps at 64 KiB: over that it lies, which is fuzz too). */
export function mqttString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u16(b.length), b]);
}

/** A packet: first byte, remaining length (announced, default the body's), body. */
export function frame(first: number, body: Buffer, announced = body.length): Buffer {
  return Buffer.concat([Buffer.from([first & 0xff]), varint(announced), body]);
}

export interface ConnectSpec {
  first?: number;
  protocolName?: string | Buffer;
  level?: number;
  /** explicit connect flags; otherwise derived from the fields present */
  flags?: number;
  clean?: boolean;
  keepalive?: number;
  clientId: string | Buffer;
  will?: { topic: string | Buffer; payload: Buffer; qos: number; retain: boolean };
  username?: string | Buffer;
  password?: string | Buffer;
}

/** A CONNECT as written, with no validation (MQTT 5 gets empty property lists). */
export function connectPacket(c: ConnectSpec): Buffer {
  const level = c.level ?? 4;
  let flags = c.clean === false ? 0 : 0x02;
  if (c.username !== undefined) flags |= 0x80;
  if (c.password !== undefined) flags |= 0x40;
  if (c.will) flags |= 0x04 | ((c.will.qos & 3) << 3) | (c.will.retain ? 0x20 : 0);
  if (c.flags !== undefined) flags = c.flags;
  const v5 = level === 5;
  const parts: Buffer[] = [mqttString(c.protocolName ?? 'MQTT'), Buffer.from([level & 0xff, flags & 0xff]), u16(c.keepalive ?? 30)];
  if (v5) parts.push(varint(0));
  parts.push(mqttString(c.clientId));
  if (c.will) {
    if (v5) parts.push(varint(0));
    parts.push(mqttString(c.will.topic), mqttString(c.will.payload));
  }
  if (c.username !== undefined) parts.push(mqttString(c.username));
  if (c.password !== undefined) parts.push(mqttString(c.password));
  return frame(c.first ?? 0x10, Buffer.concat(parts));
}

export function pem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

// ---- running ---------------------------------------------------------------------------------

/**
 * Runs fn(0..count-1) with at most `concurrency` at once, starting no new one after `deadline`
 * (Date.now() value) or once `stop()` says so. Resolves with how many were started.
 */
export async function runPool(
  count: number,
  concurrency: number,
  deadline: number,
  fn: (i: number) => Promise<void>,
  stop: () => boolean = () => false
): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && Date.now() < deadline && !stop()) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return next;
}

/** Resident set size of a process in bytes (VmRSS), or null when it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Does the process still run (exists and is not a zombie)? */
export function processAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const m = /^State:\s+(\S)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return !!m && m[1] !== 'Z' && m[1] !== 'X';
  } catch {
    return false;
  }
}

/** Hex of the first `max` bytes, with the total length when cut. */
export function hex(buf: Buffer, max = 160): string {
  const h = buf.subarray(0, max).toString('hex');
  return buf.length > max ? `${h}… (${buf.length} bytes)` : h;
}

/** A short printable preview of bytes (for HTTP requests in failure messages). */
export function preview(buf: Buffer, max = 240): string {
  const text = JSON.stringify(buf.subarray(0, max).toString('latin1'));
  return buf.length > max ? `${text}… (${buf.length} bytes)` : text;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- DER trees (to mutate certificate requests structurally and re-sign them) -----------------

export type LengthForm =
  | { kind: 'min' }
  /** long form with `extra` needless leading zero bytes (non-minimal) */
  | { kind: 'long'; extra: number }
  | { kind: 'indefinite' }
  /** the minimal length plus `delta` (a lie) */
  | { kind: 'lie'; delta: number }
  /** these bytes instead of the length */
  | { kind: 'raw'; bytes: Buffer };

export interface DerNode {
  tag: number;
  /** constructed content, or null for a primitive */
  children: DerNode[] | null;
  /** primitive content (ignored when children or inner is set) */
  content: Buffer;
  /** a BIT STRING wrapping DER (an RSA/EC public key): unused-bits byte, then this element */
  inner?: { unusedBits: number; node: DerNode };
  form: LengthForm;
}

function readHeader(buf: Buffer, off: number): { tag: number; len: number; header: number } | null {
  if (off + 2 > buf.length) return null;
  const tag = buf[off];
  if ((tag & 0x1f) === 0x1f) return null;
  let len = buf[off + 1];
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || off + 2 + n > buf.length) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i];
    header += n;
  }
  return off + header + len > buf.length ? null : { tag, len, header };
}

function parseList(buf: Buffer): DerNode[] | null {
  const out: DerNode[] = [];
  for (let off = 0; off < buf.length; ) {
    const h = readHeader(buf, off);
    if (!h) return null;
    out.push(derParse(buf.subarray(off, off + h.header + h.len)));
    off += h.header + h.len;
  }
  return out;
}

/** Parses one well-formed DER element (as made by openssl) into a tree. */
export function derParse(buf: Buffer): DerNode {
  const h = readHeader(buf, 0);
  if (!h) throw new Error('not DER');
  const content = Buffer.from(buf.subarray(h.header, h.header + h.len));
  const node: DerNode = { tag: h.tag, children: null, content, form: { kind: 'min' } };
  if (h.tag & 0x20) {
    const list = parseList(content);
    if (list) node.children = list;
  } else if (h.tag === 0x03 && content.length > 2 && content[0] === 0 && content[1] === 0x30) {
    const list = parseList(content.subarray(1));
    if (list && list.length === 1) node.inner = { unusedBits: 0, node: list[0] };
  }
  return node;
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function derEncode(node: DerNode): Buffer {
  const content = node.children
    ? Buffer.concat(node.children.map(derEncode))
    : node.inner
      ? Buffer.concat([Buffer.from([node.inner.unusedBits & 0xff]), derEncode(node.inner.node)])
      : node.content;
  const f = node.form;
  let len: Buffer;
  let tail = Buffer.alloc(0);
  switch (f.kind) {
    case 'long': {
      const min = encodeLength(content.length);
      const digits = min.length === 1 ? Buffer.from([content.length]) : min.subarray(1);
      const body = Buffer.concat([Buffer.alloc(f.extra), digits]);
      len = Buffer.concat([Buffer.from([0x80 | body.length]), body]);
      break;
    }
    case 'indefinite':
      len = Buffer.from([0x80]);
      tail = Buffer.from([0, 0]);
      break;
    case 'lie':
      len = encodeLength(Math.max(0, content.length + f.delta));
      break;
    case 'raw':
      len = f.bytes;
      break;
    default:
      len = encodeLength(content.length);
  }
  return Buffer.concat([Buffer.from([node.tag & 0xff]), len, content, tail]);
}

/** Every node of the tree, depth first (BIT STRING contents included). */
export function derNodes(root: DerNode): DerNode[] {
  const out: DerNode[] = [];
  const walk = (n: DerNode): void => {
    out.push(n);
    for (const c of n.children ?? []) walk(c);
    if (n.inner) walk(n.inner.node);
  };
  walk(root);
  return out;
}

export function derClone(node: DerNode): DerNode {
  return {
    tag: node.tag,
    children: node.children ? node.children.map(derClone) : null,
    content: Buffer.from(node.content),
    inner: node.inner ? { unusedBits: node.inner.unusedBits, node: derClone(node.inner.node) } : undefined,
    form: node.form.kind === 'raw' ? { kind: 'raw', bytes: Buffer.from(node.form.bytes) } : { ...node.form }
  };
}

/** One structural edit of a random node: the malformations a strict DER reader must refuse. */
export function mutateDer(root: DerNode, rng: Rng): string {
  const nodes = derNodes(root);
  const n = rng.pick(nodes);
  const primitive = !n.children && !n.inner;
  switch (rng.int(12)) {
    case 0:
      n.form = { kind: 'long', extra: rng.range(0, 3) };
      return 'non-minimal length';
    case 1:
      if (n.children) {
        n.form = { kind: 'indefinite' };
        return 'indefinite length';
      }
      n.form = { kind: 'lie', delta: rng.pick([-1, 1]) };
      return 'length off by one';
    case 2:
      n.form = { kind: 'lie', delta: rng.pick([-3, -2, -1, 1, 2, 100, 70000]) };
      return 'wrong length';
    case 3:
      n.form = { kind: 'raw', bytes: rng.pick([Buffer.from([0x84, 0xff, 0xff, 0xff, 0xff]), Buffer.from([0x88, 0, 0, 0, 0, 0, 0, 1, 0]), Buffer.from([0x80]), Buffer.from([0xff]), Buffer.from([0x85, 1, 0, 0, 0, 0])]) };
      return 'huge or odd length bytes';
    case 4:
      if (n.tag === 0x02 && primitive) {
        n.content = Buffer.concat([Buffer.from([rng.pick([0x00, 0xff])]), n.content]);
        return 'non-minimal INTEGER';
      }
      n.tag = 0x02;
      return 'tag made INTEGER';
    case 5:
      if (n.inner) {
        n.inner.unusedBits = rng.range(1, 255);
        return 'BIT STRING unused bits';
      }
      if (n.tag === 0x03 && primitive && n.content.length) {
        n.content[0] = rng.range(1, 255);
        return 'BIT STRING unused bits';
      }
      n.tag = 0x03;
      return 'tag made BIT STRING';
    case 6:
      if (n.tag === 0x06 && primitive) {
        n.content = Buffer.concat([n.content, Buffer.alloc(rng.range(50, 300), 0x81), Buffer.from([0x01])]);
        return 'long OID';
      }
      n.tag = 0x06;
      return 'tag made OID';
    case 7:
      n.tag = rng.pick([0x1f, 0x00, 0x05, 0x30, 0x31, 0x04, 0x0c, 0x13, 0x1e, 0xa0, 0xa3, 0xff, rng.u32() & 0xff]);
      return 'other tag';
    case 8:
      if (n.children && n.children.length) {
        const i = rng.int(n.children.length);
        const op = rng.int(3);
        if (op === 0) n.children.splice(i, 0, derClone(n.children[i]));
        else if (op === 1) n.children.splice(i, 1);
        else n.children.reverse();
        return ['duplicated child', 'removed child', 'reversed children'][op];
      }
      n.content = mutate(n.content, rng);
      return 'content bytes';
    case 9:
      if (primitive) {
        n.content = mutate(n.content, rng);
        return 'content bytes';
      }
      n.children = [];
      n.inner = undefined;
      return 'emptied';
    case 10: {
      // one deep nesting per tree at most (the encoder recurses)
      if (nodes.length > 500) return mutateDer(root, rng);
      const depth = rng.pick([1, 2, 50, 1000]);
      let inner = derClone(n);
      for (let d = 0; d < depth; d++) inner = { tag: 0x30, children: [inner], content: Buffer.alloc(0), form: { kind: 'min' } };
      Object.assign(n, inner);
      return `nested ${depth} deep`;
    }
    default:
      n.tag = rng.pick([0x0c, 0x13, 0x14, 0x16, 0x1e, 0x1c]);
      n.children = null;
      n.inner = undefined;
      n.content = rng.pick([Buffer.from([0xff, 0xfe]), Buffer.from([0xc0, 0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('a\u0000b'), Buffer.from([0x00]), rng.bytes(rng.range(0, 40))]);
      return 'odd string';
  }
}
