import { EgressPolicy, egressEntryProblem, isNonPublicAddress } from '../../src/egress/egressPolicy';

const publicOnly = new EgressPolicy({ profile: 'public', allow: [], deny: [] });

describe('what counts as not public', () => {
  test.each([
    ['127.0.0.1', 'loopback'],
    ['10.213.0.5', 'another runtime / the LAN'],
    ['172.17.0.1', "Docker's bridge: this host"],
    ['192.168.1.10', 'the office LAN'],
    ['169.254.169.254', 'cloud metadata'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['0.0.0.0', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['224.0.0.1', 'multicast'],
    ['::1', 'IPv6 loopback'],
    ['::', 'IPv6 unspecified'],
    ['fe80::1', 'IPv6 link-local'],
    ['fd00::1', 'IPv6 unique local'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback in hex'],
    ['::ffff:a9fe:a9fe', 'IPv4-mapped metadata in hex'],
    ['64:ff9b::a00:1', 'NAT64 of 10.0.0.1'],
    ['2002:c0a8:0101::1', '6to4 of 192.168.1.1'],
    ['not-an-address', 'anything that is not an address'],
  ])('%s (%s)', (address) => {
    expect(isNonPublicAddress(address)).toBe(true);
  });

  test.each(['1.1.1.1', '93.184.215.14', '2606:4700:4700::1111', '::ffff:1.1.1.1'])('%s is public', (address) => {
    expect(isNonPublicAddress(address)).toBe(false);
  });
});

describe('the egress decision', () => {
  test('a public address is reached, and exactly the address judged is the one used', () => {
    expect(publicOnly.decide('example.com', ['93.184.215.14'])).toEqual({ allowed: true, address: '93.184.215.14' });
  });

  test('a name that resolves to a private address is refused, whatever its name says (DNS rebinding)', () => {
    const verdict = publicOnly.decide('rebind.attacker.example', ['127.0.0.1']);
    expect(verdict).toMatchObject({ allowed: false, reason: expect.stringContaining('private') });
  });

  test('of a name with public and private addresses, only a public one is used', () => {
    expect(publicOnly.decide('mixed.example', ['10.0.0.1', '1.1.1.1'])).toEqual({ allowed: true, address: '1.1.1.1' });
  });

  test('the "none" profile refuses everything', () => {
    const none = new EgressPolicy({ profile: 'none', allow: ['example.com'], deny: [] });
    expect(none.decide('example.com', ['93.184.215.14'])).toMatchObject({ allowed: false, reason: expect.stringContaining('no internet') });
  });

  test('an allow-listed name may be private (a team server on the LAN); other private names stay refused', () => {
    const policy = new EgressPolicy({ profile: 'public', allow: ['git.office.lan', '*.intra.example'], deny: [] });
    expect(policy.decide('git.office.lan', ['192.168.1.20'])).toEqual({ allowed: true, address: '192.168.1.20' });
    expect(policy.decide('GIT.office.lan.', ['192.168.1.20'])).toMatchObject({ allowed: true });
    expect(policy.decide('ci.intra.example', ['10.1.2.3'])).toMatchObject({ allowed: true });
    // A wildcard covers subdomains, not the apex, and not names that merely end the same way.
    expect(policy.decide('intra.example', ['10.1.2.3'])).toMatchObject({ allowed: false });
    expect(policy.decide('evilintra.example', ['10.1.2.3'])).toMatchObject({ allowed: false });
    expect(policy.decide('other.office.lan', ['192.168.1.21'])).toMatchObject({ allowed: false });
  });

  test('an allow-listed CIDR lets through addresses in it only', () => {
    const policy = new EgressPolicy({ profile: 'public', allow: ['192.168.5.0/24'], deny: [] });
    expect(policy.decide('192.168.5.9', ['192.168.5.9'])).toMatchObject({ allowed: true });
    expect(policy.decide('192.168.6.9', ['192.168.6.9'])).toMatchObject({ allowed: false });
  });

  test('the deny list wins over the allow list and over being public', () => {
    const policy = new EgressPolicy({ profile: 'public', allow: ['*.example.com'], deny: ['bad.example.com', '1.2.3.0/24'] });
    expect(policy.decide('bad.example.com', ['93.184.215.14'])).toMatchObject({ allowed: false, reason: expect.stringContaining('deny list') });
    expect(policy.decide('anything.example', ['1.2.3.4'])).toMatchObject({ allowed: false, reason: expect.stringContaining('deny list') });
  });

  test('a name that resolved to nothing is refused', () => {
    expect(publicOnly.decide('nothing.example', [])).toMatchObject({ allowed: false });
  });
});

describe('allow and deny entries', () => {
  test.each(['example.com', '*.example.com', '10.0.0.1', '10.0.0.0/8', 'fd00::/8', 'a-b.c'])('%s is accepted', (entry) => {
    expect(egressEntryProblem(entry)).toBeNull();
  });

  test.each(['*', 'ex ample.com', '10.0.0.0/33', 'http://example.com', 'example.com:443', '*.*.example.com', '-bad.com'])('%s is refused with a reason', (entry) => {
    expect(egressEntryProblem(entry)).toMatch(/./);
  });
});
