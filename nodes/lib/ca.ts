/**
 * The registry's certificate authority: created on first use (an EC P-256 key from Node's
 * native crypto, off the event loop) or loaded from the `clientRegistry.ca` setting; validates
 * CSRs (strict DER; RSA 2048..8192 bits with an odd exponent 3 <= e < 2^32, EC P-256 / P-384;
 * CN = username; self-signature checked last), signs client certificates on approval, issues the
 * TLS listener's server certificate, and signs CRLs of revoked client certificates.
 *
 * Node's crypto signs and verifies; a small DER codec (der.ts) reads CSRs and builds
 * certificates, because node-forge handles neither EC keys nor EC CSRs. The CA key is kept in a
 * file readable by the owner only and never leaves this module.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPair, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import net from 'node:net';
import { DerError, TAG, bits, bool, checkDer, children, decodeOid, derToPem, explicit, octets, oid, pemToDer, readTlv, seq, set, time, tlv, uint, utf8, type Tlv } from './der';
import type { CertificateInfo } from './contract';

const generateKeyPairAsync = promisify(generateKeyPair);

const OID = {
  CN: '2.5.4.3',
  O: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  crlNumber: '2.5.29.20',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  rsaSha256: '1.2.840.113549.1.1.11'
};

/** Signature algorithms accepted on a CSR: the hash Node's verify() needs and the key type. */
const CSR_SIGNATURES: Record<string, { hash: string; key: 'rsa' | 'ec' }> = {
  '1.2.840.113549.1.1.11': { hash: 'sha256', key: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', key: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', key: 'rsa' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', key: 'ec' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', key: 'ec' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', key: 'ec' }
};

const MAX_CSR_BYTES = 16384;
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 8192;
/** Accepted EC curves: namedCurve OID -> Node's curve name. */
const EC_CURVES: Record<string, string> = { '1.2.840.10045.3.1.7': 'prime256v1', '1.3.132.0.34': 'secp384r1' };
const KEY_OIDS = { rsa: '1.2.840.113549.1.1.1', ec: '1.2.840.10045.2.1' };
/** Names for refused keys and curves, so the reason is readable. */
const KEY_NAMES: Record<string, string> = {
  '1.3.101.112': 'ed25519',
  '1.3.101.113': 'ed448',
  '1.3.101.110': 'x25519',
  '1.3.101.111': 'x448',
  '1.2.840.113549.1.1.10': 'rsa-pss',
  '1.2.840.10040.4.1': 'dsa',
  '1.2.840.10046.2.1': 'dh',
  '1.3.132.0.35': 'P-521',
  '1.3.132.0.10': 'secp256k1',
  '1.2.840.10045.3.1.1': 'P-192',
  '1.3.132.0.33': 'P-224'
};

/** The string types a subject attribute may use (DirectoryString, IA5String, NumericString). */
const NAME_STRING_TAGS: ReadonlySet<number> = new Set([TAG.UTF8, TAG.NUMERIC, TAG.PRINTABLE, TAG.T61, TAG.IA5, TAG.UNIVERSAL, TAG.BMP]);

export class CsrError extends Error {}

export interface ParsedCsr {
  /** the subject's only CN */
  commonName: string;
  /** the SubjectPublicKeyInfo, DER (canonical: as Node's crypto exports the key) */
  spki: Buffer;
  key: KeyObject;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function badString(): CsrError {
  return new CsrError('csr: a subject attribute has an invalid string value');
}

/** Decodes a subject attribute value; refuses invalid UTF-8/UCS-2/UCS-4 and 8-bit bytes in 7-bit types. */
function decodeString(t: Tlv): string {
  const c = t.content;
  switch (t.tag) {
    case TAG.UTF8:
      try {
        return utf8Strict.decode(c);
      } catch {
        throw badString();
      }
    case TAG.BMP: {
      // UCS-2: no surrogates (OpenSSL refuses them too)
      let out = '';
      for (let i = 0; i < c.length; i += 2) {
        const u = c.readUInt16BE(i);
        if (u >= 0xd800 && u <= 0xdfff) throw badString();
        out += String.fromCharCode(u);
      }
      return out;
    }
    case TAG.UNIVERSAL: {
      let out = '';
      for (let i = 0; i < c.length; i += 4) {
        const cp = c.readUInt32BE(i);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw badString();
        out += String.fromCodePoint(cp);
      }
      return out;
    }
    case TAG.T61:
      return c.toString('latin1');
    default:
      // NumericString, PrintableString, IA5String: 7-bit
      if (c.some((b) => b > 0x7f)) throw badString();
      return c.toString('latin1');
  }
}

function malformed(what: string): CsrError {
  return new CsrError(`csr: malformed ${what}`);
}

/** The subject's only CN; every attribute must be an OID with a string value, every RDN non-empty. */
function commonNameOf(name: Tlv): string {
  let cn: string | null = null;
  for (const rdn of children(name.content, 64)) {
    if (rdn.tag !== TAG.SET) throw malformed('subject');
    const atvs = children(rdn.content, 16);
    if (atvs.length === 0) throw malformed('subject (empty RDN)');
    for (const atv of atvs) {
      if (atv.tag !== TAG.SEQUENCE) throw malformed('subject attribute');
      const parts = children(atv.content, 2);
      if (parts.length !== 2 || parts[0].tag !== TAG.OID || !NAME_STRING_TAGS.has(parts[1].tag)) throw malformed('subject attribute');
      const value = decodeString(parts[1]);
      if (decodeOid(parts[0].content) === OID.CN) {
        if (cn !== null) throw new CsrError('csr: the subject has more than one CN');
        cn = value;
      }
    }
  }
  if (cn === null) throw new CsrError('csr: the subject has no CN (it must equal the username)');
  if (cn === '') throw new CsrError('csr: the subject CN is empty');
  return cn;
}

/** PKCS#10 attributes: [0] IMPLICIT SET OF SEQUENCE { type OID, values SET }. */
function checkAttributes(attributes: Tlv): void {
  for (const a of children(attributes.content, 64)) {
    if (a.tag !== TAG.SEQUENCE) throw malformed('attribute');
    const parts = children(a.content, 2);
    if (parts.length !== 2 || parts[0].tag !== TAG.OID || parts[1].tag !== TAG.SET) throw malformed('attribute');
  }
}

/**
 * The key type from the SubjectPublicKeyInfo's algorithm, refusing other types and curves
 * (and explicit EC parameters) before anything is handed to the crypto library.
 */
function keyTypeOf(spki: Tlv): 'rsa' | 'ec' {
  const parts = children(spki.content, 2);
  if (parts.length !== 2 || parts[0].tag !== TAG.SEQUENCE || parts[1].tag !== TAG.BIT_STRING || parts[1].content[0] !== 0) {
    throw malformed('public key');
  }
  const alg = children(parts[0].content, 2);
  if (alg[0]?.tag !== TAG.OID) throw malformed('public key algorithm');
  const algOid = decodeOid(alg[0].content);
  if (algOid === KEY_OIDS.rsa) {
    if (alg.length !== 2 || alg[1].tag !== TAG.NULL) throw malformed('RSA public key parameters');
    checkRsaPublicKey(parts[1].content.subarray(1));
    return 'rsa';
  }
  if (algOid === KEY_OIDS.ec) {
    const curve = alg.length === 2 && alg[1].tag === TAG.OID ? decodeOid(alg[1].content) : null;
    if (curve === null) throw new CsrError('csr: EC keys must use P-256 or P-384 (not explicit curve parameters)');
    if (!EC_CURVES[curve]) throw new CsrError(`csr: EC keys must use P-256 or P-384 (not ${KEY_NAMES[curve] ?? curve})`);
    return 'ec';
  }
  throw new CsrError(`csr: key type ${KEY_NAMES[algOid] ?? algOid} is not accepted (RSA ${RSA_MIN_BITS}..${RSA_MAX_BITS} bits, EC P-256 or P-384)`);
}

const RSA_EXPONENT_RULE = 'csr: the RSA public exponent must be odd, at least 3 and below 2^32 (65537 is usual)';

/** RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }: size and exponent, read from the DER. */
function checkRsaPublicKey(der: Buffer): void {
  const seqTlv = checkDer(der, { maxDepth: 2, maxElements: 3 });
  const ints = children(seqTlv.content, 2);
  if (seqTlv.tag !== TAG.SEQUENCE || ints.length !== 2 || ints.some((i) => i.tag !== TAG.INTEGER || i.content[0] & 0x80)) throw malformed('RSA public key');
  const [n, e] = ints.map((i) => (i.content[0] === 0 ? i.content.subarray(1) : i.content));
  const bitsLen = n.length === 0 ? 0 : (n.length - 1) * 8 + (32 - Math.clz32(n[0]));
  if (bitsLen < RSA_MIN_BITS || bitsLen > RSA_MAX_BITS) throw new CsrError(`csr: RSA keys must have ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits (this one has ${bitsLen})`);
  const exponent = e.length > 4 ? Infinity : e.reduce((v, b) => v * 256 + b, 0);
  if (exponent < 3 || exponent >= 2 ** 32 || exponent % 2 === 0) throw new CsrError(RSA_EXPONENT_RULE);
}

/** The public key, if it is one we accept (type, size, curve, RSA exponent) and canonically encoded. */
function acceptedKey(spki: Tlv, type: 'rsa' | 'ec'): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki.raw, format: 'der', type: 'spki' });
  } catch {
    throw new CsrError('csr: unreadable public key');
  }
  if (key.asymmetricKeyType !== type) throw new CsrError('csr: unreadable public key');
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa') {
    const bitsLen = details.modulusLength ?? 0;
    if (bitsLen < RSA_MIN_BITS || bitsLen > RSA_MAX_BITS) {
      throw new CsrError(`csr: RSA keys must have ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits (this one has ${bitsLen})`);
    }
    const e = details.publicExponent;
    if (typeof e !== 'bigint' || e < 3n || e >= 2n ** 32n || e % 2n === 0n) {
      throw new CsrError(RSA_EXPONENT_RULE);
    }
  } else if (!Object.values(EC_CURVES).includes(details.namedCurve ?? '')) {
    throw new CsrError('csr: EC keys must use P-256 or P-384');
  }
  if (!key.export({ format: 'der', type: 'spki' }).equals(spki.raw)) throw new CsrError('csr: the public key is not in canonical DER form');
  return key;
}

interface CheckedCsr extends ParsedCsr {
  /** the signed CertificationRequestInfo, its signature and hash */
  signed: Buffer;
  signature: Buffer;
  hash: string;
}

/**
 * Every check except the signature, cheapest first: size, strict DER, structure, version,
 * CN (and CN = username when given), key type, signature algorithm, then key size/exponent.
 */
function inspectCsr(pem: unknown, username?: string): CheckedCsr {
  if (typeof pem !== 'string') throw new CsrError('csr must be a PEM string');
  if (pem.length > MAX_CSR_BYTES * 2) throw new CsrError('csr is too large');
  let der: Buffer;
  try {
    der = /NEW CERTIFICATE REQUEST/.test(pem) ? pemToDer(pem, 'NEW CERTIFICATE REQUEST') : pemToDer(pem, 'CERTIFICATE REQUEST');
  } catch (err) {
    throw new CsrError(`csr: ${(err as Error).message}`);
  }
  if (der.length > MAX_CSR_BYTES) throw new CsrError('csr is too large');
  const outer = checkDer(der, { maxDepth: 16, maxElements: 4096 });
  if (outer.tag !== TAG.SEQUENCE) throw new CsrError('csr is not a DER certification request');
  const top = children(outer.content, 3);
  if (top.length !== 3 || top[0].tag !== TAG.SEQUENCE || top[1].tag !== TAG.SEQUENCE || top[2].tag !== TAG.BIT_STRING) {
    throw new CsrError('csr is not a certification request');
  }
  const [info, alg, sig] = top;
  const fields = children(info.content, 4);
  const [version, subject, spki, attributes] = fields;
  if (fields.length < 3 || version.tag !== TAG.INTEGER || subject.tag !== TAG.SEQUENCE || spki.tag !== TAG.SEQUENCE || (attributes && attributes.tag !== 0xa0)) {
    throw new CsrError('csr is not a certification request');
  }
  if (version.content.length !== 1 || version.content[0] !== 0) throw new CsrError('csr: unsupported version (must be v1, 0)');
  if (attributes) checkAttributes(attributes);
  if (sig.content[0] !== 0 || sig.content.length < 2) throw malformed('signature');

  const commonName = commonNameOf(subject);
  if (username !== undefined && commonName !== username) {
    throw new CsrError(`csr: the CN ${JSON.stringify(commonName.slice(0, 64))} must equal the username ${JSON.stringify(username)}`);
  }

  const keyType = keyTypeOf(spki);
  const algParts = children(alg.content, 2);
  const algOid = algParts[0]?.tag === TAG.OID ? decodeOid(algParts[0].content) : '';
  const sigAlg = CSR_SIGNATURES[algOid];
  if (!sigAlg) throw new CsrError(`csr: signature algorithm ${algOid || '?'} is not accepted (use SHA-256 or stronger with RSA or ECDSA)`);
  if (sigAlg.key !== keyType) throw new CsrError('csr: the signature algorithm does not match the key type');
  const paramsOk = sigAlg.key === 'rsa' ? algParts.length === 2 && algParts[1].tag === TAG.NULL : algParts.length === 1;
  if (!paramsOk) throw malformed('signature algorithm parameters');

  const key = acceptedKey(spki, keyType);
  return { commonName, spki: spki.raw, key, signed: info.raw, signature: sig.content.subarray(1), hash: sigAlg.hash };
}

function asCsrError(err: unknown): CsrError {
  if (err instanceof CsrError) return err;
  if (err instanceof DerError) return new CsrError(`csr: ${err.message}`);
  return new CsrError('csr: cannot be parsed');
}

/**
 * Parses and checks a PKCS#10 CSR: strict DER, structure, version, one CN (equal to `username`
 * when given), key type and size, and last (the only costly step) the self-signature.
 * Throws CsrError, and nothing else, for any input.
 */
export function parseCsr(pem: string, username?: string): ParsedCsr {
  let csr: CheckedCsr;
  try {
    csr = inspectCsr(pem, username);
  } catch (err) {
    throw asCsrError(err);
  }
  let ok: boolean;
  try {
    ok = verify(csr.hash, csr.signed, csr.key, csr.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrError('csr: the signature does not match its public key');
  return { commonName: csr.commonName, spki: csr.spki, key: csr.key };
}

/** Why a CSR is not acceptable for this username (CN checked before the signature), or null. */
export function validateCsr(pem: string, username: string): string | null {
  try {
    parseCsr(pem, username);
    return null;
  } catch (err) {
    return asCsrError(err).message;
  }
}

function nameDer(cn: string, org?: string): Buffer {
  const rdns = [];
  if (org) rdns.push(set(seq(oid(OID.O), utf8(org))));
  rdns.push(set(seq(oid(OID.CN), utf8(cn))));
  return seq(...rdns);
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function keyUsage(mask: number): Buffer {
  let unused = 0;
  while (unused < 7 && !(mask & (1 << unused))) unused++;
  return tlv(TAG.BIT_STRING, Buffer.from([unused, mask]));
}

/** SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2 method 1). */
function keyId(spki: Buffer): Buffer {
  const [, key] = children(readTlv(spki).content, 2);
  return createHash('sha1').update(key.content.subarray(1)).digest();
}

function spkiOf(key: KeyObject): Buffer {
  return createPublicKey(key).export({ format: 'der', type: 'spki' });
}

function serialNumber(): Buffer {
  const s = randomBytes(16);
  s[0] &= 0x7f;
  s[0] |= 0x01;
  return s;
}

interface Issue {
  subject: Buffer;
  spki: Buffer;
  days: number;
  extensions: Buffer[];
}

export interface IssuedCertificate {
  pem: string;
  info: CertificateInfo;
}

export function certificateInfo(pem: string): CertificateInfo {
  const x = new X509Certificate(pem);
  return {
    fingerprint: x.fingerprint256,
    serial: x.serialNumber,
    createdAt: new Date(x.validFrom).toISOString(),
    expiresAt: new Date(x.validTo).toISOString()
  };
}

function writePrivate(file: string, text: string): void {
  const tmp = file + '.tmp';
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** The CA certificate's subject (exact DER) and key identifier (its SKI extension, else method 1). */
function caIdentity(cert: X509Certificate, key: KeyObject): { subject: Buffer; keyId: Buffer; crlSign: boolean } {
  const [tbs] = children(readTlv(Buffer.from(cert.raw)).content, 3);
  const fields = children(tbs.content, 10);
  const at = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version, then serial, signature, issuer, validity, subject
  const subject = fields[at + 4];
  if (!subject || subject.tag !== TAG.SEQUENCE) throw new DerError('no subject');
  let ski: Buffer | null = null;
  // no keyUsage extension means every usage; with one, cRLSign (bit 6) must be set
  let crlSign = true;
  const exts = fields.find((f) => f.tag === 0xa3);
  for (const ext of exts ? children(children(exts.content, 1)[0]?.content ?? Buffer.alloc(0), 64) : []) {
    const parts = children(ext.content, 3);
    if (parts[0]?.tag === TAG.OID && decodeOid(parts[0].content) === OID.subjectKeyId) {
      const inner = readTlv(parts[parts.length - 1].content);
      if (inner.tag === TAG.OCTET_STRING && inner.content.length > 0) ski = Buffer.from(inner.content);
    }
    if (parts[0]?.tag === TAG.OID && decodeOid(parts[0].content) === OID.keyUsage) {
      const value = readTlv(readTlv(parts[parts.length - 1].content).raw);
      const usage = value.tag === TAG.BIT_STRING ? value.content : Buffer.alloc(0);
      crlSign = usage.length >= 2 && (usage[1] & 0x02) !== 0;
    }
  }
  return { subject: Buffer.from(subject.raw), keyId: ski ?? keyId(spkiOf(key)), crlSign };
}

function signatureAlgorithm(key: KeyObject): Buffer {
  return key.asymmetricKeyType === 'ec' ? seq(oid(OID.ecdsaSha256)) : seq(oid(OID.rsaSha256), tlv(TAG.NULL, Buffer.alloc(0)));
}

/** A certificate serial as X509Certificate.serialNumber gives it (hex) as INTEGER content bytes. */
function serialBytes(serial: string): Buffer {
  const hex = typeof serial === 'string' ? serial.replace(/:/g, '') : '';
  if (!/^[0-9A-Fa-f]{1,128}$/.test(hex)) throw new TypeError(`crl: invalid certificate serial ${JSON.stringify(serial)}`);
  return Buffer.from(hex.length % 2 ? '0' + hex : hex, 'hex');
}

function uintOf(n: number): Buffer {
  const hex = BigInt(Math.max(0, Math.floor(n))).toString(16);
  return uint(Buffer.from(hex.length % 2 ? '0' + hex : hex, 'hex'));
}

export interface RevokedCertificate {
  /** the serial in hex, as X509Certificate.serialNumber gives it */
  serial: string;
  /** when it was revoked (ISO 8601) */
  revokedAt: string;
}

/** Where several instances keep one CA (the Redis store). */
export interface SharedCa {
  location: string;
  get(): Promise<{ cert: string; key: string } | null>;
  claim(ca: { cert: string; key: string }): Promise<{ cert: string; key: string }>;
}

export class RegistryCA {
  private readonly subjectName: Buffer;
  private readonly caKeyId: Buffer;
  private lastCrlNumber = 0;
  /** may this CA sign CRLs (keyUsage cRLSign)? A CA from the settings files may not */
  readonly canSignCrl: boolean;

  private constructor(
    private readonly key: KeyObject,
    readonly certificate: X509Certificate,
    private readonly validityDays: number,
    readonly location: string | null
  ) {
    const id = caIdentity(certificate, key);
    this.subjectName = id.subject;
    this.caKeyId = id.keyId;
    this.canSignCrl = id.crlSign;
  }

  /**
   * Loads the CA from the settings' files, or from `dir`, or creates one there (or in memory
   * when there is no folder). Rejects with a clear message when files cannot be used.
   */
  static async open(opts: { dir: string | null; files?: { cert: string; key: string }; validityDays?: number; shared?: SharedCa }): Promise<RegistryCA> {
    const days = opts.validityDays ?? 365;
    if (opts.files) {
      let certPem: string, keyPem: string;
      try {
        certPem = fs.readFileSync(opts.files.cert, 'utf8');
        keyPem = fs.readFileSync(opts.files.key, 'utf8');
      } catch (err) {
        throw new Error(`clientRegistry.ca: ${(err as Error).message}`, { cause: err });
      }
      return RegistryCA.fromPem(certPem, keyPem, days, opts.files.cert);
    }
    if (opts.shared) {
      // several instances: the first to store its CA wins, the others use that one
      const where = opts.shared.location;
      const stored = await opts.shared.get();
      if (stored) return RegistryCA.fromPem(stored.cert, stored.key, days, where);
      const made = await RegistryCA.create(days, where);
      const won = await opts.shared.claim({ cert: made.caCertificate(), key: made.privateKeyPem() });
      return RegistryCA.fromPem(won.cert, won.key, days, where);
    }
    if (opts.dir) {
      const certFile = path.join(opts.dir, 'ca.crt');
      const keyFile = path.join(opts.dir, 'ca.key');
      if (fs.existsSync(certFile) || fs.existsSync(keyFile)) {
        return RegistryCA.fromPem(fs.readFileSync(certFile, 'utf8'), fs.readFileSync(keyFile, 'utf8'), days, certFile);
      }
      const ca = await RegistryCA.create(days, certFile);
      fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
      writePrivate(keyFile, ca.key.export({ format: 'pem', type: 'pkcs8' }) as string);
      fs.writeFileSync(certFile + '.tmp', ca.caCertificate(), { mode: 0o644 });
      fs.renameSync(certFile + '.tmp', certFile);
      return ca;
    }
    return RegistryCA.create(days, null);
  }

  private static fromPem(certPem: string, keyPem: string, days: number, where: string): RegistryCA {
    let cert: X509Certificate, key: KeyObject;
    try {
      cert = new X509Certificate(certPem);
      key = createPrivateKey(keyPem);
    } catch (err) {
      throw new Error(`the CA at ${where} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    if (!cert.checkPrivateKey(key)) throw new Error(`the CA key does not match the CA certificate at ${where}`);
    if (!cert.ca) throw new Error(`the certificate at ${where} is not a CA certificate`);
    if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec') throw new Error(`the CA key at ${where} must be RSA or EC (not ${key.asymmetricKeyType})`);
    try {
      return new RegistryCA(key, cert, days, where);
    } catch (err) {
      throw new Error(`the CA certificate at ${where} cannot be read: ${(err as Error).message}`, { cause: err });
    }
  }

  private static async create(days: number, where: string | null): Promise<RegistryCA> {
    const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
    const spki = spkiOf(privateKey);
    const name = nameDer(`Node-RED Client Registry CA ${os.hostname()}`.slice(0, 64), 'node-red-contrib-client-registry');
    const ski = keyId(spki);
    const der = RegistryCA.build(privateKey, name, ski, {
      subject: name,
      spki,
      days: 3650,
      extensions: [
        extension(OID.basicConstraints, true, seq(bool(true))),
        extension(OID.keyUsage, true, keyUsage(0x06)), // keyCertSign, cRLSign
        extension(OID.subjectKeyId, false, octets(ski))
      ]
    });
    return new RegistryCA(privateKey, new X509Certificate(der), days, where);
  }

  private static build(caKey: KeyObject, issuer: Buffer, caKeyId: Buffer, c: Issue): Buffer {
    const sigAlg = signatureAlgorithm(caKey);
    const notBefore = new Date(Date.now() - 5 * 60_000);
    const notAfter = new Date(Date.now() + c.days * 86_400_000);
    const tbs = seq(
      explicit(0, uint(Buffer.from([2]))),
      uint(serialNumber()),
      sigAlg,
      issuer,
      seq(time(notBefore), time(notAfter)),
      c.subject,
      c.spki,
      explicit(3, seq(...c.extensions, extension(OID.authorityKeyId, false, seq(tlv(0x80, caKeyId)))))
    );
    return seq(tbs, sigAlg, bits(sign('sha256', tbs, caKey)));
  }

  private issue(c: Issue): Buffer {
    return RegistryCA.build(this.key, this.subjectName, this.caKeyId, c);
  }

  caCertificate(): string {
    return this.certificate.toString();
  }

  /** The CA's private key (PKCS#8 PEM), for a backup that asks for it explicitly. */
  privateKeyPem(): string {
    return this.key.export({ format: 'pem', type: 'pkcs8' }) as string;
  }

  /** Why a CSR is not acceptable for this username (CN checked before the signature), or null. */
  validateCsr(pem: string, username: string): string | null {
    return validateCsr(pem, username);
  }

  /** Signs a client certificate (clientAuth) for the CSR's key, CN = username; CsrError if the CSR is refused. */
  async signCsr(pem: string, username: string): Promise<IssuedCertificate> {
    const csr = parseCsr(pem, username);
    const rsa = csr.key.asymmetricKeyType === 'rsa';
    const der = this.issue({
      subject: nameDer(username),
      spki: csr.spki,
      days: this.validityDays,
      extensions: [
        extension(OID.basicConstraints, true, seq()),
        extension(OID.keyUsage, true, keyUsage(rsa ? 0xa0 : 0x80)),
        extension(OID.extKeyUsage, false, seq(oid(OID.clientAuth))),
        extension(OID.subjectKeyId, false, octets(keyId(csr.spki)))
      ]
    });
    const out = derToPem(der, 'CERTIFICATE');
    return { pem: out, info: certificateInfo(out) };
  }

  /** A server certificate (serverAuth) for these host names and addresses, with a new key. */
  async issueServer(names: string[], addresses: string[]): Promise<{ cert: string; key: string }> {
    const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
    const spki = spkiOf(privateKey);
    const san = [
      ...names.map((n) => tlv(0x82, Buffer.from(n, 'ascii'))),
      ...addresses.filter((a) => net.isIP(a)).map((a) => tlv(0x87, ipBytes(a)))
    ];
    const der = this.issue({
      subject: nameDer(names[0] ?? 'localhost'),
      spki,
      days: Math.min(this.validityDays, 825),
      extensions: [
        extension(OID.basicConstraints, true, seq()),
        extension(OID.keyUsage, true, keyUsage(0x80)),
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, seq(...san)),
        extension(OID.subjectKeyId, false, octets(keyId(spki)))
      ]
    });
    return { cert: derToPem(der, 'CERTIFICATE'), key: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string };
  }

  /**
   * An X.509 v2 CRL (PEM) listing these certificates, signed by the CA: issuer = the CA
   * certificate's subject, thisUpdate 5 minutes ago, nextUpdate in `nextUpdateDays` (7),
   * extensions authorityKeyIdentifier and cRLNumber (milliseconds since 1970, strictly
   * increasing per CA instance). Duplicate serials are listed once; an invalid serial or date throws.
   */
  crl(revoked: readonly RevokedCertificate[], opts: { nextUpdateDays?: number } = {}): string {
    const days = opts.nextUpdateDays ?? 7;
    if (!(typeof days === 'number' && days > 0 && days <= 3650)) throw new RangeError('crl: nextUpdateDays must be between 0 and 3650');
    const now = Date.now();
    const number = Math.max(now, this.lastCrlNumber + 1);
    this.lastCrlNumber = number;
    const seen = new Set<string>();
    const entries: Buffer[] = [];
    for (const r of revoked) {
      const serial = serialBytes(r?.serial);
      const key = serial.toString('hex').replace(/^(00)+(?=.)/, '');
      if (seen.has(key)) continue;
      seen.add(key);
      const at = new Date(r.revokedAt);
      if (typeof r.revokedAt !== 'string' || Number.isNaN(at.getTime())) throw new TypeError(`crl: invalid revocation date for serial ${r.serial}`);
      entries.push(seq(uint(serial), time(at)));
    }
    const sigAlg = signatureAlgorithm(this.key);
    const tbs = seq(
      uint(Buffer.from([1])), // v2
      sigAlg,
      this.subjectName,
      time(new Date(now - 5 * 60_000)),
      time(new Date(now + days * 86_400_000)),
      ...(entries.length ? [seq(...entries)] : []),
      explicit(0, seq(extension(OID.authorityKeyId, false, seq(tlv(0x80, this.caKeyId))), extension(OID.crlNumber, false, uintOf(number))))
    );
    return derToPem(seq(tbs, sigAlg, bits(sign('sha256', tbs, this.key))), 'X509 CRL');
  }

  /** Was this certificate issued by this CA (signature and issuer name)? */
  issued(cert: X509Certificate): boolean {
    try {
      return cert.checkIssued(this.certificate) && cert.verify(this.certificate.publicKey);
    } catch {
      return false;
    }
  }
}

function ipBytes(address: string): Buffer {
  if (net.isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  const [head, tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return b;
}

/** The host's names and addresses, for the default server certificate. */
export function hostIdentities(): { names: string[]; addresses: string[] } {
  const names = [...new Set(['localhost', os.hostname()].filter((n) => /^[A-Za-z0-9.-]+$/.test(n)))];
  const addresses = new Set(['127.0.0.1', '::1']);
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (!a.address.includes('%')) addresses.add(a.address);
  }
  return { names, addresses: [...addresses] };
}
