/**
 * A minimal, bounds-checked, strict DER codec: enough to read a PKCS#10 CSR (including its raw
 * signed bytes) and to build X.509 certificates and CRLs. Every read checks lengths against the
 * buffer and refuses BER leniencies (long or indefinite lengths, non-minimal INTEGERs and OID
 * arcs, ...), so hostile input ends in a DerError, never an exception elsewhere.
 */

export class DerError extends Error {}

export interface Tlv {
  tag: number;
  /** the whole element (tag, length and content) */
  raw: Buffer;
  content: Buffer;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8: 0x0c,
  NUMERIC: 0x12,
  PRINTABLE: 0x13,
  T61: 0x14,
  IA5: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL: 0x1c,
  BMP: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31
} as const;

/** The largest OID content we read (bytes); arcs beyond 2^53 - 1 are refused as well. */
export const MAX_OID_BYTES = 64;

const isUniversal = (tag: number): boolean => (tag & 0xc0) === 0;

/** DER rules for the content of universal primitive types (X.690 8 and 10/11). */
function checkContent(tag: number, c: Buffer): void {
  switch (tag) {
    case TAG.BOOLEAN:
      if (c.length !== 1 || (c[0] !== 0x00 && c[0] !== 0xff)) throw new DerError('DER BOOLEAN must be one byte 0x00 or 0xFF');
      return;
    case TAG.INTEGER:
    case TAG.ENUMERATED:
      if (c.length === 0) throw new DerError('empty DER INTEGER');
      if (c.length > 1 && ((c[0] === 0x00 && !(c[1] & 0x80)) || (c[0] === 0xff && c[1] & 0x80))) throw new DerError('non-minimal DER INTEGER');
      return;
    case TAG.BIT_STRING: {
      if (c.length === 0) throw new DerError('empty DER BIT STRING');
      const unused = c[0];
      if (unused > 7) throw new DerError('DER BIT STRING with more than 7 unused bits');
      if (c.length === 1 && unused !== 0) throw new DerError('empty DER BIT STRING with unused bits');
      if (unused && c[c.length - 1] & ((1 << unused) - 1)) throw new DerError('DER BIT STRING with non-zero unused bits');
      return;
    }
    case TAG.NULL:
      if (c.length !== 0) throw new DerError('DER NULL with content');
      return;
    case TAG.OID:
      decodeOid(c);
      return;
    case TAG.BMP:
      if (c.length % 2) throw new DerError('DER BMPString of odd length');
      return;
    case TAG.UNIVERSAL:
      if (c.length % 4) throw new DerError('DER UniversalString length is not a multiple of 4');
      return;
    default:
  }
}

/**
 * Reads one element at `offset`, strictly DER: single-byte tags, definite lengths in their
 * shortest form, no constructed encodings of primitive universal types, and minimal content
 * for BOOLEAN, INTEGER, ENUMERATED, BIT STRING, NULL and OBJECT IDENTIFIER.
 */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + 2 > buf.length) throw new DerError('truncated DER');
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not supported');
  if (isUniversal(tag)) {
    const n = tag & 0x1f;
    if (n === 0) throw new DerError('DER tag 0 (end-of-contents) is not allowed');
    const constructed = (tag & 0x20) !== 0;
    const sequenceOrSet = n === 0x10 || n === 0x11;
    if (constructed !== sequenceOrSet) {
      throw new DerError(constructed ? 'constructed encoding of a primitive DER type' : 'primitive encoding of a DER SEQUENCE or SET');
    }
  }
  let len = buf[offset + 1];
  let header = 2;
  if (len === 0x80) throw new DerError('indefinite DER length');
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n > 4) throw new DerError('unsupported DER length');
    if (offset + 2 + n > buf.length) throw new DerError('truncated DER');
    if (buf[offset + 2] === 0) throw new DerError('non-minimal DER length (leading zero byte)');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i];
    if (len < 0x80) throw new DerError('non-minimal DER length (long form below 128)');
    header += n;
  }
  const end = offset + header + len;
  if (end > buf.length) throw new DerError('truncated DER');
  const content = buf.subarray(offset + header, end);
  if (isUniversal(tag)) checkContent(tag, content);
  return { tag, raw: buf.subarray(offset, end), content };
}

/** The elements inside a constructed element's content (at most `max`, else DerError). */
export function children(content: Buffer, max = 1000): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < content.length; ) {
    if (out.length >= max) throw new DerError('too many DER elements');
    const t = readTlv(content, off);
    out.push(t);
    off += t.raw.length;
  }
  return out;
}

/**
 * Checks that `buf` is exactly one strict DER element, constructed elements included
 * recursively (at most `maxDepth` levels and `maxElements` elements in all).
 */
export function checkDer(buf: Buffer, opts: { maxDepth?: number; maxElements?: number } = {}): Tlv {
  const maxDepth = opts.maxDepth ?? 16;
  let budget = opts.maxElements ?? 4096;
  const walk = (t: Tlv, depth: number): void => {
    if (--budget < 0) throw new DerError('too many DER elements');
    if (!(t.tag & 0x20)) return;
    if (depth >= maxDepth) throw new DerError('DER nested too deeply');
    for (let off = 0; off < t.content.length; ) {
      const c = readTlv(t.content, off);
      walk(c, depth + 1);
      off += c.raw.length;
    }
  };
  const top = readTlv(buf);
  if (top.raw.length !== buf.length) throw new DerError('trailing data after DER');
  walk(top, 0);
  return top;
}

/**
 * An OBJECT IDENTIFIER's dotted form. Strict: 1..64 bytes, every arc in its shortest form
 * (no leading 0x80), the last byte ends an arc, and no arc above 2^53 - 1.
 */
export function decodeOid(content: Buffer): string {
  if (content.length === 0 || content.length > MAX_OID_BYTES) throw new DerError('bad OID length');
  if (content[content.length - 1] & 0x80) throw new DerError('truncated OID arc');
  const arcs: number[] = [];
  let v = 0;
  let first = true;
  for (let i = 0; i < content.length; i++) {
    const b = content[i];
    if (first && b === 0x80) throw new DerError('non-minimal OID arc');
    if (v > (Number.MAX_SAFE_INTEGER - (b & 0x7f)) / 128) throw new DerError('OID arc too large');
    v = v * 128 + (b & 0x7f);
    first = false;
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0;
      first = true;
    }
  }
  const head = arcs[0];
  const top = head < 40 ? 0 : head < 80 ? 1 : 2;
  return [top, head - top * 40, ...arcs.slice(1)].join('.');
}

// ---- encoding ------------------------------------------------------------------------------

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => tlv(TAG.SET, Buffer.concat(items));
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
export const octets = (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b);
export const bits = (b: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b]));
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8, Buffer.from(s, 'utf8'));
export const bool = (v: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0]));

/** A non-negative INTEGER from big-endian bytes. */
export function uint(b: Buffer): Buffer {
  if (b.length === 0) return tlv(TAG.INTEGER, Buffer.from([0]));
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(TAG.INTEGER, v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function base128(n: number): number[] {
  const enc: number[] = [n % 128];
  for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) enc.unshift((v % 128) | 0x80);
  return enc;
}

export function oid(dotted: string): Buffer {
  const p = dotted.split('.').map(Number);
  const out: number[] = [...base128(p[0] * 40 + p[1])];
  for (const n of p.slice(2)) out.push(...base128(n));
  return tlv(TAG.OID, Buffer.from(out));
}

/** UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
export function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(TAG.UTC_TIME, Buffer.from(iso.slice(2))) : tlv(TAG.GENERALIZED_TIME, Buffer.from(iso));
}

export function pemToDer(pem: string, label: string): Buffer {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`);
  const m = re.exec(pem);
  if (!m) throw new DerError(`not a PEM ${label.toLowerCase()}`);
  const der = Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
  if (der.length === 0) throw new DerError(`empty PEM ${label.toLowerCase()}`);
  return der;
}

export function derToPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}
