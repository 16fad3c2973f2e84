import { nextFreeSubnet, parseCidr, poolCapacity, subnetPoolProblem } from '../../src/docker/subnetPool';

describe('runtime subnet pool', () => {
  const pool = { base: '10.213.0.0/16', prefix: 27 };

  test('holds far more networks than Docker default pools (about 30)', () => {
    expect(poolCapacity(pool)).toBe(2048);
  });

  test('hands out the first subnet that overlaps nothing in use, with its gateway', () => {
    expect(nextFreeSubnet(pool, [])).toEqual({ subnet: '10.213.0.0/27', gateway: '10.213.0.1' });
    expect(nextFreeSubnet(pool, ['172.17.0.0/16', '10.213.0.0/27', '10.213.0.32/27'])).toEqual({ subnet: '10.213.0.64/27', gateway: '10.213.0.65' });
  });

  test('skips whatever a wider network of someone else covers', () => {
    expect(nextFreeSubnet(pool, ['10.213.0.0/24'])?.subnet).toBe('10.213.1.0/27');
    expect(nextFreeSubnet(pool, ['10.0.0.0/8'])).toBeNull();
  });

  test('says when it is full', () => {
    const small = { base: '10.213.0.0/26', prefix: 27 };
    expect(nextFreeSubnet(small, ['10.213.0.0/27', '10.213.0.32/27'])).toBeNull();
  });

  test('ignores what is not IPv4 among the used subnets', () => {
    expect(nextFreeSubnet(pool, ['fd00::/64', ''])?.subnet).toBe('10.213.0.0/27');
  });

  test.each([
    ['10.213.0.0', /not an IPv4 CIDR/],
    ['10.213.0.0/33', /not an IPv4 CIDR/],
    ['300.1.1.1/16', /not an IPv4 CIDR/],
    ['10.213.0.0/29', /prefix must be between/],
  ])('refuses the pool %s', (base, message) => {
    expect(subnetPoolProblem({ base, prefix: 27 })).toMatch(message);
  });

  test('normalises a CIDR to its network', () => {
    expect(parseCidr('10.213.5.77/24')).toEqual(parseCidr('10.213.5.0/24'));
  });
});
