/**
 * The registry CA against Debian's `openssl` binary: CSRs openssl makes are read to the same CN
 * and public key; keys openssl can make but we do not accept are refused with a reason; a
 * bounded mutation fuzz in which we are never more lenient than `openssl req -verify`;
 * certificates and CRLs we sign are accepted by openssl; and a Node TLS server given our CRL
 * refuses a revoked client certificate in the handshake (also after setSecureContext).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { CsrError, RegistryCA, parseCsr, validateCsr } from '../../nodes/lib/ca';
import { TAG, bits, checkDer, children, derToPem, readTlv, seq, type Tlv } from '../../nodes/lib/der';

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs openssl; never rejects (the exit code is in the result). */
function openssl(args: string[], cwd: string, input?: Buffer): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile('openssl', args, { cwd, encoding: 'buffer', timeout: 60_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: Buffer.from(stdout), stderr: Buffer.from(stderr).toString() });
    });
    if (input) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

async function ok(args: string[], cwd: string): Promise<string> {
  const r = await openssl(args, cwd);
  assert.equal(r.code, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.toString();
}

/** Runs tasks with at most `n` at a time (the machine is shared). */
async function pool<T>(tasks: (() => Promise<T>)[], n = 2): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]();
      }
    })
  );
  return out;
}

const pemDer = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
const csrPem = (der: Buffer): string => derToPem(der, 'CERTIFICATE REQUEST');

/** The CN as `openssl ... -subject -nameopt sep_multiline,oid,utf8` prints it (exactly one CN, unescaped). */
function opensslCn(stdout: Buffer): Buffer | null {
  const marker = Buffer.from('2.5.4.3=');
  const at = stdout.indexOf(marker);
  if (at < 0 || stdout.indexOf(marker, at + 1) >= 0) return null;
  return stdout.subarray(at + marker.length);
}

function sameCn(stdout: Buffer, cn: string): boolean {
  const rest = opensslCn(stdout);
  const want = Buffer.from(cn, 'utf8');
  if (!rest || !rest.subarray(0, want.length).equals(want)) return false;
  const after = rest[want.length];
  return after === 0x0a || rest.subarray(want.length, want.length + 3).equals(Buffer.from(' + '));
}

function publicKeyDer(stdout: Buffer): Buffer | null {
  const m = /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/.exec(stdout.toString('latin1'));
  return m ? pemDer(m[0]) : null;
}

// ---- a DER tree that can be re-encoded with BER leniencies, for the mutation fuzz --------------

interface Node {
  tag: number;
  kids?: Node[];
  content?: Buffer;
  /** length encoding: minimal (default), long form with an extra leading zero, or indefinite */
  form?: 'long' | 'indef';
}

function tree(t: Tlv): Node {
  return t.tag & 0x20 ? { tag: t.tag, kids: children(t.content, 10_000).map(tree) } : { tag: t.tag, content: Buffer.from(t.content) };
}

function encode(n: Node): Buffer {
  const body = n.kids ? Buffer.concat(n.kids.map(encode)) : (n.content ?? Buffer.alloc(0));
  if (n.form === 'indef') return Buffer.concat([Buffer.from([n.tag, 0x80]), body, Buffer.from([0, 0])]);
  const bytes: number[] = [];
  for (let v = body.length; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  let len: number[];
  if (n.form === 'long') len = body.length < 0x80 ? [0x81, body.length] : [0x80 | (bytes.length + 1), 0, ...bytes];
  else len = body.length < 0x80 ? [body.length] : [0x80 | bytes.length, ...bytes];
  return Buffer.concat([Buffer.from([n.tag, ...len]), body]);
}

function clone(n: Node): Node {
  return { tag: n.tag, form: n.form, kids: n.kids?.map(clone), content: n.content ? Buffer.from(n.content) : undefined };
}

function flatten(n: Node, parent: Node | null = null, out: { node: Node; parent: Node | null }[] = []): { node: Node; parent: Node | null }[] {
  out.push({ node: n, parent });
  for (const k of n.kids ?? []) flatten(k, n, out);
  return out;
}

/** Offsets of every length byte in a strict DER buffer. */
function lengthOffsets(buf: Buffer, base = 0, out: number[] = []): number[] {
  for (let off = 0; off < buf.length; ) {
    const t = readTlv(buf, off);
    out.push(base + off + 1);
    if (t.tag & 0x20) lengthOffsets(t.content, base + off + (t.raw.length - t.content.length), out);
    off += t.raw.length;
  }
  return out;
}

class Rand {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
}

const STRING_TAGS = [TAG.UTF8, TAG.PRINTABLE, TAG.T61, TAG.IA5, TAG.BMP, TAG.UNIVERSAL, TAG.NUMERIC, 0x1a, TAG.OCTET_STRING, 0x1b];
const CHARS = ['a', 'Z', '0', '-', ' ', '+', ',', '=', '\\', '"', '\u0000', '\u0001', '\n', '\u007f', 'é', 'ÿ', '€', '東', '😀', '\u{10ffff}', '\ufeff', '\u200b'];

/** A CN-like value of a random string type, sometimes with bytes invalid for that type. */
function stringValue(r: Rand): Node {
  const tag = r.pick(STRING_TAGS);
  let text = '';
  for (let i = 0, n = r.int(12); i < n; i++) text += r.int(3) ? r.pick(CHARS.slice(0, 4)) : r.pick(CHARS);
  let content: Buffer;
  if (r.int(5) === 0) {
    content = Buffer.from(Array.from({ length: r.int(10) }, () => r.int(256)));
  } else if (tag === TAG.BMP) {
    content = Buffer.from(text, 'utf16le').swap16();
  } else if (tag === TAG.UNIVERSAL) {
    const cps = [...text].map((c) => c.codePointAt(0) ?? 0);
    content = Buffer.alloc(cps.length * 4);
    cps.forEach((cp, i) => content.writeUInt32BE(cp, i * 4));
  } else if (tag === TAG.UTF8) {
    content = Buffer.from(text, 'utf8');
  } else {
    content = Buffer.from(text, 'latin1');
  }
  return { tag, content };
}

const SMALL_NODES = (): Node[] => [
  { tag: TAG.NULL, content: Buffer.alloc(0) },
  { tag: TAG.INTEGER, content: Buffer.from([1]) },
  { tag: TAG.UTF8, content: Buffer.from('x') },
  { tag: TAG.OID, content: Buffer.from([0x55, 0x04, 0x03]) },
  { tag: TAG.SEQUENCE, kids: [] },
  { tag: TAG.SET, kids: [] }
];

const CN_OID = Buffer.from([0x55, 0x04, 0x03]);

/** One structural mutation of the tree (in place). */
function mutateTree(root: Node, r: Rand): void {
  const all = flatten(root);
  const { node, parent } = r.pick(all);
  const prims = all.filter((e) => e.node.content);
  const op = r.int(16);
  switch (op) {
    case 0:
      node.form = 'long';
      break;
    case 1:
      node.form = 'indef';
      break;
    case 2: {
      const ints = all.filter((e) => e.node.tag === TAG.INTEGER);
      const n = ints.length ? r.pick(ints).node : node;
      if (n.content) n.content = Buffer.concat([Buffer.from([n.content[0] & 0x80 ? 0xff : 0x00]), n.content]);
      break;
    }
    case 3: {
      const oids = all.filter((e) => e.node.tag === TAG.OID);
      const n = oids.length ? r.pick(oids).node : node;
      if (n.content) {
        const at = r.int(n.content.length);
        n.content = Buffer.concat([n.content.subarray(0, at), Buffer.from([0x80]), n.content.subarray(at)]);
      }
      break;
    }
    case 4: {
      const bs = all.filter((e) => e.node.tag === TAG.BIT_STRING);
      const n = bs.length ? r.pick(bs).node : node;
      if (n.content?.length) n.content[0] = r.int(9);
      break;
    }
    case 5: {
      const bools = all.filter((e) => e.node.tag === TAG.BOOLEAN);
      if (bools.length) r.pick(bools).node.content = Buffer.from([r.pick([0x01, 0x7f, 0x00, 0xff])]);
      break;
    }
    case 6: {
      const tag = r.pick([0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x1e, 0x24, 0x2c, 0x30, 0x31, 0xa0, 0xa3, 0x80, 0x00, 0x10]);
      if (node.kids && !(tag & 0x20)) {
        node.content = Buffer.concat(node.kids.map(encode));
        node.kids = undefined;
      }
      node.tag = tag;
      break;
    }
    case 7:
      if (parent?.kids && parent.kids.length > 0) parent.kids.splice(parent.kids.indexOf(node), 1);
      break;
    case 8:
      if (parent?.kids) parent.kids.splice(parent.kids.indexOf(node), 0, clone(node));
      break;
    case 9:
      if (node.kids && node.kids.length > 1) {
        const i = r.int(node.kids.length);
        const j = r.int(node.kids.length);
        [node.kids[i], node.kids[j]] = [node.kids[j], node.kids[i]];
      }
      break;
    case 10:
      if (node.kids) node.kids.splice(r.int(node.kids.length + 1), 0, r.pick(SMALL_NODES()));
      else if (node.content) node.content = Buffer.concat([node.content, Buffer.from([r.int(256)])]);
      break;
    case 11:
    case 12: {
      // the CN value (or any subject value): another string type / text
      const atvs = all.filter((e) => e.node.tag === TAG.SEQUENCE && e.node.kids?.length === 2 && e.node.kids[0].tag === TAG.OID && e.node.kids[0].content?.subarray(0, 2).equals(CN_OID.subarray(0, 2)));
      if (atvs.length) {
        const atv = r.pick(atvs).node;
        atv.kids![1] = stringValue(r);
      }
      break;
    }
    case 13: {
      // a second CN, or an attribute turned into a CN
      const atvs = all.filter((e) => e.node.tag === TAG.SEQUENCE && e.node.kids?.[0]?.content?.subarray(0, 2).equals(CN_OID.subarray(0, 2)));
      if (atvs.length) {
        const atv = r.pick(atvs);
        if (r.int(2)) atv.node.kids![0].content = Buffer.from(CN_OID);
        else atv.parent?.kids?.push(clone(atv.node));
      }
      break;
    }
    case 14: {
      const n = prims.length ? r.pick(prims).node : node;
      if (n.content?.length) n.content[r.int(n.content.length)] ^= 1 << r.int(8);
      break;
    }
    default: {
      const ints = all.filter((e) => e.node.tag === TAG.INTEGER);
      if (ints.length) ints[0].node.content = Buffer.from(r.pick([[0x01], [0x02], [0xff], [0x00, 0x00], [0x00]]));
    }
  }
}

interface Seed {
  name: string;
  der: Buffer;
  key: KeyObject;
}

describe('registry CA against openssl (lib/ca differential)', function () {
  this.timeout(60000);
  let dir: string;
  let ca: RegistryCA;
  let caPem: string;
  const csrs = new Map<string, string>();

  /** A key and CSR made by openssl in `dir` (name.key, name.csr). */
  async function makeCsr(name: string, args: string[]): Promise<string> {
    await ok(['req', '-new', ...args, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
    const pem = fs.readFileSync(path.join(dir, `${name}.csr`), 'utf8');
    csrs.set(name, pem);
    return pem;
  }

  const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const HUGE_E = (2n ** 2040n + 1n).toString();

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-ca-openssl-'));
    ca = await RegistryCA.open({ dir: null });
    caPem = ca.caCertificate();
    fs.writeFileSync(path.join(dir, 'ca.pem'), caPem);
    fs.writeFileSync(
      path.join(dir, 'pkix.cnf'),
      '[req]\ndistinguished_name = dn\nstring_mask = pkix\nutf8 = yes\n[dn]\n'
    );
    fs.writeFileSync(
      path.join(dir, 'attrs.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'attributes = attrs',
        'prompt = no',
        'utf8 = yes',
        'string_mask = utf8only',
        '[dn]',
        'C = DE',
        'ST = Berlin',
        'O = Acme',
        'OU = Devices',
        'CN = dev-attr',
        'emailAddress = dev@example.com',
        '[attrs]',
        'challengePassword = secret-1234',
        'unstructuredName = Acme device',
        ''
      ].join('\n')
    );
    // every key openssl generates here, two at a time (RSA 4096 and the huge exponent take a second each)
    await pool([
      () => makeCsr('rsa2048', ['-newkey', 'rsa:2048', '-subj', '/CN=dev-rsa2048']),
      () => makeCsr('rsa3072', ['-newkey', 'rsa:3072', '-subj', '/CN=dev-rsa3072']),
      () => makeCsr('rsa4096', ['-newkey', 'rsa:4096', '-subj', '/CN=dev-rsa4096']),
      () => makeCsr('p256', [...P256, '-subj', '/CN=dev-p256']),
      () => makeCsr('p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-subj', '/CN=dev-p384']),
      () => makeCsr('e3', ['-newkey', 'rsa:2048', '-pkeyopt', 'rsa_keygen_pubexp:3', '-subj', '/CN=dev-e3']),
      () => makeCsr('e2p32', ['-newkey', 'rsa:2048', '-pkeyopt', 'rsa_keygen_pubexp:4294967297', '-subj', '/CN=dev-e2p32']),
      () => makeCsr('ehuge', ['-newkey', 'rsa:2048', '-pkeyopt', `rsa_keygen_pubexp:${HUGE_E}`, '-subj', '/CN=dev-ehuge']),
      () => makeCsr('rsa1024', ['-newkey', 'rsa:1024', '-subj', '/CN=dev-rsa1024']),
      () => makeCsr('ed25519', ['-newkey', 'ed25519', '-subj', '/CN=dev-ed25519']),
      () => makeCsr('p521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521', '-subj', '/CN=dev-p521']),
      () => makeCsr('k256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1', '-subj', '/CN=dev-k256']),
      () => makeCsr('explicit', [...P256, '-pkeyopt', 'ec_param_enc:explicit', '-subj', '/CN=dev-explicit']),
      () => makeCsr('pss', ['-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-subj', '/CN=dev-pss']),
      () => makeCsr('utf8', [...P256, '-utf8', '-subj', '/CN=dév-ü-東京']),
      () => makeCsr('printable', [...P256, '-config', 'pkix.cnf', '-subj', '/CN=dev-printable']),
      () => makeCsr('bmp', [...P256, '-config', 'pkix.cnf', '-subj', '/CN=dév-€']),
      () => makeCsr('rdns', [...P256, '-config', 'attrs.cnf', '-addext', 'subjectAltName=DNS:dev.example,IP:10.0.0.1', '-addext', 'keyUsage=critical,digitalSignature']),
      () => makeCsr('multi', [...P256, '-multivalue-rdn', '-subj', '/C=DE/O=Acme+CN=dev-multi/OU=x']),
      () => makeCsr('client-a', [...P256, '-subj', '/CN=client-a']),
      () => makeCsr('client-b', ['-newkey', 'rsa:2048', '-subj', '/CN=client-b'])
    ]);
  });

  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Our CN and SPKI for a CSR file must be what openssl reports. */
  async function sameAsOpenssl(name: string, cn: string): Promise<void> {
    const parsed = parseCsr(csrs.get(name)!);
    assert.equal(parsed.commonName, cn, name);
    const r = await openssl(['req', '-in', `${name}.csr`, '-noout', '-verify', '-pubkey', '-subject', '-nameopt', 'sep_multiline,oid,utf8'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(sameCn(r.stdout, parsed.commonName), `${name}: openssl shows ${r.stdout.toString()}`);
    assert.deepEqual(publicKeyDer(r.stdout), parsed.spki, `${name}: same public key`);
  }

  it('reads openssl CSRs with RSA 2048/3072/4096 (e = 65537 or 3) and EC P-256/P-384 keys to the CN and key openssl reports', async function () {
    for (const name of ['rsa2048', 'rsa3072', 'rsa4096', 'p256', 'p384', 'e3']) await sameAsOpenssl(name, `dev-${name}`);
    assert.equal(parseCsr(csrs.get('e3')!).key.asymmetricKeyDetails?.publicExponent, 3n);
    assert.equal(parseCsr(csrs.get('rsa4096')!).key.asymmetricKeyDetails?.modulusLength, 4096);
  });

  it('reads UTF8String, PrintableString and BMPString CNs, extra and multi-valued RDNs, attributes and extension requests', async function () {
    const types: [string, string, string][] = [
      ['utf8', 'dév-ü-東京', 'UTF8STRING'],
      ['printable', 'dev-printable', 'PRINTABLESTRING'],
      ['bmp', 'dév-€', 'BMPSTRING'],
      ['rdns', 'dev-attr', 'challengePassword'],
      ['multi', 'dev-multi', 'SET']
    ];
    for (const [name, cn, shows] of types) {
      const dump = await ok(['asn1parse', '-in', `${name}.csr`], dir);
      assert.match(dump, new RegExp(shows), `${name} uses ${shows}`);
      await sameAsOpenssl(name, cn);
    }
    const dump = await ok(['asn1parse', '-in', 'rdns.csr'], dir);
    for (const part of ['emailAddress', 'stateOrProvinceName', 'Extension Request', 'X509v3 Subject Alternative Name', 'unstructuredName']) assert.match(dump, new RegExp(part));
    assert.equal(validateCsr(csrs.get('rdns')!, 'dev-attr'), null);
    assert.equal(validateCsr(csrs.get('multi')!, 'dev-multi'), null);
  });

  it('refuses keys openssl makes that are not accepted (Ed25519, RSA-PSS, P-521, secp256k1, explicit curves, RSA 1024, exponent >= 2^32) with a CsrError reason', function () {
    const refusals: [string, RegExp][] = [
      ['ed25519', /key type ed25519 is not accepted/],
      ['pss', /key type rsa-pss is not accepted/],
      ['p521', /EC keys must use P-256 or P-384 \(not P-521\)/],
      ['k256', /EC keys must use P-256 or P-384 \(not secp256k1\)/],
      ['explicit', /EC keys must use P-256 or P-384 \(not explicit curve parameters\)/],
      ['rsa1024', /RSA keys must have 2048 to 8192 bits \(this one has 1024\)/],
      ['e2p32', /public exponent must be odd, at least 3 and below 2\^32/],
      ['ehuge', /public exponent must be odd, at least 3 and below 2\^32/]
    ];
    for (const [name, reason] of refusals) {
      assert.throws(() => parseCsr(csrs.get(name)!), (err: unknown) => err instanceof CsrError && reason.test(err.message), name);
      assert.match(validateCsr(csrs.get(name)!, `dev-${name}`) ?? '', reason, name);
    }
  });

  it('checks the CN against the username and the RSA exponent before it verifies the signature', function () {
    const broken = (name: string): string => {
      const der = pemDer(csrs.get(name)!);
      der[der.length - 3] ^= 0x01; // inside the signature
      return csrPem(der);
    };
    assert.match(validateCsr(broken('ehuge'), 'dev-ehuge') ?? '', /public exponent/);
    assert.match(validateCsr(broken('p256'), 'someone-else') ?? '', /CN "dev-p256" must equal the username "someone-else"/);
    assert.match(validateCsr(broken('p256'), 'dev-p256') ?? '', /signature does not match/);
    // refusing the 2040-bit exponent costs no signature verification: far less than one verify with it
    const csr = csrs.get('ehuge')!;
    const [info, , sig] = children(readTlv(pemDer(csr)).content, 3);
    const publicKey = createPublicKey(createPrivateKey(fs.readFileSync(path.join(dir, 'ehuge.key'))));
    const refuseMs: number[] = [];
    const verifyMs: number[] = [];
    for (let i = 0; i < 15; i++) {
      let t = process.hrtime.bigint();
      validateCsr(csr, 'dev-ehuge');
      refuseMs.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint();
      assert.ok(verify('sha256', info.raw, publicKey, sig.content.subarray(1)));
      verifyMs.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const median = (l: number[]): number => l.sort((x, y) => x - y)[l.length >> 1];
    assert.ok(median(refuseMs) < median(verifyMs) / 2, `refusal ${median(refuseMs).toFixed(3)} ms, one verify ${median(verifyMs).toFixed(3)} ms`);
  });

  it('mutation fuzz: only CsrError, and every mutated CSR we accept is accepted by openssl req -verify with the same CN and key', async function () {
    this.timeout(120000);
    const seed = process.env.CSR_FUZZ_SEED ? Number(process.env.CSR_FUZZ_SEED) >>> 0 : Date.now() >>> 0;
    const r = new Rand(seed);
    // CSR_FUZZ_SCALE=10 runs ten times as many mutants (a longer soak, outside the normal suite)
    const scale = Math.min(100, Math.max(1, Number(process.env.CSR_FUZZ_SCALE) || 1));
    const seeds: Seed[] = ['rdns', 'rsa2048', 'multi'].map((name) => ({
      name,
      der: pemDer(csrs.get(name)!),
      key: createPrivateKey(fs.readFileSync(path.join(dir, `${name}.key`)))
    }));
    const accepted = new Map<string, { der: Buffer; cn: string; spki: Buffer }>();
    const stats = { plain: 0, resigned: 0, accepted: 0, refused: 0 };
    const started = Date.now();

    const tryCsr = (der: Buffer): void => {
      let parsed;
      try {
        parsed = parseCsr(csrPem(der));
      } catch (err) {
        if (!(err instanceof CsrError)) assert.fail(`seed ${seed}: ${der.toString('hex')} threw ${(err as Error)?.stack ?? String(err)}`);
        stats.refused++;
        return;
      }
      stats.accepted++;
      const id = createHash('sha256').update(der).digest('hex');
      if (!accepted.has(id)) accepted.set(id, { der, cn: parsed.commonName, spki: parsed.spki });
    };

    // 1. mutations of the whole DER as sent (bit flips, bytes, truncations, length bytes, BER lengths)
    for (let i = 0; i < 3000 * scale; i++) {
      const s = seeds[i % seeds.length];
      let der: Buffer = Buffer.from(s.der);
      const op = r.int(7);
      if (op === 0) der[r.int(der.length)] ^= 1 << r.int(8);
      else if (op === 1) der[r.int(der.length)] = r.int(256);
      else if (op === 2) der = der.subarray(0, r.int(der.length));
      else if (op === 3) {
        const at = r.pick(lengthOffsets(s.der));
        der[at] = r.pick([der[at] + 1, der[at] - 1, 0x80, 0x81, 0x82, 0x84, 0xff, r.int(256)]) & 0xff;
      } else if (op === 4) {
        const t = tree(readTlv(s.der));
        const all = flatten(t);
        r.pick(all).node.form = r.int(4) ? 'long' : 'indef';
        der = encode(t);
      } else if (op === 5) {
        const at = r.int(der.length);
        der = r.int(2) ? Buffer.concat([der.subarray(0, at), Buffer.from([r.int(256)]), der.subarray(at)]) : Buffer.concat([der.subarray(0, at), der.subarray(at + 1)]);
      } else {
        der = Buffer.concat([der, Buffer.from([0, 0])]);
      }
      stats.plain++;
      tryCsr(der);
    }

    // 2. mutations of the signed CertificationRequestInfo, signed again with the CSR's own key
    //    (what an attacker holding a key can send): the structural checks must hold on their own
    for (let i = 0; i < 1200 * scale; i++) {
      const s = seeds[i % seeds.length];
      const [infoTlv, alg] = children(readTlv(s.der).content, 3);
      let info: Buffer;
      if (r.int(5) === 0) {
        info = Buffer.from(infoTlv.raw);
        for (let k = 0, n = 1 + r.int(3); k < n; k++) info[r.int(info.length)] ^= 1 << r.int(8);
      } else {
        const t = tree(infoTlv);
        for (let k = 0, n = 1 + r.int(2); k < n; k++) mutateTree(t, r);
        info = encode(t);
      }
      const der = seq(info, alg.raw, bits(sign('sha256', info, s.key)));
      stats.resigned++;
      tryCsr(der);
    }
    const parsedMs = Date.now() - started;

    // 3. openssl must accept every distinct CSR we accepted (bounded: at most 400 runs per scale, two at a time)
    const list = [...accepted.values()].slice(0, 400 * scale);
    let i = 0;
    const failures: string[] = [];
    await pool(
      list.map((a) => async () => {
        const file = `fuzz-${i++}.der`;
        fs.writeFileSync(path.join(dir, file), a.der);
        const res = await openssl(['req', '-verify', '-noout', '-inform', 'DER', '-in', file, '-pubkey', '-subject', '-nameopt', 'sep_multiline,oid,utf8'], dir);
        if (res.code !== 0) failures.push(`openssl refused what we accepted (seed ${seed}): ${a.der.toString('hex')}\n${res.stderr}`);
        else if (!sameCn(res.stdout, a.cn)) failures.push(`different CN (seed ${seed}): ours ${JSON.stringify(a.cn)}, openssl ${JSON.stringify(res.stdout.toString())}: ${a.der.toString('hex')}`);
        else if (!publicKeyDer(res.stdout)?.equals(a.spki)) failures.push(`different key (seed ${seed}): ${a.der.toString('hex')}`);
        fs.rmSync(path.join(dir, file), { force: true });
      })
    );
    if (process.env.CSR_FUZZ_VERBOSE) {
      console.log(`      fuzz seed ${seed}: ${JSON.stringify(stats)}, ${accepted.size} distinct accepted, ${list.length} checked by openssl, parse ${parsedMs} ms, total ${Date.now() - started} ms`);
    }
    assert.deepEqual(failures.slice(0, 5), []);
    assert.ok(accepted.size >= 20, `the fuzz must produce accepted mutants for openssl to judge (seed ${seed}: ${accepted.size})`);
    assert.ok(stats.refused > stats.accepted, `most mutants are refused (seed ${seed})`);
  });

  it('signs certificates openssl verifies, with the expected CN, serial, key usages, basic constraints and SANs, in strict DER', async function () {
    const issued: { file: string; pem: string; purpose: string; expect: RegExp[] }[] = [];
    const a = await ca.signCsr(csrs.get('client-a')!, 'client-a');
    issued.push({ file: 'client-a.crt', pem: a.pem, purpose: 'sslclient', expect: [/Subject: CN ?= ?client-a\n/, /TLS Web Client Authentication/, /X509v3 Key Usage: critical\n\s+Digital Signature\n/] });
    const b = await ca.signCsr(csrs.get('client-b')!, 'client-b');
    issued.push({ file: 'client-b.crt', pem: b.pem, purpose: 'sslclient', expect: [/Subject: CN ?= ?client-b\n/, /TLS Web Client Authentication/, /X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/] });
    const server = await ca.issueServer(['localhost', 'broker.example'], ['127.0.0.1', '::1', 'not-an-ip']);
    issued.push({
      file: 'server.crt',
      pem: server.cert,
      purpose: 'sslserver',
      expect: [/Subject: CN ?= ?localhost\n/, /TLS Web Server Authentication/, /DNS:localhost, DNS:broker\.example, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1\n/]
    });
    for (const c of issued) {
      fs.writeFileSync(path.join(dir, c.file), c.pem);
      assert.match(await ok(['verify', '-CAfile', 'ca.pem', '-purpose', c.purpose, c.file], dir), /: OK/);
      const text = await ok(['x509', '-in', c.file, '-noout', '-text'], dir);
      for (const e of [...c.expect, /X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/, /Version: 3 \(0x2\)/, /Signature Algorithm: ecdsa-with-SHA256/, /X509v3 Authority Key Identifier/, /X509v3 Subject Key Identifier/]) {
        assert.match(text, e, `${c.file}: ${e}`);
      }
      const x = new X509Certificate(c.pem);
      assert.equal((await ok(['x509', '-in', c.file, '-noout', '-serial'], dir)).trim(), `serial=${x.serialNumber}`);
      const der = pemDer(c.pem);
      assert.doesNotThrow(() => checkDer(der), `${c.file} is strict DER`);
      fs.writeFileSync(path.join(dir, c.file.replace('.crt', '.der')), der);
      await ok(['asn1parse', '-inform', 'DER', '-in', c.file.replace('.crt', '.der'), '-noout'], dir);
      const again = await openssl(['x509', '-inform', 'DER', '-in', c.file.replace('.crt', '.der'), '-outform', 'DER'], dir);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(again.stdout.equals(der), `${c.file}: openssl re-encodes it byte for byte`);
    }
  });

  it('signs CRLs openssl verifies (EC and RSA CAs): v2, the CA subject as issuer, AKI, increasing CRL numbers, the revoked serials', async function () {
    const a = await ca.signCsr(csrs.get('client-a')!, 'client-a');
    const b = await ca.signCsr(csrs.get('client-b')!, 'client-b');
    fs.writeFileSync(path.join(dir, 'a.crt'), a.pem);
    fs.writeFileSync(path.join(dir, 'b.crt'), b.pem);
    const revokedAt = '2026-01-02T03:04:05.000Z';
    const empty = ca.crl([]);
    const one = ca.crl([{ serial: a.info.serial, revokedAt }, { serial: a.info.serial.toLowerCase(), revokedAt }]);
    fs.writeFileSync(path.join(dir, 'empty.crl'), empty);
    fs.writeFileSync(path.join(dir, 'one.crl'), one);
    for (const file of ['empty.crl', 'one.crl']) {
      const r = await openssl(['crl', '-in', file, '-CAfile', 'ca.pem', '-noout', '-verify'], dir);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr + r.stdout.toString(), /verify OK/);
      assert.doesNotThrow(() => checkDer(pemDer(fs.readFileSync(path.join(dir, file), 'utf8'))));
    }
    const caSubject = new X509Certificate(caPem).subject.split('\n');
    const emptyText = await ok(['crl', '-in', 'empty.crl', '-noout', '-text'], dir);
    assert.match(emptyText, /Version 2 \(0x1\)/);
    assert.match(emptyText, /No Revoked Certificates/);
    for (const part of caSubject) assert.ok(emptyText.includes(part.replace('=', ' = ')), `issuer has ${part}`);
    const text = await ok(['crl', '-in', 'one.crl', '-noout', '-text'], dir);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /X509v3 Authority Key Identifier/);
    assert.equal(text.match(/Serial Number: /g)?.length, 1, 'duplicates listed once');
    assert.ok(text.includes(`Serial Number: ${a.info.serial}`), text);
    assert.match(text, /Revocation Date: Jan {2}2 03:04:05 2026 GMT/);
    const numbers = [emptyText, text].map((t) => BigInt(/X509v3 CRL Number: *\n\s*(\d+)/.exec(t)![1]));
    assert.ok(numbers[1] > numbers[0], `CRL numbers increase (${numbers})`);
    const next = /Next Update: (.+)\n/.exec(text)![1];
    const days = (Date.parse(next) - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days < 7.1, `next update in 7 days (${days})`);
    const last = /Last Update: (.+)\n/.exec(text)![1];
    assert.ok(Date.parse(last) < Date.now() - 60_000, 'this update a few minutes in the past');

    // openssl's own revocation check with our CRL
    const revoked = await openssl(['verify', '-crl_check', '-CAfile', 'ca.pem', '-CRLfile', 'one.crl', 'a.crt'], dir);
    assert.notEqual(revoked.code, 0);
    assert.match(revoked.stdout.toString() + revoked.stderr, /certificate revoked/);
    assert.match(await ok(['verify', '-crl_check', '-CAfile', 'ca.pem', '-CRLfile', 'one.crl', 'b.crt'], dir), /b\.crt: OK/);
    assert.match(await ok(['verify', '-crl_check', '-CAfile', 'ca.pem', '-CRLfile', 'empty.crl', 'a.crt'], dir), /a\.crt: OK/);

    // an RSA CA from the settings' files, with a short nextUpdate
    await ok(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa-ca.key', '-out', 'rsa-ca.crt', '-days', '30', '-subj', '/C=DE/O=Own/CN=Own RSA CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
    const own = await RegistryCA.open({ dir: null, files: { cert: path.join(dir, 'rsa-ca.crt'), key: path.join(dir, 'rsa-ca.key') } });
    const c = await own.signCsr(csrs.get('client-a')!, 'client-a');
    fs.writeFileSync(path.join(dir, 'own-a.crt'), c.pem);
    fs.writeFileSync(path.join(dir, 'own.crl'), own.crl([{ serial: c.info.serial, revokedAt: new Date().toISOString() }], { nextUpdateDays: 1 }));
    const r = await openssl(['crl', '-in', 'own.crl', '-CAfile', 'rsa-ca.crt', '-noout', '-verify'], dir);
    assert.equal(r.code, 0, r.stderr);
    const ownText = await ok(['crl', '-in', 'own.crl', '-noout', '-text'], dir);
    assert.match(ownText, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(ownText, /Issuer: C ?= ?DE, O ?= ?Own, CN ?= ?Own RSA CA/);
    const ownDays = (Date.parse(/Next Update: (.+)\n/.exec(ownText)![1]) - Date.now()) / 86_400_000;
    assert.ok(ownDays > 0.9 && ownDays < 1.1);
    const ownRevoked = await openssl(['verify', '-crl_check', '-CAfile', 'rsa-ca.crt', '-CRLfile', 'own.crl', 'own-a.crt'], dir);
    assert.match(ownRevoked.stdout.toString() + ownRevoked.stderr, /certificate revoked/);

    assert.throws(() => ca.crl([{ serial: 'not hex', revokedAt }]), /invalid certificate serial/);
    assert.throws(() => ca.crl([{ serial: 'AB', revokedAt: 'yesterday' }]), /invalid revocation date/);
    assert.throws(() => ca.crl([], { nextUpdateDays: 0 }), /nextUpdateDays/);
  });

  describe('a Node TLS server with the CA and its CRL', function () {
    let server: tls.Server;
    let port: number;
    let serverOpts: tls.SecureContextOptions;
    const clients = {} as Record<'a' | 'b', { key: Buffer; cert: string; serial: string }>;
    const serverErrors: string[] = [];

    before(async function () {
      for (const n of ['a', 'b'] as const) {
        const signed = await ca.signCsr(csrs.get(`client-${n}`)!, `client-${n}`);
        clients[n] = { key: fs.readFileSync(path.join(dir, `client-${n}.key`)), cert: signed.pem, serial: signed.info.serial };
      }
      const { cert, key } = await ca.issueServer(['localhost'], ['127.0.0.1']);
      serverOpts = { key, cert, ca: [caPem], crl: [ca.crl([{ serial: clients.a.serial, revokedAt: new Date().toISOString() }])] };
      server = tls.createServer({ ...serverOpts, requestCert: true, rejectUnauthorized: true }, (socket) => socket.end('ok'));
      server.on('tlsClientError', (err) => serverErrors.push(err.message));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });

    after(async function () {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    /** true when the server let the client in (it answers "ok"), false when the handshake was refused. */
    function handshake(who: 'a' | 'b' | null, to = port): Promise<boolean> {
      return new Promise((resolve) => {
        const c = tls.connect({
          host: '127.0.0.1',
          port: to,
          servername: 'localhost',
          ca: [caPem],
          ...(who ? { key: clients[who].key, cert: clients[who].cert } : {})
        });
        let data = '';
        const timer = setTimeout(() => c.destroy(), 5000);
        c.on('data', (d: Buffer) => (data += d.toString()));
        c.on('error', () => undefined);
        c.on('close', () => {
          clearTimeout(timer);
          resolve(data === 'ok');
        });
      });
    }

    it('refuses the revoked client certificate in the handshake and accepts a non-revoked one', async function () {
      assert.equal(await handshake('a'), false, 'revoked');
      assert.equal(await handshake('b'), true, 'not revoked');
      assert.equal(await handshake(null), false, 'no certificate');
      assert.ok(serverErrors.length >= 1, 'the server saw the refused handshakes');
      // the reason is the revocation (a server that does not reject says why it would have)
      const probe = tls.createServer({ ...serverOpts, requestCert: true, rejectUnauthorized: false }, (socket) => {
        socket.end(socket.authorized ? 'ok' : String(socket.authorizationError));
      });
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const probePort = (probe.address() as { port: number }).port;
      const reason = await new Promise<string>((resolve) => {
        const c = tls.connect({ host: '127.0.0.1', port: probePort, servername: 'localhost', ca: [caPem], key: clients.a.key, cert: clients.a.cert });
        let data = '';
        c.on('data', (d: Buffer) => (data += d.toString()));
        c.on('error', () => undefined);
        c.on('close', () => resolve(data));
      });
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      assert.equal(reason, 'CERT_REVOKED');
    });

    it('applies a new CRL from setSecureContext to new handshakes, and an empty CRL lets everyone in', async function () {
      server.setSecureContext({ ...serverOpts, crl: [ca.crl([{ serial: clients.a.serial, revokedAt: new Date().toISOString() }, { serial: clients.b.serial, revokedAt: new Date().toISOString() }])] });
      assert.equal(await handshake('b'), false, 'b revoked now');
      assert.equal(await handshake('a'), false, 'a still revoked');
      server.setSecureContext({ ...serverOpts, crl: [ca.crl([])] });
      assert.equal(await handshake('a'), true, 'empty CRL: a passes with CRL checking on');
      assert.equal(await handshake('b'), true, 'empty CRL: b passes with CRL checking on');
    });
  });
});
