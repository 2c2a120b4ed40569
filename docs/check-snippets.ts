/**
 * Type-checks every ```ts / ```typescript block of the repository's Markdown (every
 * README.md, ARCHITECTURE.md, docs/*.md: what git tracks or would track) under the
 * workspace's strict settings, and reports each error at its Markdown file:line.
 *
 * Each block is one ES module, written to a git-ignored directory inside this package
 * (docs/.snippets) so `@eventual/*`, kafkajs, knex, vitest, express and NestJS imports
 * resolve from docs/node_modules. A comment right before a block changes how it is
 * checked (invisible on GitHub; keep them rare, prefer complete snippets):
 *
 *   <!-- snippet: skip (why) -->          not checked: pseudo-code, a shape
 *   <!-- snippet: fragment
 *   declare const db: Knex;                checked with these lines put before it:
 *   -->                                    what the surrounding prose provides
 *
 * Run: `pnpm --filter @eventual/docs run typecheck` (part of `pnpm build`);
 * `--keep` leaves the generated files in docs/.snippets for a look.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const outDir = join(here, '.snippets');

/** A code block to check, where it sits in its Markdown file, and the lines put before it. */
export interface Snippet {
  file: string;
  /** 1-based line of the block's first code line. */
  line: number;
  code: string;
  prelude: string;
  skip: string | undefined;
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/;
const DIRECTIVE = /^<!--\s*snippet:\s*(skip|fragment)\b([\s\S]*?)-->\s*$/;

/** The TypeScript blocks of one Markdown text, with the directive that precedes each. */
export function extractSnippets(file: string, markdown: string): Snippet[] {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  let directive: { kind: string; body: string } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trimStart().startsWith('<!-- snippet:')) {
      let text = line.trim();
      while (!text.includes('-->') && i + 1 < lines.length) text += `\n${lines[++i]}`;
      const match = DIRECTIVE.exec(text);
      if (!match) throw new Error(`${file}:${i + 1}: unreadable snippet directive; use 'skip (why)' or 'fragment'`);
      directive = { kind: match[1]!, body: match[2]!.trim() };
      continue;
    }
    const fence = FENCE.exec(line);
    if (!fence) {
      if (line.trim() !== '') directive = undefined; // a directive applies to the very next block
      continue;
    }
    const [, , marker, lang] = fence;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end]!.trimStart().startsWith(marker!)) end++;
    if (lang === 'ts' || lang === 'typescript') {
      snippets.push({
        file,
        line: start + 1,
        code: lines.slice(start, end).join('\n'),
        prelude: directive?.kind === 'fragment' ? directive.body : '',
        skip: directive?.kind === 'skip' ? directive.body || 'marked skip' : undefined,
      });
    }
    directive = undefined;
    i = end;
  }
  return snippets;
}

function markdownFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', '*.md'], {
    cwd: root,
    encoding: 'utf8',
  });
  return [...new Set(out.split('\n').filter(Boolean))].sort();
}

function compilerOptions(): ts.CompilerOptions {
  const base = ts.readConfigFile(join(root, 'tsconfig.base.json'), ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(base.config, ts.sys, root);
  // NestJS recipes use its (legacy) decorators with metadata; nothing else changes.
  return { ...parsed.options, noEmit: true, experimentalDecorators: true, emitDecoratorMetadata: true };
}

interface Generated {
  snippet: Snippet;
  path: string;
  preludeLines: number;
}

function main(): number {
  const keep = process.argv.includes('--keep');
  const files = markdownFiles();
  const snippets = files.flatMap((file) => extractSnippets(file, readFileSync(join(root, file), 'utf8')));
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const generated: Generated[] = [];
  for (const snippet of snippets) {
    if (snippet.skip !== undefined) {
      console.log(`snippets: skipped ${snippet.file}:${snippet.line} (${snippet.skip})`);
      continue;
    }
    const name = `${snippet.file.replace(/[^\w.-]+/g, '__')}.L${snippet.line}.ts`;
    const path = join(outDir, name);
    const prelude = snippet.prelude ? `${snippet.prelude}\n` : '';
    // `export {}` makes every block a module: top-level await works, names never clash.
    writeFileSync(path, `${prelude}${snippet.code}\nexport {};\n`);
    generated.push({ snippet, path, preludeLines: prelude ? prelude.split('\n').length - 1 : 0 });
  }
  const program = ts.createProgram(
    generated.map((g) => g.path),
    compilerOptions(),
  );
  const byPath = new Map(generated.map((g) => [resolve(g.path), g]));
  let errors = 0;
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n    ');
    const g = d.file ? byPath.get(resolve(d.file.fileName)) : undefined;
    errors++;
    if (!d.file || d.start === undefined) {
      console.error(`error TS${d.code}: ${message}`);
      continue;
    }
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    if (!g) {
      console.error(`${relative(root, d.file.fileName)}:${line + 1}:${character + 1} error TS${d.code}: ${message}`);
      continue;
    }
    const where =
      line < g.preludeLines
        ? `${g.snippet.file}:${g.snippet.line} (its fragment directive, line ${line + 1})`
        : `${g.snippet.file}:${g.snippet.line + line - g.preludeLines}:${character + 1}`;
    console.error(`${where} error TS${d.code}: ${message}`);
  }
  if (!keep) rmSync(outDir, { recursive: true, force: true });
  const skipped = snippets.length - generated.length;
  const summary = `${generated.length} TypeScript snippet(s) from ${files.length} Markdown file(s) checked, ${skipped} skipped`;
  if (errors > 0) {
    console.error(`snippets: ${errors} error(s); ${summary}${keep ? ` (generated files in ${outDir})` : ''}`);
    return 1;
  }
  console.log(`snippets: ${summary}, no errors`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
