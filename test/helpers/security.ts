import { expect } from 'vitest';
import type { TestApp } from './harness.ts';

/**
 * The shared security path for any route: no key answers 401, a revoked-looking key answers 401,
 * and (for admin routes) a `check`-scoped key answers 403. Nothing is written by any of them.
 */
export async function expectAdminOnly(
  app: TestApp,
  method: string,
  path: string,
  body?: unknown,
): Promise<void> {
  const none = await app.json(method, path, body, { key: null });
  expect(none.status, `${method} ${path} without a key`).toBe(401);
  expect(none.headers.get('content-type')).toContain('application/problem+json');
  expect(none.body).toMatchObject({ status: 401, code: 'unauthorized' });

  const bogus = await app.json(method, path, body, { key: 'sk_test_thisKeyDoesNotExist000' });
  expect(bogus.status, `${method} ${path} with an unknown key`).toBe(401);

  const check = await app.json(method, path, body, { key: app.checkKey });
  expect(check.status, `${method} ${path} with a check-scoped key`).toBe(403);
  expect(check.body).toMatchObject({ code: 'insufficient_scope' });
}

/** An object made in the test environment is invisible from the live environment: 404. */
export async function expectHiddenFromOtherEnvironment(
  app: TestApp,
  method: string,
  path: string,
  body?: unknown,
): Promise<void> {
  const res = await app.json(method, path, body, { key: app.liveAdminKey });
  expect(res.status, `${method} ${path} from the live environment`).toBe(404);
  expect(res.body).toMatchObject({ code: 'not_found' });
}
