import { BlockList, isIP } from 'node:net';

/** `public`: the internet, not private networks; `none`: nothing at all (models only). */
export type EgressProfile = 'public' | 'none';

export interface EgressRules {
  profile: EgressProfile;
  /** Host patterns (example.com, *.example.com) or IPs/CIDRs reachable even when they are private. */
  allow: string[];
  /** Host patterns or IPs/CIDRs never reachable; wins over `allow`. */
  deny: string[];
}

export type EgressVerdict = { allowed: true; address: string } | { allowed: false; reason: string };

/**
 * Ranges a runtime must not reach on its own: this host, the LAN, carrier-grade NAT, link-local
 * (cloud metadata at 169.254.169.254), documentation, multicast and reserved ranges.
 */
const NOT_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 3], // multicast, reserved, broadcast
] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 127], // unspecified and loopback
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv6');
}

/**
 * The IPv4 address an IPv6 one carries (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4
 * 2002::/16): checked as IPv4, or `::ffff:127.0.0.1` would pass as a public IPv6 address.
 */
function embeddedIpv4(address: string): string | null {
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:(?:0:)?|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted?.[1]) return dotted[1];
  const words = expandIpv6(lower);
  if (!words) return null;
  const fromWords = (hi: number, lo: number) => [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  const isMapped = words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff;
  const isNat64 = words[0] === 0x64 && words[1] === 0xff9b && words.slice(2, 6).every((w) => w === 0);
  if (isMapped || isNat64) return fromWords(words[6] ?? 0, words[7] ?? 0);
  if (words[0] === 0x2002) return fromWords(words[1] ?? 0, words[2] ?? 0);
  return null;
}

function expandIpv6(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const [a, b, c, d] = v4[1].split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -v4[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part ? part.split(':').map((w) => parseInt(w, 16)) : []);
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  const fill = tail === undefined ? [] : new Array<number>(8 - front.length - back.length).fill(0);
  const words = [...front, ...fill, ...back];
  return words.length === 8 ? words : null;
}

/** True for every address a runtime may not reach unless an admin allowed it by name. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  if (family === 4) return NOT_PUBLIC.check(address, 'ipv4');
  const v4 = embeddedIpv4(address);
  if (v4 !== null) return NOT_PUBLIC.check(v4, 'ipv4');
  return NOT_PUBLIC.check(address, 'ipv6');
}

/** Why an allow/deny entry is unusable, or null. Entries: example.com, *.example.com, 10.1.2.3, 10.1.0.0/16. */
export function egressEntryProblem(entry: string): string | null {
  const [address, bits, ...rest] = entry.split('/');
  if (address && isIP(address) !== 0) {
    if (rest.length > 0) return `"${entry}" is not an address or CIDR`;
    if (bits === undefined) return null;
    const max = isIP(address) === 4 ? 32 : 128;
    return /^\d{1,3}$/.test(bits) && Number(bits) <= max ? null : `"${entry}" has a bad prefix length`;
  }
  return /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(entry)
    ? null
    : `"${entry}" is not a host name (example.com, *.example.com), an IP address or a CIDR`;
}

/** A compiled list: names match exactly or, for `*.example.com`, any subdomain (not the apex). */
class HostList {
  private readonly names = new Set<string>();
  private readonly suffixes: string[] = [];
  private readonly addresses = new BlockList();

  constructor(entries: string[]) {
    for (const raw of entries) {
      const entry = raw.trim().toLowerCase();
      const [address, bits] = entry.split('/');
      const family = address ? isIP(address) : 0;
      if (address && family !== 0) {
        const type = family === 4 ? 'ipv4' : 'ipv6';
        if (bits === undefined) this.addresses.addAddress(address, type);
        else this.addresses.addSubnet(address, Number(bits), type);
      } else if (entry.startsWith('*.')) {
        this.suffixes.push(entry.slice(1));
      } else if (entry) {
        this.names.add(entry);
      }
    }
  }

  matchesName(host: string): boolean {
    return this.names.has(host) || this.suffixes.some((suffix) => host.endsWith(suffix));
  }

  matchesAddress(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.addresses.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * Decides a connection after the name was resolved, on the addresses it resolved to: the proxy
 * then connects to exactly the address judged here, so a name that resolves to a public address
 * now and a private one a moment later (DNS rebinding) cannot slip through.
 */
export class EgressPolicy {
  private readonly allow: HostList;
  private readonly deny: HostList;

  constructor(private readonly rules: EgressRules) {
    this.allow = new HostList(rules.allow);
    this.deny = new HostList(rules.deny);
  }

  decide(host: string, addresses: string[]): EgressVerdict {
    const name = host.toLowerCase().replace(/\.$/, '');
    if (this.rules.profile === 'none') return { allowed: false, reason: 'this workspace has no internet access (egress profile "none")' };
    if (addresses.length === 0) return { allowed: false, reason: `${name} did not resolve to any address` };
    if (this.deny.matchesName(name) || addresses.some((a) => this.deny.matchesAddress(a))) {
      return { allowed: false, reason: `${name} is on the administrator's deny list` };
    }
    const allowedByName = this.allow.matchesName(name);
    const usable = addresses.filter((a) => allowedByName || this.allow.matchesAddress(a) || !isNonPublicAddress(a));
    const address = usable[0];
    if (address === undefined) {
      return { allowed: false, reason: `${name} is a private, loopback, link-local or reserved address (${addresses[0]}); an administrator can allow it` };
    }
    return { allowed: true, address };
  }
}
