/**
 * Mosquitto's password hashes and password files (as `mosquitto_passwd` writes them, and as
 * `encoded_password` in dynamic-security.json):
 *
 *   $6$<salt>$<hash>               hash = SHA-512(password ‖ salt)            (Mosquitto ≤ 1.6)
 *   $7$<iterations>$<salt>$<hash>  hash = PBKDF2-HMAC-SHA512(password, salt,
 *                                         iterations, 64 bytes)               (Mosquitto 2.x)
 *
 * salt and hash in base64 (salt 12 or 64 bytes, hash 64 bytes); the password is its UTF-8 bytes
 * up to the first NUL, as Mosquitto's C strings are. Verification runs on the password worker
 * threads (never on the broker's event loop), like bcrypt; an imported user's hash is replaced
 * by a bcrypt hash after its first successful login.
 */
import { createHash, pbkdf2Sync, timingSafeEqual } from 'node:crypto';

/** Iterations above this are refused at import: one login must not burn seconds of CPU. */
export const MAX_ITERATIONS = 1_000_000;

export type MosquittoScheme = 'mosquitto-sha512' | 'mosquitto-pbkdf2-sha512';

interface Parsed {
  scheme: MosquittoScheme;
  iterations: number;
  salt: Buffer;
  hash: Buffer;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

function b64(text: string, what: string): Buffer {
  if (!B64.test(text)) throw new Error(`${what} is not base64`);
  return Buffer.from(text, 'base64');
}

/** Parses an encoded Mosquitto hash; throws with the reason it is not one this package verifies. */
export function parseMosquittoHash(encoded: string): Parsed {
  const parts = encoded.split('$');
  if (parts[0] !== '' || parts.length < 4) throw new Error('not a Mosquitto password hash');
  let parsed: Parsed;
  if (parts[1] === '6' && parts.length === 4) {
    parsed = { scheme: 'mosquitto-sha512', iterations: 1, salt: b64(parts[2], 'salt'), hash: b64(parts[3], 'hash') };
  } else if (parts[1] === '7' && parts.length === 5) {
    if (!/^[1-9][0-9]{0,9}$/.test(parts[2])) throw new Error('iterations must be a positive integer');
    const iterations = Number(parts[2]);
    if (iterations > MAX_ITERATIONS) throw new Error(`${iterations} iterations is more than ${MAX_ITERATIONS}`);
    parsed = { scheme: 'mosquitto-pbkdf2-sha512', iterations, salt: b64(parts[3], 'salt'), hash: b64(parts[4], 'hash') };
  } else if (parts[1] === 'argon2id') {
    throw new Error('argon2id hashes (Mosquitto 2.1 built with argon2) are not supported; set a new password for this user');
  } else {
    throw new Error(`unknown hash type "$${parts[1]}$"`);
  }
  if (parsed.salt.length !== 12 && parsed.salt.length !== 64) throw new Error(`salt of ${parsed.salt.length} bytes (Mosquitto uses 12 or 64)`);
  if (parsed.hash.length !== 64) throw new Error(`hash of ${parsed.hash.length} bytes (must be 64)`);
  return parsed;
}

/** Whether an encoded string is a Mosquitto hash (of a scheme this package verifies). */
export function isMosquittoHash(encoded: string | null): boolean {
  return typeof encoded === 'string' && (encoded.startsWith('$6$') || encoded.startsWith('$7$'));
}

export function schemeOf(encoded: string): MosquittoScheme {
  return encoded.startsWith('$6$') ? 'mosquitto-sha512' : 'mosquitto-pbkdf2-sha512';
}

/** The password as Mosquitto sees it: its UTF-8 bytes up to the first NUL. */
function passwordBytes(password: string): Buffer {
  const bytes = Buffer.from(password, 'utf8');
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

/** Verifies a password against a Mosquitto hash (synchronous: call it on a worker thread). */
export function verifyMosquittoHash(password: string, encoded: string): boolean {
  let p: Parsed;
  try {
    p = parseMosquittoHash(encoded);
  } catch {
    return false;
  }
  const pw = passwordBytes(password);
  const computed = p.scheme === 'mosquitto-sha512' ? createHash('sha512').update(pw).update(p.salt).digest() : pbkdf2Sync(pw, p.salt, p.iterations, 64, 'sha512');
  return timingSafeEqual(computed, p.hash);
}

/** The encoded form of the dynsec 2.0 fields `password` (hash), `salt`, `iterations`. */
export function fromDynsecFields(hash: unknown, salt: unknown, iterations: unknown): string {
  if (typeof hash !== 'string' || typeof salt !== 'string' || !Number.isInteger(iterations)) throw new Error('password, salt and iterations must be given together');
  const encoded = `$7$${iterations as number}$${salt}$${hash}`;
  parseMosquittoHash(encoded);
  return encoded;
}

export interface PasswdEntry {
  username: string;
  hash: string;
  line: number;
}

export interface PasswdProblem {
  line: number;
  username?: string;
  message: string;
}

/**
 * A mosquitto_passwd file: `username:hash` lines; `#` comments and lines without ':' are skipped
 * (as Mosquitto does); blanks around fields trimmed. An empty or repeated username, or a hash
 * this package cannot verify, is a problem named by its line (the others are still read).
 */
export function parsePasswdFile(text: string): { entries: PasswdEntry[]; problems: PasswdProblem[] } {
  const entries: PasswdEntry[] = [];
  const problems: PasswdProblem[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const colon = t.indexOf(':');
    if (colon < 0) return;
    const username = t.slice(0, colon).trim();
    const hash = t.slice(colon + 1).trim();
    if (username === '') return void problems.push({ line, message: 'empty username' });
    if (seen.has(username)) return void problems.push({ line, username, message: `user "${username}" appears twice` });
    seen.add(username);
    try {
      parseMosquittoHash(hash);
    } catch (err) {
      return void problems.push({ line, username, message: (err as Error).message });
    }
    entries.push({ username, hash, line });
  });
  return { entries, problems };
}
