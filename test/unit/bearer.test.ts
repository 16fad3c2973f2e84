import { bearerCredential } from '../../src/http/bearer';

/** The one reading of `Authorization: Bearer` the API tokens, the metrics token and the model gateway share. */

test.each([
  ['Bearer abc123', 'abc123'],
  ['bearer abc123', 'abc123'],
  ['BEARER\tabc123', 'abc123'],
  ['Bearer   abc123 \t', 'abc123'],
])('%j carries %j', (header, credential) => {
  expect(bearerCredential(header)).toBe(credential);
});

test.each([undefined, '', 'Bearer', 'Bearer ', 'Bearer a b', 'Basic abc123', 'Bearerabc123', ' Bearer abc123', 'Bearer\u00a0abc123', 'Token abc123'])('%j carries none', (header) => {
  expect(bearerCredential(header)).toBeNull();
});
