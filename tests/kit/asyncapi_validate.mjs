// Validates an AsyncAPI document with the AsyncAPI Initiative's own parser
// (@asyncapi/parser, installed under the directory given first by tests/kit/test_asyncapi.py).
// Prints each diagnostic and a summary as JSON lines; exits 1 when the document has errors.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const [prefix, documentPath] = process.argv.slice(2);
const require = createRequire(`${prefix}/`);
const { Parser } = require('@asyncapi/parser');

const { document, diagnostics } = await new Parser().parse(readFileSync(documentPath, 'utf8'));
const errors = diagnostics.filter((diagnostic) => diagnostic.severity === 0);
for (const diagnostic of diagnostics) {
  const { severity, code, message } = diagnostic;
  console.log(JSON.stringify({ severity, code, message, path: diagnostic.path.join('.') }));
}
const valid = document !== undefined && errors.length === 0;
console.log(JSON.stringify({
  valid,
  version: document ? document.version() : null,
  channels: document ? document.channels().length : 0,
  messages: document ? document.allMessages().length : 0,
}));
process.exit(valid ? 0 : 1);
