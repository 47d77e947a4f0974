/**
 * Root-only tests: skip with a printed reason outside root, but never under CI=true, where root is
 * available and a skip would hide a broken test.
 */
export function rootOnly(): { skip: string | false } {
  if (process.getuid?.() === 0) return { skip: false };
  if (process.env.CI === 'true') {
    throw new Error('root-only test: CI=true but not running as root (a skip here would hide a failure)');
  }
  const reason = 'needs root (network namespaces): run the suite as root';
  process.stdout.write(`# skip: ${reason}\n`);
  return { skip: reason };
}
