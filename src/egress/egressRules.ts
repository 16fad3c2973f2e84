import type { EgressOverrides, EgressRepository } from '../db/repositories/egressRepository';
import type { SettingsRepository } from '../db/repositories/settingsRepository';
import type { Actor, AuditLog, RequestOrigin } from '../domain/audit';
import type { Transactor } from '../domain/transactor';
import type { Clock } from '../lib/clock';
import { EgressPolicy, egressEntryProblem, type EgressProfile, type EgressRules } from './egressPolicy';

/** At most this many entries per list: each is checked on every connection. */
export const MAX_EGRESS_ENTRIES = 500;

const KEYS = { profile: 'egress.profile', allow: 'egress.allow', deny: 'egress.deny' } as const;
const NO_OVERRIDES: EgressOverrides = { profile: null, allow: [], deny: [] };

const isProfile = (v: unknown): v is EgressProfile => v === 'public' || v === 'none';
const isList = (v: unknown): v is string[] => Array.isArray(v) && v.length <= MAX_EGRESS_ENTRIES && v.every((e) => typeof e === 'string' && egressEntryProblem(e) === null);

/** What applies to one user, and where it came from. */
export interface EffectiveEgress {
  installation: EgressRules;
  overrides: EgressOverrides;
  effective: EgressRules;
}

/**
 * Who may reach what. The installation's rules (the environment's CLAWLOOPS_EGRESS_* until an
 * administrator changes them in the console) apply to everyone; a user's own rules add to them:
 * their profile replaces the installation's ("none": models only), their allow and deny lists
 * join its lists. A deny always wins, so a user's allow never opens what the installation denies.
 * Policies are compiled once per user and change only with the rules.
 */
export class EgressRulesService {
  private installation: EgressRules;
  private readonly compiled = new Map<string, EgressPolicy>();

  constructor(
    private readonly deps: {
      settings: SettingsRepository;
      repository: EgressRepository;
      defaults: EgressRules;
      audit: AuditLog;
      transact: Transactor;
      clock: Clock;
    },
  ) {
    const stored = (key: string) => deps.settings.get(key);
    const profile = stored(KEYS.profile);
    const allow = stored(KEYS.allow);
    const deny = stored(KEYS.deny);
    this.installation = {
      profile: isProfile(profile) ? profile : deps.defaults.profile,
      allow: isList(allow) ? allow : deps.defaults.allow,
      deny: isList(deny) ? deny : deps.defaults.deny,
    };
  }

  installationRules(): EgressRules {
    return { ...this.installation, allow: [...this.installation.allow], deny: [...this.installation.deny] };
  }

  forUser(userId: string): EffectiveEgress {
    const overrides = this.deps.repository.overrides(userId) ?? NO_OVERRIDES;
    const installation = this.installationRules();
    return {
      installation,
      overrides,
      effective: {
        profile: overrides.profile ?? installation.profile,
        allow: [...installation.allow, ...overrides.allow],
        deny: [...installation.deny, ...overrides.deny],
      },
    };
  }

  /** The compiled policy the proxy judges this user's connections by. */
  policyFor(userId: string): EgressPolicy {
    let policy = this.compiled.get(userId);
    if (!policy) {
      policy = new EgressPolicy(this.forUser(userId).effective);
      this.compiled.set(userId, policy);
    }
    return policy;
  }

  setInstallationRules(actor: Actor, rules: EgressRules, origin: RequestOrigin): EgressRules {
    const before = this.installationRules();
    const now = this.deps.clock.now();
    this.deps.transact(() => {
      this.deps.settings.set(KEYS.profile, rules.profile, now);
      this.deps.settings.set(KEYS.allow, rules.allow, now);
      this.deps.settings.set(KEYS.deny, rules.deny, now);
      this.deps.audit.record({ action: 'egress.rules.update', actor, origin, detail: { before, after: rules } });
    });
    this.installation = { profile: rules.profile, allow: [...rules.allow], deny: [...rules.deny] };
    this.compiled.clear();
    return this.installationRules();
  }

  setUserRules(actor: Actor, user: { id: string; username: string }, overrides: EgressOverrides, origin: RequestOrigin): EffectiveEgress {
    const before = this.deps.repository.overrides(user.id) ?? NO_OVERRIDES;
    this.deps.transact(() => {
      this.deps.repository.saveOverrides(user.id, overrides, this.deps.clock.now());
      this.deps.audit.record({ action: 'egress.user_rules.update', actor, target: { type: 'user', id: user.id, label: user.username }, origin, detail: { before, after: overrides } });
    });
    this.compiled.delete(user.id);
    return this.forUser(user.id);
  }
}
