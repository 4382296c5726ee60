/** Worker thread: runs bcrypt off the broker's event loop. Messages: {id, op, ...} -> {id, result|error}. */
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

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
      job.op === 'hash' ? bcrypt.hashSync(job.password, job.cost ?? 10) : bcrypt.compareSync(job.password, job.hash ?? '');
    parentPort?.postMessage({ id: job.id, result });
  } catch (err) {
    parentPort?.postMessage({ id: job.id, error: (err as Error).message });
  }
});
