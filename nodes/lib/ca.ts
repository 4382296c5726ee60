/**
 * The registry's certificate authority: created on first use (an EC P-256 key from Node's
 * native crypto, off the event loop) or loaded from the `clientRegistry.ca` setting; validates
 * CSRs (RSA >= 2048 bits, EC P-256 / P-384; self-signature; CN = username), signs client
 * certificates on approval, and issues the TLS listener's server certificate.
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
import { DerError, TAG, bits, bool, children, decodeOid, derToPem, explicit, octets, oid, pemToDer, readTlv, seq, set, time, tlv, uint, utf8 } from './der';
import type { CertificateInfo } from './realm';

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
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  rsaSha256: '1.2.840.113549.1.1.11'
};

/** Signature algorithms accepted on a CSR, with the hash Node's verify() needs. */
const CSR_SIGNATURES: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512'
};

const MAX_CSR_BYTES = 16384;

export class CsrError extends Error {}

export interface ParsedCsr {
  commonName: string | null;
  spki: Buffer;
  key: KeyObject;
}

function decodeString(t: { tag: number; content: Buffer }): string {
  if (t.tag === TAG.BMP) {
    const swapped = Buffer.from(t.content);
    swapped.swap16();
    return swapped.toString('utf16le');
  }
  if (t.tag === TAG.UTF8) return t.content.toString('utf8');
  return t.content.toString('latin1');
}

function commonNameOf(name: Buffer): string | null {
  let cn: string | null = null;
  for (const rdn of children(readTlv(name).content, 64)) {
    for (const atv of children(rdn.content, 16)) {
      const [type, value] = children(atv.content, 2);
      if (type && value && decodeOid(type.content) === OID.CN) {
        if (cn !== null) throw new CsrError('the CSR subject has more than one CN');
        cn = decodeString(value);
      }
    }
  }
  return cn;
}

/** Parses and checks a PKCS#10 CSR: structure, key type and size, self-signature. */
export function parseCsr(pem: string): ParsedCsr {
  if (typeof pem !== 'string') throw new CsrError('csr must be a PEM string');
  if (Buffer.byteLength(pem) > MAX_CSR_BYTES * 2) throw new CsrError('csr is too large');
  let der: Buffer;
  try {
    der = /NEW CERTIFICATE REQUEST/.test(pem) ? pemToDer(pem, 'NEW CERTIFICATE REQUEST') : pemToDer(pem, 'CERTIFICATE REQUEST');
  } catch (err) {
    throw new CsrError(`csr: ${(err as Error).message}`);
  }
  if (der.length > MAX_CSR_BYTES) throw new CsrError('csr is too large');
  try {
    const outer = readTlv(der);
    if (outer.tag !== TAG.SEQUENCE || outer.raw.length !== der.length) throw new CsrError('csr is not a DER certification request');
    const [info, alg, sig] = children(outer.content, 3);
    if (!info || !alg || !sig || info.tag !== TAG.SEQUENCE || alg.tag !== TAG.SEQUENCE || sig.tag !== TAG.BIT_STRING) {
      throw new CsrError('csr is not a certification request');
    }
    const [version, subject, spki] = children(info.content, 4);
    if (!version || !subject || !spki || version.tag !== TAG.INTEGER || subject.tag !== TAG.SEQUENCE || spki.tag !== TAG.SEQUENCE) {
      throw new CsrError('csr is not a certification request');
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: spki.raw, format: 'der', type: 'spki' });
    } catch {
      throw new CsrError('csr: unreadable public key');
    }
    const details = key.asymmetricKeyDetails ?? {};
    if (key.asymmetricKeyType === 'rsa') {
      const bitsLen = details.modulusLength ?? 0;
      if (bitsLen < 2048 || bitsLen > 8192) throw new CsrError(`csr: RSA keys must have 2048 to 8192 bits (this one has ${bitsLen})`);
    } else if (key.asymmetricKeyType === 'ec') {
      if (!['prime256v1', 'secp384r1'].includes(details.namedCurve ?? '')) throw new CsrError(`csr: EC keys must use P-256 or P-384 (not ${details.namedCurve})`);
    } else {
      throw new CsrError(`csr: key type ${key.asymmetricKeyType} is not accepted (RSA >= 2048 bits, EC P-256 or P-384)`);
    }
    const algOid = decodeOid(children(alg.content, 2)[0]?.content ?? Buffer.alloc(0));
    const hash = CSR_SIGNATURES[algOid];
    if (!hash) throw new CsrError(`csr: signature algorithm ${algOid} is not accepted (use SHA-256 or stronger)`);
    if (sig.content.length < 2 || sig.content[0] !== 0) throw new CsrError('csr: malformed signature');
    const ok = verify(hash, info.raw, key, sig.content.subarray(1));
    if (!ok) throw new CsrError('csr: the signature does not match its public key');
    return { commonName: commonNameOf(subject.raw), spki: spki.raw, key };
  } catch (err) {
    if (err instanceof CsrError) throw err;
    if (err instanceof DerError) throw new CsrError(`csr: ${err.message}`);
    throw new CsrError('csr: cannot be parsed');
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

export class RegistryCA {
  private constructor(
    private readonly key: KeyObject,
    readonly certificate: X509Certificate,
    private readonly validityDays: number,
    readonly location: string | null
  ) {}

  /**
   * Loads the CA from the settings' files, or from `dir`, or creates one there (or in memory
   * when there is no folder). Rejects with a clear message when files cannot be used.
   */
  static async open(opts: { dir: string | null; files?: { cert: string; key: string }; validityDays?: number }): Promise<RegistryCA> {
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
    return new RegistryCA(key, cert, days, where);
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
    const ec = caKey.asymmetricKeyType === 'ec';
    const sigAlg = ec ? seq(oid(OID.ecdsaSha256)) : seq(oid(OID.rsaSha256), tlv(TAG.NULL, Buffer.alloc(0)));
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
    const issuer = Buffer.from(this.certificate.raw);
    const tbsIssuer = children(readTlv(children(readTlv(issuer).content, 3)[0].raw).content, 10);
    // the CA's subject is the 6th field of its TBSCertificate (after the [0] version)
    const subjectField = tbsIssuer[5];
    const caSki = keyId(spkiOf(this.key));
    return RegistryCA.build(this.key, subjectField.raw, caSki, c);
  }

  caCertificate(): string {
    return this.certificate.toString();
  }

  /** Why a CSR is not acceptable for this username, or null. */
  validateCsr(pem: string, username: string): string | null {
    try {
      const csr = parseCsr(pem);
      if (!csr.commonName) return 'csr: the subject must have a CN equal to the username';
      if (csr.commonName !== username) return `csr: the CN "${csr.commonName}" must equal the username "${username}"`;
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Signs a client certificate (clientAuth) for the CSR's key, CN = username. */
  async signCsr(pem: string, username: string): Promise<IssuedCertificate> {
    const error = this.validateCsr(pem, username);
    if (error) throw new CsrError(error);
    const csr = parseCsr(pem);
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
