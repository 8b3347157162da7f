// Builds dist/weft-fdc3.js (or the file named as the first argument) from src/:
// `npm run build`. scripts/test builds to a scratch file and checks that the committed
// bundle is byte for byte what this source and package-lock.json give.
import { build } from "esbuild";

await build({
  entryPoints: ["src/weft-fdc3.js"],
  bundle: true,
  format: "iife",
  globalName: "weftFdc3",
  target: "es2020",
  minify: true,
  legalComments: "eof",
  outfile: process.argv[2] ?? "dist/weft-fdc3.js",
  absWorkingDir: new URL(".", import.meta.url).pathname,
  logLevel: "warning",
});
