/* global console, URL */
// Writes sql/schema.sql, the DDL shipped for users' own migrations, from its one source: schemaSql()
// of the default names in src/schema.ts (run from the build: `npm run schema:sql` builds first).
// test/options.test.ts fails while the file differs from it.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { schemaSql } from '../dist/schema.js';

const target = fileURLToPath(new URL('../sql/schema.sql', import.meta.url));
writeFileSync(target, schemaSql());
console.log(`wrote ${target}`);
