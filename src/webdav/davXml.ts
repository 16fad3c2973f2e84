import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { AppError, badRequest } from '../lib/errors';

/**
 * The XML of WebDAV request bodies (PROPFIND, PROPPATCH, LOCK) as a namespace-resolved tree, and
 * the escaping of what we write. fast-xml-parser does not resolve namespaces, so the tree is
 * walked here with the `xmlns` declarations in scope. Entities are never expanded and a DOCTYPE
 * is refused outright: a body cannot make the parser fetch or multiply anything.
 */

export const DAV_NS = 'DAV:';

export interface XmlNode {
  ns: string;
  local: string;
  children: XmlNode[];
  text: string;
  attributes: Record<string, string>;
  /** The namespace declarations in scope at this element (prefix '' is the default namespace). */
  scope: Record<string, string>;
  /** The element's content as parsed, to be written back (a dead property's value). */
  raw: Ordered[];
}

type Ordered = Record<string, unknown>;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

export function parseXml(body: Buffer): XmlNode | null {
  const text = body.toString('utf8').replace(/^\uFEFF/, '');
  if (text.trim() === '') return null;
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw badRequest('XML_NOT_ALLOWED', 'Document type declarations are not accepted.');
  if (XMLValidator.validate(text) !== true) throw badRequest('INVALID_XML', 'The request body is not well-formed XML.');
  let parsed: Ordered[];
  try {
    parsed = parser.parse(text) as Ordered[];
  } catch {
    throw badRequest('INVALID_XML', 'The request body is not well-formed XML.');
  }
  const roots = convert(parsed, {});
  if (roots.length !== 1 || !roots[0]) throw badRequest('INVALID_XML', 'The request body must hold exactly one root element.');
  return roots[0];
}

function convert(list: Ordered[], scope: Record<string, string>): XmlNode[] {
  const nodes: XmlNode[] = [];
  for (const item of list) {
    const attrs = (item[':@'] ?? {}) as Record<string, string>;
    const tag = Object.keys(item).find((k) => k !== ':@');
    if (tag === undefined || tag === '#text' || tag.startsWith('?') || tag === '#comment') continue;
    const inner: Record<string, string> = { ...scope };
    for (const [name, value] of Object.entries(attrs)) {
      if (name === 'xmlns') inner[''] = value;
      else if (name.startsWith('xmlns:')) {
        // Namespaces in XML 1.0: a prefix cannot be bound to the empty name.
        if (value === '') throw badRequest('INVALID_XML', `The namespace prefix "${name.slice(6)}" is bound to nothing.`);
        inner[name.slice(6)] = value;
      }
    }
    const colon = tag.indexOf(':');
    const prefix = colon >= 0 ? tag.slice(0, colon) : '';
    const local = colon >= 0 ? tag.slice(colon + 1) : tag;
    const ns = inner[prefix];
    if (ns === undefined && prefix !== '') throw badRequest('INVALID_XML', `The namespace prefix "${prefix}" is not declared.`);
    const content = (item[tag] ?? []) as Ordered[];
    const text = content.map((c) => (typeof c['#text'] === 'string' ? c['#text'] : '')).join('');
    nodes.push({ ns: ns ?? '', local, children: convert(content, inner), text, attributes: attrs, scope: inner, raw: content });
  }
  return nodes;
}

const builder = new XMLBuilder({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', processEntities: false, suppressEmptyNode: true });

/**
 * A property element as it came, ready to be written back inside any document: under a prefix of
 * its own, with every namespace in scope where it stood declared on it, so its content means the
 * same wherever it is written.
 */
export function serializeProperty(node: XmlNode): string {
  const declarations = Object.entries(node.scope)
    .filter(([prefix]) => prefix !== 'ns0')
    .map(([prefix, uri]) => (prefix === '' ? ` xmlns="${escapeXml(uri)}"` : ` xmlns:${prefix}="${escapeXml(uri)}"`))
    .join('');
  const inner = node.raw.length > 0 ? String(builder.build(node.raw)) : '';
  const tag = node.ns === '' ? node.local : `ns0:${node.local}`;
  const own = node.ns === '' ? (node.scope[''] ? ' xmlns=""' : '') : ` xmlns:ns0="${escapeXml(node.ns)}"`;
  const scopeDecls = node.ns === '' ? declarations.replace(/ xmlns="[^"]*"/, '') : declarations;
  return inner === '' ? `<${tag}${own}${scopeDecls}/>` : `<${tag}${own}${scopeDecls}>${inner}</${tag}>`;
}

export const isDav = (node: XmlNode, local: string): boolean => node.ns === DAV_NS && node.local === local;

export const childOf = (node: XmlNode, local: string): XmlNode | undefined => node.children.find((c) => isDav(c, local));

export function escapeXml(value: string): string {
  return value.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** A property element, e.g. `<x:foo xmlns:x="ns">value</x:foo>` (an element in no namespace gets `xmlns=""`). */
export function propElement(ns: string, local: string, innerXml: string | null): string {
  if (ns === DAV_NS) return innerXml === null || innerXml === '' ? `<D:${local}/>` : `<D:${local}>${innerXml}</D:${local}>`;
  const open = `<x:${local} xmlns:x="${escapeXml(ns)}"`;
  if (ns === '') return innerXml === null || innerXml === '' ? `<${local} xmlns=""/>` : `<${local} xmlns="">${innerXml}</${local}>`;
  return innerXml === null || innerXml === '' ? `${open}/>` : `${open}>${innerXml}</x:${local}>`;
}

/** Reads a request body up to `maxBytes`; more is a 413 before it is buffered. */
export async function readBody(source: AsyncIterable<Buffer>, declared: string | undefined, maxBytes: number): Promise<Buffer> {
  if (declared !== undefined && Number(declared) > maxBytes) throw new AppError(413, 'REQUEST_TOO_LARGE', `An XML body may hold at most ${maxBytes} bytes.`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (size > maxBytes) throw new AppError(413, 'REQUEST_TOO_LARGE', `An XML body may hold at most ${maxBytes} bytes.`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
