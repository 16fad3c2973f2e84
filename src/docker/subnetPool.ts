/**
 * IPv4 subnets for runtime networks. Docker's default address pools hold about 30 networks
 * (172.17–31.0.0/16 and 192.168.0.0/16 in /20s), so one network per user would run out at
 * ~30 users; each runtime network instead gets a small subnet from a pool of our own.
 */

export interface SubnetPool {
  /** The pool, e.g. 10.213.0.0/16. */
  base: string;
  /** Prefix length of each runtime subnet, e.g. 27 (30 usable addresses). */
  prefix: number;
}

export const DEFAULT_SUBNET_POOL: SubnetPool = { base: '10.213.0.0/16', prefix: 27 };

interface Range {
  start: number;
  end: number;
}

function ipToInt(ip: string): number | null {
  const parts = ip.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
    value = value * 256 + Number(part);
  }
  return value;
}

const intToIp = (value: number) => [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');

/** Parses a.b.c.d/n into its address range; null when it is not an IPv4 CIDR. */
export function parseCidr(cidr: string): Range | null {
  const [address, bits, ...rest] = cidr.split('/');
  if (rest.length > 0 || !address || bits === undefined || !/^\d{1,2}$/.test(bits) || Number(bits) > 32) return null;
  const ip = ipToInt(address);
  if (ip === null) return null;
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(ip / size) * size;
  return { start, end: start + size - 1 };
}

const overlaps = (a: Range, b: Range) => a.start <= b.end && b.start <= a.end;

/** Why a pool setting is unusable, or null when it is fine. */
export function subnetPoolProblem(pool: SubnetPool): string | null {
  const range = parseCidr(pool.base);
  if (!range) return `"${pool.base}" is not an IPv4 CIDR like 10.213.0.0/16`;
  const baseBits = 32 - Math.log2(range.end - range.start + 1);
  if (!Number.isInteger(pool.prefix) || pool.prefix < Math.max(baseBits, 16) || pool.prefix > 28) {
    return `the per-runtime prefix must be between /${Math.max(baseBits, 16)} and /28`;
  }
  return null;
}

/**
 * The first subnet of the pool that overlaps none of `used` (the subnets of every network the
 * engine has), with its gateway; null when the pool is full.
 */
export function nextFreeSubnet(pool: SubnetPool, used: string[]): { subnet: string; gateway: string } | null {
  const range = parseCidr(pool.base);
  if (!range) return null;
  const taken = used.map(parseCidr).filter((r): r is Range => r !== null);
  const size = 2 ** (32 - pool.prefix);
  for (let start = range.start; start + size - 1 <= range.end; start += size) {
    const candidate = { start, end: start + size - 1 };
    if (!taken.some((t) => overlaps(t, candidate))) return { subnet: `${intToIp(start)}/${pool.prefix}`, gateway: intToIp(start + 1) };
  }
  return null;
}

/** How many runtime networks the pool can hold. */
export const poolCapacity = (pool: SubnetPool): number => {
  const range = parseCidr(pool.base);
  return range ? Math.floor((range.end - range.start + 1) / 2 ** (32 - pool.prefix)) : 0;
};

/**
 * 10.213.0.0/27 → 10.213.0.16/28: the upper half of a runtime subnet, where Docker allocates
 * addresses; the lower half holds the fixed addresses of the proxies (runtime/networkPlan.ts).
 */
export function upperHalf(subnet: string): string {
  const range = parseCidr(subnet);
  const bits = Number(subnet.split('/')[1]);
  if (!range) throw new Error(`${subnet} is not an IPv4 CIDR`);
  return `${intToIp(range.start + (range.end - range.start + 1) / 2)}/${bits + 1}`;
}

export const ipAt = (subnet: string, offset: number): string => {
  const range = parseCidr(subnet);
  if (!range) throw new Error(`${subnet} is not an IPv4 CIDR`);
  return intToIp(range.start + offset);
};
