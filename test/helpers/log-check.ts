import { mkdirSync } from 'node:fs';
import { secretsInLogDir } from './log-scan.ts';

/**
 * With TESSERA_TEST_LOG_DIR set, every test app the harness builds logs at debug level to a file
 * there (harness.ts); when the run ends this reads them all and fails the run if any line holds
 * something that looks like a credential.
 */
export default function setup() {
  const dir = process.env.TESSERA_TEST_LOG_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  return () => {
    const { files, bytes, found } = secretsInLogDir(dir);
    console.warn(`\n[tessera tests] scanned ${files} log files (${bytes} bytes) in ${dir} for secrets`);
    if (found.length === 0) return;
    console.error(
      `[tessera tests] secrets found in test logs (${found.length}):\n${found.slice(0, 20).join('\n')}`,
    );
    // An error thrown here is only printed: the exit code is what fails the run.
    process.exitCode = 1;
  };
}
