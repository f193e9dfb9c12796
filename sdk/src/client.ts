import { decideFromSnapshot, decideFromToken, type VerifiedToken, verifyEntitlementsToken } from './local.ts';
import type {
  CheckRequest,
  CheckResult,
  CustomerEntitlements,
  Decision,
  Problem,
  Reservation,
  ReservationRequest,
  TokenResult,
  UsageEvent,
  UsageResult,
} from './types.ts';

export interface TesseraOptions {
  baseUrl: string;
  apiKey: string;
  /** Attempts after the first on 429, 5xx or a network error (default 3). */
  retries?: number;
  /** First backoff in ms, doubled each attempt with jitter (default 100). */
  backoffMs?: number;
  /** Per-request timeout in ms (default 5000). */
  timeoutMs?: number;
  /** The answer when Tessera cannot be reached and no snapshot is held (default `closed`). */
  failMode?: 'open' | 'closed';
  /**
   * `local`: answer checks from a per-customer entitlements snapshot, fetched once and
   * refreshed in the background once older than `snapshotTtlMs`. Default `remote`.
   */
  mode?: 'remote' | 'local';
  /** How long a snapshot is fresh (default 30000 ms). */
  snapshotTtlMs?: number;
  /** The time source in ms (tests). */
  now?: () => number;
  fetch?: typeof fetch;
}

/** An error answer from Tessera (problem+json), or Tessera unreachable (`status` 0). */
export class TesseraError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  readonly problem: Problem | undefined;
  constructor(message: string, status: number, problem?: Problem) {
    super(message);
    this.name = 'TesseraError';
    this.status = status;
    this.code = problem?.code;
    this.problem = problem;
  }
}

interface Snapshot {
  data: CustomerEntitlements;
  fetchedAt: number;
  refreshing: Promise<void> | null;
}

export interface Tessera {
  check(input: CheckRequest): Promise<Decision>;
  entitlements(customerId: string): Promise<CustomerEntitlements>;
  track(event: Omit<UsageEvent, 'idempotency_key'> & { idempotency_key?: string }): Promise<UsageResult>;
  reserve(input: ReservationRequest): Promise<Reservation>;
  commit(reservationId: string, amount?: number): Promise<Reservation>;
  release(reservationId: string): Promise<Reservation>;
  token(customerId: string, options?: { ttlSeconds?: number }): Promise<TokenResult>;
  /** Verifies a token against this Tessera's JWKS and returns a local evaluator. */
  fromToken(token: string, options?: { audience?: string }): Promise<TokenEvaluator>;
  /** Drops cached snapshots (all, or one customer's). */
  invalidate(customerId?: string): void;
}

export interface TokenEvaluator {
  token: VerifiedToken;
  check(feature: string, quantity?: number): Decision;
}

const RETRYABLE = (status: number) => status === 429 || status >= 500;

export function createTessera(options: TesseraOptions): Tessera {
  const base = options.baseUrl.replace(/\/+$/, '');
  const retries = options.retries ?? 3;
  const backoffMs = options.backoffMs ?? 100;
  const timeoutMs = options.timeoutMs ?? 5000;
  const now = options.now ?? Date.now;
  const doFetch = options.fetch ?? fetch;
  const ttl = options.snapshotTtlMs ?? 30_000;
  const snapshots = new Map<string, Snapshot>();

  async function request<T>(
    method: string,
    path: string,
    body?: unknown,
    idempotencyKey?: string,
  ): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${options.apiKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
    let lastError: TesseraError | undefined;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        const delay = backoffMs * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, delay / 2 + Math.random() * (delay / 2)));
      }
      let res: Response;
      try {
        res = await doFetch(`${base}${path}`, {
          method,
          headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        lastError = new TesseraError(`Tessera unreachable: ${(err as Error).message}`, 0);
        continue;
      }
      const text = await res.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // A proxy's HTML error page: keep the status, drop the body.
        if (res.ok)
          throw new TesseraError(`Tessera answered ${res.status} with a body that is not JSON`, res.status);
      }
      if (res.ok) return parsed as T;
      const problem = (parsed ?? { status: res.status }) as Problem;
      lastError = new TesseraError(
        problem.detail ?? problem.title ?? `HTTP ${res.status}`,
        res.status,
        problem,
      );
      if (!RETRYABLE(res.status)) throw lastError;
    }
    throw lastError!;
  }

  const enc = encodeURIComponent;

  async function fetchSnapshot(customerId: string): Promise<Snapshot> {
    const data = await request<CustomerEntitlements>('GET', `/v1/customers/${enc(customerId)}/entitlements`);
    const snap: Snapshot = { data, fetchedAt: now(), refreshing: null };
    snapshots.set(customerId, snap);
    return snap;
  }

  function fallback(input: CheckRequest): Decision {
    const open = options.failMode === 'open';
    return {
      allowed: open,
      reason: 'unreachable',
      customer_id: input.customer_id,
      feature: input.feature,
      version: null,
      sources: [],
      source: 'fallback',
      stale: true,
    };
  }

  const unreachable = (err: unknown) =>
    err instanceof TesseraError && (err.status === 0 || RETRYABLE(err.status));

  async function checkLocal(input: CheckRequest): Promise<Decision> {
    const held = snapshots.get(input.customer_id);
    if (held) {
      if (now() - held.fetchedAt >= ttl && !held.refreshing) {
        held.refreshing = fetchSnapshot(input.customer_id).then(
          () => undefined,
          () => {
            held.refreshing = null;
          },
        );
      }
      const stale = now() - held.fetchedAt >= ttl;
      return decideFromSnapshot(held.data, input.feature, input.quantity ?? 1, stale);
    }
    try {
      const snap = await fetchSnapshot(input.customer_id);
      return decideFromSnapshot(snap.data, input.feature, input.quantity ?? 1);
    } catch (err) {
      if (err instanceof TesseraError && err.status === 404) {
        return {
          ...fallback(input),
          allowed: false,
          reason: 'unknown_customer',
          source: 'server',
          stale: false,
        };
      }
      if (unreachable(err)) return fallback(input);
      throw err;
    }
  }

  return {
    async check(input) {
      if (options.mode === 'local' && !input.context) return checkLocal(input);
      try {
        const result = await request<CheckResult>('POST', '/v1/check', input);
        return { ...result, source: 'server', stale: false };
      } catch (err) {
        if (!unreachable(err)) throw err;
        const held = snapshots.get(input.customer_id);
        if (held) return decideFromSnapshot(held.data, input.feature, input.quantity ?? 1, true);
        return fallback(input);
      }
    },
    async entitlements(customerId) {
      return (await fetchSnapshot(customerId)).data;
    },
    track(event) {
      const body: UsageEvent = { ...event, idempotency_key: event.idempotency_key ?? crypto.randomUUID() };
      return request<UsageResult>('POST', '/v1/usage', body);
    },
    reserve(input) {
      return request<Reservation>('POST', '/v1/reservations', input, crypto.randomUUID());
    },
    commit(id, amount) {
      const body = amount === undefined ? {} : { amount };
      return request<Reservation>('POST', `/v1/reservations/${enc(id)}/commit`, body, crypto.randomUUID());
    },
    release(id) {
      return request<Reservation>('POST', `/v1/reservations/${enc(id)}/release`, {}, crypto.randomUUID());
    },
    token(customerId, opts = {}) {
      const body = opts.ttlSeconds === undefined ? {} : { ttl_seconds: opts.ttlSeconds };
      return request<TokenResult>(
        'POST',
        `/v1/customers/${enc(customerId)}/token`,
        body,
        crypto.randomUUID(),
      );
    },
    async fromToken(token, opts = {}) {
      const verified = await verifyEntitlementsToken(token, {
        jwks: new URL(`${base}/.well-known/jwks.json`),
        ...(opts.audience ? { audience: opts.audience } : {}),
      });
      return { token: verified, check: (feature, quantity) => decideFromToken(verified, feature, quantity) };
    },
    invalidate(customerId) {
      if (customerId === undefined) snapshots.clear();
      else snapshots.delete(customerId);
    },
  };
}
