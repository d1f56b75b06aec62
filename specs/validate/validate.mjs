// Validates an AsyncAPI document with the official parser (@asyncapi/parser):
// prints every diagnostic and exits 1 if any has error severity.
// Usage: node validate.mjs ../asyncapi.yaml
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';

const file = process.argv[2] ?? '../asyncapi.yaml';
const names = { 0: 'error', 1: 'warning', 2: 'info', 3: 'hint' };

const { document, diagnostics } = await fromFile(new Parser(), file).parse();
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === DiagnosticSeverity.Error) errors++;
  const at = d.path && d.path.length ? d.path.join('.') : '(root)';
  console.log(`${names[d.severity] ?? d.severity} ${d.code} ${at}: ${d.message}`);
}
if (errors > 0 || !document) {
  console.error(`${file}: ${errors} error(s)`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()} (${document.channels().length} channels, ` +
  `${document.operations().length} operations, ${document.allMessages().length} messages; ${diagnostics.length} diagnostics)`);
