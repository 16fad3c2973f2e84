import { runAgentOverStdio } from './stdio';

/**
 * The file agent's entry: one request as JSON on stdin, one response as JSON on stdout. The
 * build bundles this file with what it imports into one self-contained script (build.ts).
 */
runAgentOverStdio();
