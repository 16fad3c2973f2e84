/**
 * The litmus WebDAV compliance suite (Debian's `litmus`, scripts/ensure-webdav-clients.sh) against /dav/
 * on a free port, over the workspace-volume port's fake: every test of the basic, copymove, props
 * and locks groups must pass, with each failure and its reason printed, and only the failures
 * listed in KNOWN_FAILURES (with why) allowed. test/integration/webdavEngine runs all four through
 * the real engine too.
 */
import { LITMUS, litmusReport, runLitmus } from '../support/davClients';
import { davHarness, type DavHarness } from '../support/davHarness';

/** Failures we know of, by group and test name, with the reason (the closing note lists them). */
const KNOWN_FAILURES: Record<string, string> = {};

const describeIf = LITMUS ? describe : describe.skip;

describeIf('litmus against /dav/', () => {
  let dav: DavHarness;

  beforeAll(async () => {
    dav = await davHarness('litmus');
  });

  afterAll(async () => {
    await dav?.close();
  });

  test('basic, copymove, props and locks', async () => {
    const all = await runLitmus(dav.url, dav.username, dav.secret, undefined, 120_000);
    for (const group of ['basic', 'copymove', 'props', 'locks']) expect([group, all.some((r) => r.group === group)]).toEqual([group, true]);
    // The record the closing note quotes.
    process.stdout.write(`\nlitmus results\n${litmusReport(all, KNOWN_FAILURES)}\n`);
    const unexpected = all.filter((r) => r.outcome === 'FAIL' && !KNOWN_FAILURES[`${r.group}/${r.test}`]).map((r) => `${r.group}/${r.test}: ${r.detail}`);
    expect(unexpected).toEqual([]);
  }, 600_000);
});
