/**
 * Process tests run the built JavaScript in dist/. After an edit without a build they would silently test the old
 * code; this makes them fail at once instead, naming the first source file that is newer than its build.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SOURCES = ['gateway', 'device-sim', 'bench', 'chaos', 'launch'];

function* tsFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* tsFiles(path);
    else if (entry.name.endsWith('.ts')) yield path;
  }
}

let checked = false;

function checkBuild(): void {
  if (checked) return;
  for (const dir of SOURCES) {
    for (const source of tsFiles(dir)) {
      const built = join('dist', source.replace(/\.ts$/, '.js'));
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs) {
        throw new Error(`${built} is missing or older than ${source}: run \`npm run build\` (npm test builds first)`);
      }
    }
  }
  checked = true;
}

/** The path of a built script, once dist/ is known to be as new as every source file. */
export function builtScript(path: string): string {
  checkBuild();
  return path;
}
