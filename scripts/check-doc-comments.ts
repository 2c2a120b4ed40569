/**
 * Every symbol a package exports has a doc comment, and so does every member of an
 * exported interface, type literal or class that a user can call or set: the API is
 * read in editors, through these comments, before it is read anywhere else.
 *
 * Reads each workspace package's `exports` entry points with the TypeScript compiler
 * and prints `file:line symbol` for each undocumented declaration; exits 1 if any.
 * Run: `npx tsx scripts/check-doc-comments.ts` (part of `pnpm build`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function entryPoints(): string[] {
  const entries: string[] = [];
  for (const dir of readdirSync(join(root, 'packages'))) {
    const manifest = JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')) as {
      exports?: Record<string, string | Record<string, string>>;
    };
    for (const target of Object.values(manifest.exports ?? {})) {
      const file = typeof target === 'string' ? target : (target.types ?? target.import ?? target.default);
      if (file?.endsWith('.ts')) entries.push(join(root, 'packages', dir, file));
    }
  }
  return entries;
}

function hasDoc(node: ts.Node): boolean {
  // A JSDoc block directly above the declaration (or above its variable statement).
  const holder = ts.isVariableDeclaration(node) ? node.parent.parent : node;
  return ts.getJSDocCommentsAndTags(holder).length > 0 || ts.getJSDocCommentsAndTags(node).length > 0;
}

function isOwn(file: ts.SourceFile): boolean {
  return !file.fileName.includes('/node_modules/') && file.fileName.startsWith(join(root, 'packages'));
}

/**
 * A declaration inside `declare module '...' { ... }` augments another package's
 * interface (each package adds its codes to core's `EventualErrorCodes` this way);
 * the interface is documented where it is declared, so the augmenting block is not
 * reported. Only string-named modules count: a `namespace` is no augmentation.
 */
function isInAugmentation(node: ts.Node): boolean {
  for (let at = node.parent; at; at = at.parent) {
    if (ts.isModuleDeclaration(at) && ts.isStringLiteral(at.name)) return true;
  }
  return false;
}

/**
 * The members of core's `EventualErrorCodes` map a code to the error class that
 * carries it (`topic_not_found: TopicNotFoundError`): the class's doc is the code's
 * doc, and a comment per member would repeat it. The interface itself still needs one.
 */
function isErrorCodeRegistry(node: ts.Node): boolean {
  return (
    ts.isInterfaceDeclaration(node) &&
    node.name.text === 'EventualErrorCodes' &&
    node.getSourceFile().fileName === join(root, 'packages', 'core', 'src', 'errors.ts')
  );
}

type Member = ts.TypeElement | ts.ClassElement;

function documentedMembers(node: ts.Node): readonly Member[] {
  if (isErrorCodeRegistry(node)) return [];
  if (ts.isInterfaceDeclaration(node)) return node.members;
  if (ts.isClassDeclaration(node)) return node.members;
  if (ts.isTypeAliasDeclaration(node) && ts.isTypeLiteralNode(node.type)) return node.type.members;
  return [];
}

function memberNeedsDoc(member: Member): boolean {
  if (ts.isConstructorDeclaration(member) || ts.isIndexSignatureDeclaration(member)) return false;
  if (ts.isClassElement(member)) {
    // `override` covers an Error subclass's `name`, the class's own name: self-explanatory.
    const flags = ts.getCombinedModifierFlags(member as ts.Declaration);
    if (flags & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected | ts.ModifierFlags.Override)) return false;
    if (member.name && ts.isPrivateIdentifier(member.name)) return false;
  }
  return true;
}

const entries = entryPoints();
const program = ts.createProgram(entries, {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  allowImportingTsExtensions: true,
});
const checker = program.getTypeChecker();
const missing = new Set<string>();

function report(node: ts.Node, what: string): void {
  const file = node.getSourceFile();
  const { line } = file.getLineAndCharacterOfPosition(node.getStart());
  missing.add(`${relative(root, file.fileName)}:${line + 1} ${what}`);
}

for (const entry of entries) {
  const source = program.getSourceFile(entry);
  const moduleSymbol = source && checker.getSymbolAtLocation(source);
  if (!moduleSymbol) {
    missing.add(`${relative(root, entry)}: an entry point in package.json exports that cannot be read`);
    continue;
  }
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    for (const declaration of symbol.declarations ?? []) {
      if (!isOwn(declaration.getSourceFile()) || isInAugmentation(declaration)) continue;
      if (!hasDoc(declaration)) report(declaration, exported.name);
      for (const member of documentedMembers(declaration)) {
        if (memberNeedsDoc(member) && !hasDoc(member))
          report(member, `${exported.name}.${member.name?.getText() ?? '(member)'}`);
      }
    }
  }
}

if (missing.size > 0) {
  for (const line of [...missing].sort()) console.error(line);
  console.error(`check-doc-comments: ${missing.size} exported declarations have no doc comment`);
  process.exit(1);
}
console.log(`check-doc-comments: every export of ${entries.length} entry points is documented`);
