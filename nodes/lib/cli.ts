/**
 * The package's command (bin/client-registry.js):
 *
 *   client-registry migrate --from <folder | redis URL> --to <folder | redis URL> [--prefix p] [--replace]
 *
 * moves a client registry between stores (a file store folder such as ~/.node-red/client-registry,
 * and Redis), losing nothing (see migrate.ts). Stop the Node-RED instances using the source first.
 */
import { migrate, type MigrateOptions } from './migrate';

export const USAGE = 'usage: client-registry migrate --from <folder|redis://…> --to <folder|redis://…> [--prefix client-registry:] [--replace]';

type Parsed = { help: true } | { help: false; command: string | undefined; opts: Partial<MigrateOptions> };

export function parseArgs(argv: string[]): Parsed {
  const [command, ...rest] = argv;
  const opts: Partial<MigrateOptions> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === '--replace') opts.replace = true;
    else if (a === '--from' || a === '--to' || a === '--prefix') {
      const v = rest[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
      opts[a.slice(2) as 'from' | 'to' | 'prefix'] = v;
    } else if (a === '--help' || a === '-h') return { help: true };
    else throw new Error(`unknown argument ${JSON.stringify(a)}`);
  }
  if (command === '--help' || command === '-h') return { help: true };
  return { help: false, command, opts };
}

/** Runs the command; resolves with the exit code. */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let args: Parsed;
  try {
    args = parseArgs(argv);
  } catch (e) {
    err.write(`${(e as Error).message}\n${USAGE}\n`);
    return 1;
  }
  if (args.help) {
    out.write(USAGE + '\n');
    return 0;
  }
  if (args.command !== 'migrate' || !args.opts.from || !args.opts.to) {
    err.write(USAGE + '\n');
    return 1;
  }
  try {
    const r = await migrate(args.opts as MigrateOptions);
    out.write(`copied ${r.users} users, ${r.roles} roles, ${r.requests} requests, ${r.audit} audit entries, ${r.revoked} revoked certificates, ${r.clientIds} client-id bindings; CA: ${r.ca}\n`);
    return 0;
  } catch (e) {
    err.write(`client-registry migrate: ${(e as Error).message}\n`);
    return 1;
  }
}
