import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/** Addresses a webhook never goes to: private, link-local, unspecified, carrier NAT, unique-local. */
const refused = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const)
  refused.addSubnet(net, bits, 'ipv4');
refused.addSubnet('::', 128, 'ipv6');
refused.addSubnet('fc00::', 7, 'ipv6');
refused.addSubnet('fe80::', 10, 'ipv6');

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addSubnet('::1', 128, 'ipv6');

function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m?.[1] ?? address;
}

function isLoopbackAddress(raw: string): boolean {
  const address = unmapped(raw);
  return loopback.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** Why an address may not receive webhooks, or null when it may. */
export function addressProblem(raw: string, allowLoopback: boolean): string | null {
  const address = unmapped(raw);
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  if (isLoopbackAddress(address))
    return allowLoopback ? null : 'loopback addresses are refused (TESSERA_WEBHOOKS_ALLOW_LOOPBACK is off)';
  if (refused.check(address, family)) return 'private and link-local addresses are refused';
  return null;
}

function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/**
 * Why a URL may not be registered, or null. `https` only; plain `http` to a loopback address
 * only with `allowLoopback`. Literal addresses are checked here; names are resolved at delivery.
 */
export function urlProblem(text: string, allowLoopback: boolean): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a URL';
  }
  if (url.username || url.password) return 'credentials in the URL are refused';
  const host = hostOf(url);
  const isLoopbackName = host === 'localhost' || host.endsWith('.localhost');
  const literal = isIP(host) !== 0;
  const isLoopback =
    isLoopbackName ||
    (literal && addressProblem(host, true) === null && addressProblem(host, false) !== null);
  if (url.protocol === 'http:') {
    if (!isLoopback) return 'must be https (plain http only to a loopback address, for local development)';
    if (!allowLoopback) return 'plain http to loopback needs TESSERA_WEBHOOKS_ALLOW_LOOPBACK=true';
    return null;
  }
  if (url.protocol !== 'https:') return 'must be https';
  if (isLoopbackName) return allowLoopback ? null : 'loopback addresses are refused';
  if (literal) return addressProblem(host, allowLoopback);
  return null;
}

/** Resolves the URL's host and refuses it if any address is private, link-local or (without the flag) loopback. */
export async function checkDeliveryTarget(text: string, allowLoopback: boolean): Promise<string | null> {
  const registered = urlProblem(text, allowLoopback);
  if (registered) return registered;
  const host = hostOf(new URL(text));
  const addresses = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  for (const address of addresses) {
    const problem = addressProblem(address, allowLoopback);
    if (problem) return `${host} resolves to ${address}: ${problem}`;
  }
  return null;
}
