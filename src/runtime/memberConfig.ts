import JSON5 from 'json5';
import { MODEL_PROVIDER_ID } from './openclawConfig';

/**
 * Decides the openclaw.json a runtime starts with: the member's own file as OpenClaw left it
 * (settings changed in its UI, by its CLI or by the agent), with every platform-owned key put
 * back. Pure: reading and writing the volume is runtimeConfigFile.ts's job.
 *
 * Platform-owned, and why:
 * - `gateway` (all of it): how the gateway is reached and whom it trusts (auth mode, trusted
 *   proxies, allowed users, identity scopes, bind, port, mode, Control UI origins and base path)
 *   and every other way to expose it or grant scopes (Tailscale serve/funnel, TLS, remote mode,
 *   portals, roles, HTTP endpoints). None of it is a member's choice, and a member key left in
 *   it could reopen what the platform closed.
 * - `models` (all of it): the one provider, `platform`, with the gateway's URL, the key from the
 *   environment, its API and the administrator's model list; `mode: "replace"` so no other
 *   provider, discovered catalog or agent-local models.json enters; catalog refresh off.
 * - `update` (all of it): no update checks or automatic updates; the image is the
 *   administrator's choice.
 * - `meta.lastTouchedVersion`: OpenClaw refuses to start when a newer release touched the file
 *   last; which release runs is the administrator's choice, not a file in the volume's.
 * - `$include` anywhere: an included file is merged in where the platform cannot see it.
 * - Variables in `env.vars` that steer OpenClaw itself (`OPENCLAW_*`, `CLAWLOOPS_*` and the
 *   ones OpenClaw reads to pick its config, state or home): they could point OpenClaw at
 *   another config file. The container's environment pins the important ones as well.
 * - `agents.defaults.model`: the member's choice is kept when it names models the platform
 *   offers (`platform/<id>`); anything else becomes the platform's default model.
 * Everything else (channels, agents, skills, tools, plugins, UI, session, messages...) is the
 * member's and is kept as it is.
 */

export const PLATFORM_SECTIONS = ['gateway', 'models', 'update'] as const;
/**
 * A real config is a few KiB (OpenClaw caps an included file at 2 MiB). JSON5 parses on the
 * control plane's event loop at ~3 ms per 10 KiB, so a hostile file this size holds it ~150 ms.
 */
export const MAX_CONFIG_BYTES = 512 * 1024;
/** Far deeper than OpenClaw's schema goes; bounds the work (and the stack) spent on a hostile file. */
export const MAX_CONFIG_DEPTH = 64;
/** Keys that would reach an object's prototype; OpenClaw refuses them too. */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const INCLUDE_KEY = '$include';
/** What OpenClaw reads from its environment to choose its config, state and home (besides OPENCLAW_*). */
const SELECTION_ENV_KEYS = new Set(['HOME', 'HOMEDRIVE', 'HOMEPATH', 'USERPROFILE', 'PREFIX', 'ANDROID_DATA', 'PI_CODING_AGENT_DIR']);
const MAX_REPORTED_PATHS = 20;
const MAX_PATH_CHARS = 120;

export type PlatformConfig = Record<string, unknown>;

export type ConfigDecision =
  | {
      kind: 'merged';
      config: PlatformConfig;
      /** Paths of member keys that were removed or reset to the platform's value (never values). */
      reset: string[];
    }
  | { kind: 'unusable'; config: PlatformConfig; reason: string };

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

class TooDeep extends Error {}

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The member's file, parsed; null when it cannot be a config at all. */
function parseMemberConfig(text: string): { config: JsonObject } | { reason: string } {
  const source = text.replace(/^\uFEFF/, '');
  let parsed: unknown;
  try {
    // OpenClaw writes plain JSON; the native parser is much faster than JSON5's on a large file.
    parsed = JSON.parse(source);
  } catch {
    try {
      parsed = JSON5.parse(source);
    } catch {
      return { reason: 'it is not valid JSON5' };
    }
  }
  if (!isObject(parsed)) return { reason: 'it does not hold an object' };
  return { config: parsed };
}

/**
 * A copy without `$include` directives and prototype keys, built only from plain values. Throws
 * TooDeep beyond MAX_CONFIG_DEPTH.
 */
function sanitize(value: unknown, path: string, depth: number, reset: string[]): Json {
  if (depth > MAX_CONFIG_DEPTH) throw new TooDeep();
  if (Array.isArray(value)) return value.map((item, i) => sanitize(item, `${path}[${i}]`, depth + 1, reset));
  if (isObject(value)) {
    const copy: JsonObject = {};
    for (const [key, child] of Object.entries(value)) {
      const childPath = path ? `${path}.${key}` : key;
      if (key === INCLUDE_KEY || PROTOTYPE_KEYS.has(key)) {
        report(reset, childPath);
        continue;
      }
      copy[key] = sanitize(child, childPath, depth + 1, reset);
    }
    return copy;
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || value === null) return value;
  return null;
}

/** Key names come from the member's file: a bounded number of bounded paths reach the log. */
function report(reset: string[], path: string): void {
  if (reset.length < MAX_REPORTED_PATHS) reset.push(path.length > MAX_PATH_CHARS ? `${path.slice(0, MAX_PATH_CHARS)}…` : path);
}

/** Leaf paths where the member's copy of a platform section differs from the platform's. */
function differences(member: unknown, platform: unknown, path: string, reset: string[]): void {
  if (isObject(member) && isObject(platform)) {
    for (const key of new Set([...Object.keys(member), ...Object.keys(platform)])) {
      differences(member[key], platform[key], `${path}.${key}`, reset);
    }
    return;
  }
  if (JSON.stringify(member) !== JSON.stringify(platform) && member !== undefined) report(reset, path);
}

const steersOpenClaw = (name: string) => {
  const upper = name.toUpperCase();
  return upper.startsWith('OPENCLAW_') || upper.startsWith('CLAWLOOPS_') || SELECTION_ENV_KEYS.has(upper);
};

function sanitizeEnv(env: Json | undefined, reset: string[]): Json | undefined {
  if (!isObject(env) || !isObject(env.vars)) return env;
  const vars: JsonObject = {};
  for (const [name, value] of Object.entries(env.vars)) {
    if (steersOpenClaw(name)) report(reset, `env.vars.${name}`);
    else vars[name] = value;
  }
  return { ...env, vars };
}

const modelRefOf = (selection: Json | undefined): string | null => {
  if (typeof selection === 'string') return selection;
  if (isObject(selection) && typeof selection.primary === 'string') return selection.primary;
  return null;
};

/** The member's default model if the platform offers it (fallbacks likewise), else the platform's. */
function chooseDefaultModel(member: Json | undefined, platform: Json | undefined, offered: Set<string>, reset: string[]): Json | undefined {
  if (member === undefined) return platform;
  const primary = modelRefOf(member);
  if (primary === null || !offered.has(primary)) {
    report(reset, 'agents.defaults.model');
    return platform;
  }
  if (typeof member === 'string' || !isObject(member)) return member;
  const fallbacks = Array.isArray(member.fallbacks) ? member.fallbacks.filter((ref): ref is string => typeof ref === 'string' && offered.has(ref)) : undefined;
  if (fallbacks && Array.isArray(member.fallbacks) && fallbacks.length !== member.fallbacks.length) report(reset, 'agents.defaults.model.fallbacks');
  return fallbacks ? { ...member, fallbacks } : member;
}

function withDefaultModel(agents: Json | undefined, model: Json | undefined): Json | undefined {
  const base: JsonObject = isObject(agents) ? { ...agents } : {};
  const defaults: JsonObject = isObject(base.defaults) ? { ...base.defaults } : {};
  if (model === undefined) delete defaults.model;
  else defaults.model = model;
  if (Object.keys(defaults).length > 0) base.defaults = defaults;
  else delete base.defaults;
  return Object.keys(base).length > 0 || agents !== undefined ? base : undefined;
}

/**
 * The config to start with. `memberText` is the member's openclaw.json (null when there is
 * none); `platform` is what renderOpenClawConfig made; `offeredModels` the administrator's list.
 */
export function decideConfig(platform: PlatformConfig, memberText: string | null, offeredModels: readonly string[]): ConfigDecision {
  if (memberText === null) return { kind: 'merged', config: platform, reset: [] };
  if (Buffer.byteLength(memberText) > MAX_CONFIG_BYTES) return { kind: 'unusable', config: platform, reason: `it is larger than ${MAX_CONFIG_BYTES} bytes` };
  const parsed = parseMemberConfig(memberText);
  if ('reason' in parsed) return { kind: 'unusable', config: platform, reason: parsed.reason };

  const reset: string[] = [];
  let member: JsonObject;
  try {
    member = sanitize(parsed.config, '', 0, reset) as JsonObject;
  } catch (err) {
    if (err instanceof TooDeep) return { kind: 'unusable', config: platform, reason: `it is nested deeper than ${MAX_CONFIG_DEPTH} levels` };
    throw err;
  }

  const merged: Record<string, unknown> = { ...member };
  for (const section of PLATFORM_SECTIONS) {
    differences(member[section], platform[section], section, reset);
    if (platform[section] === undefined) delete merged[section];
    else merged[section] = platform[section];
  }
  if (isObject(member.meta) && 'lastTouchedVersion' in member.meta) {
    const meta = { ...member.meta };
    delete meta.lastTouchedVersion;
    merged.meta = meta;
  }
  const env = sanitizeEnv(member.env, reset);
  if (env !== undefined) merged.env = env;

  const offered = new Set(offeredModels.map((id) => `${MODEL_PROVIDER_ID}/${id}`));
  const platformModel = isObject(platform.agents) && isObject(platform.agents.defaults) ? platform.agents.defaults.model : undefined;
  const memberModel = isObject(member.agents) && isObject(member.agents.defaults) ? member.agents.defaults.model : undefined;
  const agents = withDefaultModel(member.agents, chooseDefaultModel(memberModel, platformModel as Json | undefined, offered, reset));
  if (agents === undefined) delete merged.agents;
  else merged.agents = agents;
  return { kind: 'merged', config: merged, reset };
}
