// Bundles the web front end with esbuild (run by tools/build_web.py, which installs the locked
// packages first): node build.mjs --out DIR
//
// DIR/index.html + DIR/assets/app.{js,css}  the page of `gcdance serve`
// DIR/standalone.html                        the template of the offline .html dance files: the
//                                            player's script and style inlined; gcdance.io.html
//                                            fills in the remaining <!--GCDANCE:...--> blocks
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
if (outIndex < 0 || !args[outIndex + 1]) {
  console.error('usage: node build.mjs --out DIR');
  process.exit(2);
}
const out = path.resolve(args[outIndex + 1]);

const common = {
  bundle: true,
  minify: true,
  target: ['es2020', 'chrome90', 'firefox90', 'safari15'],
  legalComments: 'eof', // three.js's MIT licence notice stays in the bundle
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
};

// The page: a script and a stylesheet next to index.html.
await mkdir(path.join(out, 'assets'), { recursive: true });
await esbuild.build({
  ...common,
  entryPoints: { app: path.join(here, 'src/app.js') },
  outdir: path.join(out, 'assets'),
  format: 'iife',
});
await writeFile(path.join(out, 'index.html'), await readFile(path.join(here, 'index.html')));

// The offline file's template: everything inlined.
const standalone = await esbuild.build({
  ...common,
  entryPoints: { standalone: path.join(here, 'src/standalone.js') },
  outdir: path.join(out, 'standalone'), // nothing is written there (write: false)
  format: 'iife',
  write: false,
});
const pick = (ext) => {
  const files = standalone.outputFiles.filter((f) => f.path.endsWith(ext));
  if (files.length !== 1) throw new Error(`expected one ${ext} output, got ${files.length}`);
  return files[0].text;
};
const script = pick('.js');
const style = pick('.css');
// Inlined code must not close its own element early.
if (/<\/script/i.test(script)) throw new Error('the standalone script contains "</script"');
if (/<\/style/i.test(style)) throw new Error('the standalone style contains "</style"');
let html = await readFile(path.join(here, 'standalone.html'), 'utf8');
for (const [key, value] of [['SCRIPT', script], ['STYLE', style]]) {
  const marker = `<!--GCDANCE:${key}-->`;
  if (html.split(marker).length !== 2) throw new Error(`standalone.html needs one ${marker}`);
  html = html.replace(marker, () => value);
}
await writeFile(path.join(out, 'standalone.html'), html);
console.log(`web assets written to ${out}`);
