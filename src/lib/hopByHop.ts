/**
 * Headers that describe one connection, not the message (RFC 9110 §7.6.1), and the proxy
 * credentials meant for the hop that received them: a proxy never passes them on. Every relay in
 * the control plane (the workspace relay, the egress proxy) starts from this list.
 */
export const HOP_BY_HOP_HEADERS: readonly string[] = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade'];
