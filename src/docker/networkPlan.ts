import type { RuntimeSettings } from '../runtime/runtimeSettings';
import { ipAt, parseCidr, upperHalf } from './subnetPool';

/** The control plane's name on every runtime network (when it runs in a container). */
export const CONTROL_PLANE_ALIAS = 'clawloops-control-plane';

/**
 * Fixed addresses on every runtime network. The proxies that may assert a user to OpenClaw
 * (the control plane, Traefik) always sit at the same offsets, so `gateway.trustedProxies` can
 * name exactly them, and the runtime's own address comes from the upper half of the subnet,
 * where Docker never hands out the reserved ones.
 */
export interface NetworkPlan {
  subnet: string;
  /** The host side of the bridge: how a control plane running on the host reaches the runtime. */
  gateway: string;
  controlPlane: string;
  traefik: string;
  /** Where Docker allocates the runtime's own address. */
  dynamicRange: string;
}

export function planNetwork(subnet: string): NetworkPlan {
  const bits = Number(subnet.split('/')[1]);
  if (!parseCidr(subnet) || bits > 29) throw new Error(`runtime network subnet ${subnet} is not an IPv4 CIDR of /29 or wider`);
  return {
    subnet,
    gateway: ipAt(subnet, 1),
    controlPlane: ipAt(subnet, 2),
    traefik: ipAt(subnet, 3),
    dynamicRange: upperHalf(subnet),
  };
}

/** Exactly the addresses whose X-Forwarded-User a runtime believes. */
export function trustedProxies(plan: NetworkPlan, settings: Pick<RuntimeSettings, 'controlPlaneContainer' | 'router'>): string[] {
  const proxies = [settings.controlPlaneContainer ? plan.controlPlane : plan.gateway];
  if (settings.router === 'traefik') proxies.push(plan.traefik);
  return proxies;
}
