// Validates a .glb/.gltf with the Khronos glTF validator; prints its JSON report's issues.
// Usage: node tools/web/validate_gltf.js FILE   (exit 0; the caller reads numErrors/numWarnings)
const fs = require("fs");
const validator = require("gltf-validator");
const file = process.argv[2];
const data = new Uint8Array(fs.readFileSync(file));
validator.validateBytes(data, {maxIssues: 200}).then((report) => {
  process.stdout.write(JSON.stringify({issues: report.issues, info: report.info}));
}).catch((err) => { console.error(String(err)); process.exit(2); });
