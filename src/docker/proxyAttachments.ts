import type { Logger } from '../lib/logger';
import type { RuntimeSettings } from '../runtime/runtimeSettings';
import { CONTROL_PLANE_ALIAS, planNetwork } from './networkPlan';
import type { RuntimeBackend } from './runtimeBackend';

/**
 * Joins the proxies to every runtime network at their fixed addresses: the control plane (when
 * it runs in a container) and Traefik (when it routes). Runtime networks stay separate from one
 * another; only the proxies sit on all of them.
 *
 * Traefik is found by its label, not configured by name, and may be re-created by
 * `docker compose up` at any time, which drops its extra networks: the watcher calls `ensureAll`
 * periodically to put it back.
 */
export class ProxyAttachments {
  constructor(
    private readonly backend: RuntimeBackend,
    private readonly settings: Pick<RuntimeSettings, 'controlPlaneContainer' | 'router'>,
    private readonly logger: Logger,
  ) {}

  /** Attaches the proxies to one network; Traefik missing is logged, not fatal (the watcher retries). */
  async attach(networkName: string, subnet: string): Promise<void> {
    const plan = planNetwork(subnet);
    const { controlPlaneContainer, router } = this.settings;
    // Traefik is looked up before any attachment begins: one that failed meanwhile would go unheard.
    const traefik = router === 'traefik' ? (await this.backend.findProxyContainers()).filter((p) => p.role === 'traefik') : [];
    const work: Promise<void>[] = [];
    if (controlPlaneContainer) {
      work.push(this.backend.connectToNetwork(networkName, controlPlaneContainer, { ipv4Address: plan.controlPlane, aliases: [CONTROL_PLANE_ALIAS] }));
    }
    if (router === 'traefik') {
      if (traefik.length === 0) this.logger.warn({ network: networkName }, 'no running Traefik container (label io.clawloops.proxy=traefik) to attach to the runtime network');
      for (const proxy of traefik.slice(0, 1)) {
        if (!proxy.networks.includes(networkName)) work.push(this.backend.connectToNetwork(networkName, proxy.id, { ipv4Address: plan.traefik, aliases: [] }));
      }
    }
    await Promise.all(work);
  }

  /** Re-attaches Traefik to every runtime network it lost (a re-created Traefik container has none). */
  async ensureAll(networks: { name: string; subnet: string }[]): Promise<number> {
    if (this.settings.router !== 'traefik' || networks.length === 0) return 0;
    const traefik = (await this.backend.findProxyContainers()).find((p) => p.role === 'traefik');
    if (!traefik) return 0;
    let attached = 0;
    for (const network of networks) {
      if (traefik.networks.includes(network.name) || !network.subnet) continue;
      try {
        await this.backend.connectToNetwork(network.name, traefik.id, { ipv4Address: planNetwork(network.subnet).traefik, aliases: [] });
        attached++;
      } catch (err) {
        this.logger.warn({ network: network.name, err: (err as Error).message }, 'attaching Traefik to a runtime network failed');
      }
    }
    if (attached > 0) this.logger.info({ attached }, 'Traefik re-attached to runtime networks');
    return attached;
  }
}
