/**
 * The strict DER reader (lib/der): for each DER rule a valid encoding is read and its BER or
 * otherwise non-minimal variant is refused with a DerError; then a bounded random fuzz in which
 * nothing but DerError may be thrown.
 */
import assert from 'node:assert/strict';
import { DerError, MAX_OID_BYTES, TAG, bits, bool, checkDer, children, decodeOid, oid, readTlv, seq, set, time, tlv, uint, utf8 } from '../../nodes/lib/der';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function refused(buf: Buffer, pattern: RegExp, read: (b: Buffer) => unknown = readTlv): void {
  assert.throws(
    () => read(buf),
    (err: unknown) => err instanceof DerError && pattern.test((err as Error).message),
    `${buf.toString('hex')} must be refused with ${pattern}`
  );
}

/** A small seeded PRNG (mulberry32): a failing run replays with DER_FUZZ_SEED=<seed>. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('strict DER reader (lib/der)', function () {
  describe('lengths', function () {
    it('reads short-form lengths, and long form only from 128 on', function () {
      assert.deepEqual(readTlv(hex('04 03 616263')).content, Buffer.from('abc'));
      const b128 = Buffer.concat([hex('04 81 80'), Buffer.alloc(128, 1)]);
      assert.equal(readTlv(b128).content.length, 128);
      const b256 = Buffer.concat([hex('04 82 0100'), Buffer.alloc(256, 1)]);
      assert.equal(readTlv(b256).content.length, 256);
      refused(hex('04 81 03 616263'), /non-minimal DER length/);
      refused(Buffer.concat([hex('04 81 7f'), Buffer.alloc(127)]), /non-minimal DER length/);
    });

    it('refuses leading zero length bytes, indefinite lengths, reserved and oversized length forms', function () {
      refused(Buffer.concat([hex('04 82 0080'), Buffer.alloc(128)]), /leading zero/);
      refused(Buffer.concat([hex('04 83 000100'), Buffer.alloc(256)]), /leading zero/);
      refused(hex('30 80 0500 0000'), /indefinite/);
      refused(hex('04 ff 00'), /unsupported DER length/);
      refused(hex('04 85 0100000000'), /unsupported DER length/);
    });

    it('refuses truncated elements and lengths beyond the buffer', function () {
      refused(hex(''), /truncated/);
      refused(hex('04'), /truncated/);
      refused(hex('04 05 6162'), /truncated/);
      refused(hex('04 82 01'), /truncated/);
      refused(hex('30 84 ffffffff'), /truncated/);
      refused(hex('04 00'), /truncated/, (b) => readTlv(b, 1));
      refused(hex('04 00'), /truncated/, (b) => readTlv(b, -1));
      refused(hex('04 00'), /truncated/, (b) => readTlv(b, 0.5));
    });
  });

  describe('tags', function () {
    it('reads SEQUENCE and SET constructed, context tags either way', function () {
      assert.equal(readTlv(hex('30 00')).tag, TAG.SEQUENCE);
      assert.equal(readTlv(hex('31 03 020100')).tag, TAG.SET);
      assert.equal(readTlv(hex('a0 03 020100')).tag, 0xa0);
      assert.equal(readTlv(hex('80 02 abcd')).tag, 0x80);
    });

    it('refuses tag 0 (end-of-contents), multi-byte tags, constructed strings and primitive SEQUENCEs', function () {
      refused(hex('00 00'), /tag 0/);
      refused(hex('1f 81 00 00'), /multi-byte/);
      refused(hex('24 05 0403616263'), /constructed encoding/); // BER constructed OCTET STRING
      refused(hex('23 04 03020000'), /constructed encoding/);
      refused(hex('2c 00'), /constructed encoding/);
      refused(hex('10 00'), /primitive encoding/);
      refused(hex('11 00'), /primitive encoding/);
    });
  });

  describe('INTEGER and ENUMERATED', function () {
    it('reads minimal two-complement contents', function () {
      for (const ok of ['02 01 00', '02 01 7f', '02 02 0080', '02 01 ff', '02 02 ff7f', '02 03 00ff00', '0a 01 02']) {
        assert.doesNotThrow(() => readTlv(hex(ok)), ok);
      }
    });

    it('refuses empty contents and redundant leading 0x00 / 0xFF bytes', function () {
      refused(hex('02 00'), /empty DER INTEGER/);
      refused(hex('02 02 007f'), /non-minimal DER INTEGER/);
      refused(hex('02 02 0000'), /non-minimal DER INTEGER/);
      refused(hex('02 02 ff80'), /non-minimal DER INTEGER/);
      refused(hex('02 03 00008f'), /non-minimal DER INTEGER/);
      refused(hex('0a 02 0001'), /non-minimal DER INTEGER/);
    });

    it('writes minimal INTEGERs (uint)', function () {
      assert.deepEqual(uint(hex('00000001')), hex('02 01 01'));
      assert.deepEqual(uint(hex('80')), hex('02 02 0080'));
      assert.deepEqual(uint(hex('0000')), hex('02 01 00'));
      assert.deepEqual(uint(Buffer.alloc(0)), hex('02 01 00'));
      for (const b of [hex('01'), hex('ff'), hex('00ff'), hex('7fffffff')]) assert.doesNotThrow(() => readTlv(uint(b)));
    });
  });

  describe('BIT STRING, BOOLEAN, NULL, BMPString, UniversalString', function () {
    it('reads BIT STRINGs with 0..7 unused (zero) bits', function () {
      assert.doesNotThrow(() => readTlv(hex('03 01 00')));
      assert.doesNotThrow(() => readTlv(hex('03 02 0780')));
      assert.doesNotThrow(() => readTlv(hex('03 03 00abcd')));
      assert.doesNotThrow(() => readTlv(bits(hex('abcd'))));
    });

    it('refuses an empty BIT STRING, more than 7 unused bits, unused bits without content or set to 1', function () {
      refused(hex('03 00'), /empty DER BIT STRING/);
      refused(hex('03 02 08ff'), /more than 7 unused bits/);
      refused(hex('03 01 01'), /unused bits/);
      refused(hex('03 02 0181'), /non-zero unused bits/);
      refused(hex('03 02 0703'), /non-zero unused bits/);
    });

    it('reads BOOLEAN 0x00 / 0xFF only, NULL only empty', function () {
      assert.doesNotThrow(() => readTlv(hex('01 01 ff')));
      assert.doesNotThrow(() => readTlv(hex('01 01 00')));
      assert.deepEqual(bool(true), hex('01 01 ff'));
      refused(hex('01 01 01'), /BOOLEAN/);
      refused(hex('01 01 7f'), /BOOLEAN/);
      refused(hex('01 02 00ff'), /BOOLEAN/);
      refused(hex('01 00'), /BOOLEAN/);
      assert.doesNotThrow(() => readTlv(hex('05 00')));
      refused(hex('05 01 00'), /NULL/);
    });

    it('refuses BMPStrings of odd length and UniversalStrings not made of 4-byte characters', function () {
      assert.doesNotThrow(() => readTlv(hex('1e 02 0041')));
      refused(hex('1e 03 004100'), /BMPString/);
      assert.doesNotThrow(() => readTlv(hex('1c 04 00000041')));
      refused(hex('1c 02 0041'), /UniversalString/);
    });
  });

  describe('OBJECT IDENTIFIER', function () {
    it('decodes OIDs, including large first arcs and arcs up to 2^53 - 1', function () {
      assert.equal(decodeOid(hex('2a864886f70d01010b')), '1.2.840.113549.1.1.11');
      assert.equal(decodeOid(hex('550403')), '2.5.4.3');
      assert.equal(decodeOid(hex('00')), '0.0');
      assert.equal(decodeOid(hex('8837')), '2.999');
      for (const dotted of ['2.5.29.35', '1.2.840.10045.4.3.2', '2.999.1', '1.3.6.1.4.1.311.21.7', `1.2.${Number.MAX_SAFE_INTEGER}`, `2.${Number.MAX_SAFE_INTEGER - 80}`]) {
        const t = readTlv(oid(dotted));
        assert.equal(t.tag, TAG.OID);
        assert.equal(decodeOid(t.content), dotted);
      }
    });

    it('refuses empty and over-long OIDs, non-minimal arcs, unterminated arcs and arcs above 2^53 - 1', function () {
      refused(hex(''), /bad OID length/, decodeOid);
      refused(hex('06 00'), /bad OID length/);
      const longest = Buffer.concat([hex('2a'), Buffer.alloc(MAX_OID_BYTES - 1, 0x01)]);
      assert.doesNotThrow(() => decodeOid(longest));
      refused(Buffer.concat([longest, hex('01')]), /bad OID length/, decodeOid);
      refused(hex('2a 8001'), /non-minimal OID arc/, decodeOid);
      refused(hex('80 01'), /non-minimal OID arc/, decodeOid);
      refused(hex('06 03 2a8001'), /non-minimal OID arc/);
      refused(hex('2a 86'), /truncated OID arc/, decodeOid);
      refused(hex('06 02 2a86'), /truncated OID arc/);
      // 2^53 = 0x20000000000000: eight 7-bit groups 10 00 00 00 00 00 00 00
      refused(hex('2a 90808080808080 00'), /OID arc too large/, decodeOid);
      assert.equal(decodeOid(hex('2a 8fffffffffffff 7f')), `1.2.${Number.MAX_SAFE_INTEGER}`);
    });
  });

  describe('children and checkDer', function () {
    it('lists the elements of a constructed element, bounded by max', function () {
      const content = Buffer.concat([hex('020101'), hex('0500'), utf8('x')]);
      assert.deepEqual(children(content).map((t) => t.tag), [TAG.INTEGER, TAG.NULL, TAG.UTF8]);
      refused(content, /too many DER elements/, (b) => children(b, 2));
      refused(Buffer.concat([content, hex('02')]), /truncated/, children);
      refused(Buffer.concat([content, hex('0201ff0000')]), /tag 0/, children);
    });

    it('checks a whole tree: every nested element strict, no trailing data, bounded depth and size', function () {
      const good = seq(uint(hex('05')), set(seq(oid('2.5.4.3'), utf8('dev'))), tlv(0xa0, seq(bool(false))), bits(hex('00')));
      assert.equal(checkDer(good).raw.length, good.length);
      const badInner = seq(uint(hex('05')), tlv(0xa0, tlv(TAG.INTEGER, hex('0005'))));
      refused(badInner, /non-minimal DER INTEGER/, checkDer);
      refused(Buffer.concat([good, hex('00')]), /trailing data/, checkDer);
      let deep = hex('0500');
      for (let i = 0; i < 20; i++) deep = seq(deep);
      assert.doesNotThrow(() => checkDer(deep, { maxDepth: 21 }));
      refused(deep, /nested too deeply/, (b) => checkDer(b, { maxDepth: 16 }));
      const wide = seq(...Array.from({ length: 100 }, () => hex('0500')));
      refused(wide, /too many DER elements/, (b) => checkDer(b, { maxElements: 50 }));
    });

    it('accepts everything the encoder writes (lengths 0..300, times, bits, booleans)', function () {
      for (let n = 0; n <= 300; n++) assert.doesNotThrow(() => checkDer(seq(tlv(TAG.OCTET_STRING, Buffer.alloc(n, 7)))), `length ${n}`);
      for (const d of ['2024-02-29T12:00:00Z', '2049-12-31T23:59:59Z', '2050-01-01T00:00:00Z']) assert.doesNotThrow(() => checkDer(seq(time(new Date(d)))));
      assert.doesNotThrow(() => checkDer(seq(bits(Buffer.alloc(0)), bits(hex('ff')), bool(true), bool(false))));
    });
  });

  it('fuzz: random and mutated inputs end in a DerError or a result, never another exception', function () {
    this.timeout(20000);
    const seed = process.env.DER_FUZZ_SEED ? Number(process.env.DER_FUZZ_SEED) >>> 0 : (Date.now() >>> 0);
    const rand = rng(seed);
    const int = (n: number): number => Math.floor(rand() * n);
    const sample = seq(
      uint(hex('00')),
      seq(set(seq(oid('2.5.4.10'), utf8('Acme'))), set(seq(oid('2.5.4.3'), utf8('dev-001')))),
      seq(seq(oid('1.2.840.10045.2.1'), oid('1.2.840.10045.3.1.7')), bits(Buffer.alloc(65, 4))),
      tlv(0xa0, seq(oid('1.2.840.113549.1.9.14'), set(seq(seq(oid('2.5.29.19'), bool(true), tlv(TAG.OCTET_STRING, seq()))))))
    );
    const interesting = [0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x0a, 0x1c, 0x1e, 0x1f, 0x30, 0x31, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xff];
    let results = 0;
    let errors = 0;
    for (let i = 0; i < 20000; i++) {
      let b: Buffer;
      if (i % 4 === 0) {
        b = Buffer.alloc(int(40));
        for (let k = 0; k < b.length; k++) b[k] = rand() < 0.5 ? interesting[int(interesting.length)] : int(256);
      } else {
        b = Buffer.from(sample);
        const edits = 1 + int(4);
        for (let k = 0; k < edits; k++) {
          const at = int(b.length);
          const op = int(4);
          if (op === 0) b[at] ^= 1 << int(8);
          else if (op === 1) b[at] = interesting[int(interesting.length)];
          else if (op === 2) b = b.subarray(0, at);
          else b = Buffer.concat([b.subarray(0, at), Buffer.from([int(256)]), b.subarray(at)]);
          if (b.length === 0) break;
        }
      }
      const readers: ((x: Buffer) => unknown)[] = [
        (x) => readTlv(x, int(4)),
        (x) => children(x, 1 + int(64)),
        (x) => decodeOid(x),
        (x) => checkDer(x, { maxDepth: 1 + int(16), maxElements: 1 + int(500) }),
        (x) => children(readTlv(x).content, 10).map((t) => (t.tag === TAG.OID ? decodeOid(t.content) : children(t.content)))
      ];
      for (const read of readers) {
        try {
          read(b);
          results++;
        } catch (err) {
          if (!(err instanceof DerError)) assert.fail(`seed ${seed}: ${b.toString('hex')} threw ${(err as Error)?.stack ?? String(err)}`);
          errors++;
        }
      }
    }
    assert.ok(results > 1000 && errors > 1000, `both outcomes exercised (seed ${seed}: ${results} results, ${errors} DerErrors)`);
  });
});
