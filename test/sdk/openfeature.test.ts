import { ErrorCode, OpenFeature, StandardResolutionReasons } from '@openfeature/server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTessera } from '../../sdk/src/index.ts';
import { TesseraProvider } from '../../sdk/src/openfeature.ts';
import { createTestApp, serveOverHttp, services, type TestApp } from '../helpers/harness.ts';

/** The provider through the real OpenFeature client, against the real app over HTTP. */

let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;

beforeAll(async () => {
  app = await createTestApp({ redis: services.redis });
  await app.json('POST', '/v1/features', { key: 'reports', name: 'Reports', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'theme', name: 'Theme', type: 'config' });
  await app.json('POST', '/v1/features', { key: 'seats', name: 'Seats', type: 'config' });
  await app.json('POST', '/v1/features', { key: 'layout', name: 'Layout', type: 'config' });
  await app.json('POST', '/v1/features', { key: 'export_format', name: 'Export', type: 'config' });
  await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [
      { feature: 'reports' },
      { feature: 'theme', value: 'dark' },
      { feature: 'seats', value: 25 },
      { feature: 'layout', value: { columns: 3, dense: true } },
    ],
  });
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme' });
  await app.json('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' });
  http = await serveOverHttp(app.runtime);
  const tessera = createTessera({ baseUrl: http.base, apiKey: app.checkKey });
  await OpenFeature.setProviderAndWait(new TesseraProvider(tessera));
});
afterAll(async () => {
  await OpenFeature.close();
  await http?.close();
  await app?.close();
});

const acme = { targetingKey: 'acme' };

describe('TesseraProvider', () => {
  it('answers boolean flags from access', async () => {
    const client = OpenFeature.getClient();
    const on = await client.getBooleanDetails('reports', false, acme);
    expect(on).toMatchObject({
      value: true,
      variant: 'on',
      reason: StandardResolutionReasons.TARGETING_MATCH,
    });
    expect(on.errorCode).toBeUndefined();
    const off = await client.getBooleanDetails('sso', true, acme);
    expect(off).toMatchObject({
      value: false,
      variant: 'off',
      reason: StandardResolutionReasons.TARGETING_MATCH,
    });
    expect(off.flagMetadata).toMatchObject({ tessera_reason: 'not_in_plan' });
  });

  it('answers string, number and object flags from config values', async () => {
    const client = OpenFeature.getClient();
    expect(await client.getStringDetails('theme', 'light', acme)).toMatchObject({
      value: 'dark',
      variant: 'plan',
      reason: StandardResolutionReasons.TARGETING_MATCH,
    });
    expect(await client.getNumberDetails('seats', 1, acme)).toMatchObject({ value: 25, variant: 'plan' });
    expect(await client.getObjectDetails('layout', {}, acme)).toMatchObject({
      value: { columns: 3, dense: true },
      reason: StandardResolutionReasons.TARGETING_MATCH,
    });
  });

  it('gives the default with reason DEFAULT for a config value the customer does not hold', async () => {
    const details = await OpenFeature.getClient().getStringDetails('export_format', 'csv', acme);
    expect(details).toMatchObject({ value: 'csv', reason: StandardResolutionReasons.DEFAULT });
    expect(details.errorCode).toBeUndefined();
  });

  it('gives the default with TYPE_MISMATCH for a value of another type', async () => {
    const details = await OpenFeature.getClient().getNumberDetails('theme', 7, acme);
    expect(details).toMatchObject({ value: 7, reason: 'ERROR', errorCode: ErrorCode.TYPE_MISMATCH });
  });

  it('gives the default with FLAG_NOT_FOUND for an unknown feature', async () => {
    const details = await OpenFeature.getClient().getBooleanDetails('no_such_feature', true, acme);
    expect(details).toMatchObject({ value: true, reason: 'ERROR', errorCode: ErrorCode.FLAG_NOT_FOUND });
  });

  it('gives the default with INVALID_CONTEXT for an unknown customer', async () => {
    const details = await OpenFeature.getClient().getBooleanDetails('reports', true, {
      targetingKey: 'ghost',
    });
    expect(details).toMatchObject({ value: true, reason: 'ERROR', errorCode: ErrorCode.INVALID_CONTEXT });
    const text = await OpenFeature.getClient().getStringDetails('theme', 'light', { targetingKey: 'ghost' });
    expect(text).toMatchObject({ value: 'light', reason: 'ERROR', errorCode: ErrorCode.INVALID_CONTEXT });
  });

  it('gives the default with TARGETING_KEY_MISSING without a targetingKey', async () => {
    const details = await OpenFeature.getClient().getBooleanDetails('reports', true, {});
    expect(details).toMatchObject({
      value: true,
      reason: 'ERROR',
      errorCode: ErrorCode.TARGETING_KEY_MISSING,
    });
  });
});
