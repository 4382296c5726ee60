/**
 * Worker thread: runs bcrypt off the broker's event loop, and the verification of hashes
 * imported from Mosquitto (SHA-512, PBKDF2-SHA512). Messages: {id, op, ...} -> {id, result|error}.
 */
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import { isMosquittoHash, verifyMosquittoHash } from './mosquitto/passwd';

interface Job {
  id: number;
  op: 'hash' | 'verify';
  password: string;
  hash?: string;
  cost?: number;
}

parentPort?.on('message', (job: Job) => {
  try {
    const result =
      job.op === 'hash'
        ? bcrypt.hashSync(job.password, job.cost ?? 10)
        : isMosquittoHash(job.hash ?? null)
          ? verifyMosquittoHash(job.password, job.hash as string)
          : bcrypt.compareSync(job.password, job.hash ?? '');
    parentPort?.postMessage({ id: job.id, result });
  } catch (err) {
    parentPort?.postMessage({ id: job.id, error: (err as Error).message });
  }
});
