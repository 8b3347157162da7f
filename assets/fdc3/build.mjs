// Builds dist/weft-fdc3.js from src/, and the end-to-end tests' use of the standard's
// getAgent() into tests/fixtures/fdc3/get-agent.js: `npm run build`. Given a folder,
// writes both there instead: scripts/test builds to a scratch folder and checks that
// the committed files are byte for byte what this source and package-lock.json give.
import { build } from "esbuild";

const here = new URL(".", import.meta.url).pathname;
const into = process.argv[2];
const common = {
  bundle: true,
  format: "iife",
  target: "es2020",
  minify: true,
  legalComments: "eof",
  absWorkingDir: here,
  logLevel: "warning",
};

await build({
  ...common,
  entryPoints: ["src/weft-fdc3.js"],
  globalName: "weftFdc3",
  outfile: into ? `${into}/weft-fdc3.js` : "dist/weft-fdc3.js",
});
await build({
  ...common,
  entryPoints: ["test/get-agent.js"],
  outfile: into ? `${into}/get-agent.js` : "../../tests/fixtures/fdc3/get-agent.js",
});
