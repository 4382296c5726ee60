#!/usr/bin/env node
'use strict';
// client-registry migrate --from <folder|redis://…> --to <folder|redis://…> [--prefix p] [--replace]
// (the command lives in nodes/lib/cli.ts)
require('../nodes/lib/cli.js')
  .main(process.argv.slice(2))
  .then((code) => process.exit(code));
